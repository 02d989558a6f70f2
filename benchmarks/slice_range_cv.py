"""Five-fold cross-validation (by patient) of slice-range classifier recipes on ACDC, and the final model.

Writes ``docs/benchmarks/slice_range_cv.md`` and ``docs/benchmarks/slice_range_cv.json`` (every number),
and with ``--final`` the shipped ``cardiacseg/slice_range_classifier/models/model.pt``.

Data: :func:`cardiacseg.data.slice_range.slice_range_items` (75 patients, ED and ES, 160-pixel heart
crops, expert-derived OAP/IN/OBS labels) z-scored per slice
(:class:`~cardiacseg.transforms.intensity.array.SliceZScore`), folds from
:func:`~cardiacseg.data.slice_range.patient_folds` (seed 0, stratified by pathology). Every fold's model
sees only its training patients; the held-out predictions of the five folds are pooled and scored with
:func:`cardiacseg.metrics.classification.classification_metrics`.

CPU budget (2 cores, no GPU): the backbone stages that a recipe freezes are run **once** per slice and
cached (the frozen pretrained U-Net encoder gives the same output in every fold), for the original slice
and ``--rotations`` copies rotated at random within +-45 degrees (the augmentation, drawn once, not per
epoch). Feature extraction then trains the head on cached 512-d features; ``last_block`` trains the
encoder's last stage (``stages.4``) and the head on cached ``stages.3`` maps. Training goes through
:func:`cardiacseg.engines.slice_range.slice_range_trainer` (MONAI ``SupervisedTrainer``, cross-entropy,
OAP/OBS oversampled x6, cosine learning rate).

ImageNet-layout backbones (``random_fe_vgg16``, ``random_fe_resnet34``, ``random_fe_resnet50``,
``random_fe_densenet121``, ``random_fe_mobilenet_v2``): random initialisation (seed 0; no ImageNet weights
on this machine), frozen, 1 input channel (the grey slice; the factory's convention for ImageNet files
would sum the first convolution's RGB kernels, equal to repeating the slice over RGB: with random weights
there is nothing to sum, the first convolution is simply built with one input channel). Their penultimate
features are cached for the same slices and the same rotated copies as the U-Net's (same seed), the frozen
pass under CPU bfloat16 autocast with channels-last memory (3x faster for VGG16 on this CPU; features
within ~0.5 % of float32), and the same head, folds, sweep and metrics are used. The cached features
are z-scored per dimension with each fold's training statistics (random batch-norm networks in eval mode
give features of very different scales, e.g. ~1e-8 for MobileNetV2, ~20 for ResNet34); ``random_fe_z``
is the U-Net encoder's ``random_fe`` with the same standardisation, as a control.

Usage::

    python benchmarks/slice_range_cv.py --candidates fe,fe_ctx1,last_block,random_last_block
    python benchmarks/slice_range_cv.py --candidates random_fe_vgg16,random_fe_z --sweep adam/0.001
    python benchmarks/slice_range_cv.py --final fe          # train on all 75 patients and ship
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from ignite.engine import Events
from monai.transforms import RandRotate
from monai.utils import set_determinism
from torch import nn

from cardiacseg.data.slice_range import patient_folds, slice_range_items
from cardiacseg.engines.slice_range import (
    predict_probabilities,
    save_half_state_dict,
    slice_range_trainer,
    slice_range_val_transforms,
    zscore_items,
)
from cardiacseg.inferers.slice_range import monotone_slice_labels
from cardiacseg.metrics.classification import classification_metrics
from cardiacseg.networks import get_network
from cardiacseg.networks.nets.encoders import BACKBONES

REPO = Path(__file__).resolve().parents[1]
ACDC = REPO.parent / "shared" / "data" / "acdc_ssl4mis"
SEG_MODEL = REPO / "cardiacseg" / "cardiac_cine_seg" / "models" / "model.pt"
BUNDLE = REPO / "cardiacseg" / "slice_range_classifier"
OUT_MD = REPO / "docs" / "benchmarks" / "slice_range_cv.md"
OUT_JSON = REPO / "docs" / "benchmarks" / "slice_range_cv.json"

#: candidate -> (context, pretrained, trained part)
CANDIDATES: dict[str, tuple[int, bool, str]] = {
    "fe": (0, True, "head"),
    "fe_ctx1": (1, True, "head"),
    "last_block": (0, True, "last_block"),
    "random_last_block": (0, False, "last_block"),
    "random_fe": (0, False, "head"),
    "random_fe_z": (0, False, "head"),
}

#: ImageNet-layout candidates: name -> backbone (random initialisation, frozen, context 0, head trained)
IMAGENET_FE: dict[str, str] = {f"random_fe_{b}": b for b in BACKBONES}

#: candidates whose cached features are z-scored per dimension with the fold's training statistics
ZSCORED = {"random_fe_z", *IMAGENET_FE}


def candidate(name: str) -> tuple[str, int, bool, str]:
    """(backbone, context, pretrained, trained part) of a candidate name."""
    if name in IMAGENET_FE:
        return IMAGENET_FE[name], 0, False, "head"
    context, pretrained, part = CANDIDATES[name]
    return "unet_encoder", context, pretrained, part


def cpu_model() -> str:
    """CPU model name and logical core count (from ``/proc/cpuinfo``)."""
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown CPU"
    names = [ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")]
    return f"{names[0] if names else 'unknown CPU'}, {len(names)} logical cores"


#: learning-rate sweep: (optimizer, lr)
SWEEP: dict[str, list[tuple[str, float]]] = {
    "head": [("adam", 1e-3), ("adam", 1e-4), ("sgd", 1e-2)],
    "last_block": [("adam", 1e-4), ("sgd", 1e-3)],
}
EPOCHS = {"head": 30, "last_block": 4}


def load_items(context: int) -> list[dict[str, Any]]:
    """All 75 patients' items, z-scored."""
    return zscore_items(slice_range_items(ACDC, context=context))


def frozen_cache(
    images: npt.NDArray[np.float32], context: int, pretrained: bool, rotations: int, cache: Path
) -> tuple[npt.NDArray[np.float16], npt.NDArray[np.float32]]:
    """``stages.3`` maps (float16) and penultimate features of the frozen encoder, ``(1 + rotations, N, ...)``.

    Copy 0 is the slice itself; copies 1.. are rotated at random within +-45 degrees (seeded).
    """
    tag = f"ctx{context}_{'seg' if pretrained else 'random'}_r{rotations}"
    fm, ff = cache / f"maps_{tag}.npy", cache / f"feat_{tag}.npy"
    if fm.exists() and ff.exists():
        return np.load(fm), np.load(ff)
    torch.manual_seed(0)
    net = get_network(
        "slice_classifier",
        2,
        2 * context + 1,
        3,
        backbone="unet_encoder",
        mode="feature_extraction",
        pretrained=str(SEG_MODEL) if pretrained else None,
    ).eval()
    stages = net.backbone.stages
    rot = RandRotate(range_x=np.pi / 4, prob=1.0, padding_mode="zeros")
    rot.set_random_state(seed=context)
    maps, feats = [], []
    for c in range(1 + rotations):
        xc = images if c == 0 else np.stack([np.asarray(rot(x)) for x in images]).astype(np.float32)
        ms, fs = [], []
        with torch.no_grad():
            for i in range(0, len(xc), 64):
                h = torch.from_numpy(xc[i : i + 64])
                for s in stages[:-1]:
                    h = s(h)
                ms.append(h.half().numpy())
                fs.append(torch.flatten(F.adaptive_avg_pool2d(stages[-1](h), 1), 1).numpy())
        maps.append(np.concatenate(ms))
        feats.append(np.concatenate(fs))
    cache.mkdir(parents=True, exist_ok=True)
    np.save(fm, np.stack(maps))
    np.save(ff, np.stack(feats))
    return np.stack(maps), np.stack(feats)


_ROTATED: dict[tuple[int, int], list[npt.NDArray[np.float32]]] = {}


def rotated_copies(
    images: npt.NDArray[np.float32], context: int, rotations: int
) -> list[npt.NDArray[np.float32]]:
    """The slices and ``rotations`` rotated copies, drawn exactly as :func:`frozen_cache` draws them."""
    key = (context, rotations)
    if key not in _ROTATED:
        rot = RandRotate(range_x=np.pi / 4, prob=1.0, padding_mode="zeros")
        rot.set_random_state(seed=context)
        _ROTATED[key] = [
            images if c == 0 else np.stack([np.asarray(rot(x)) for x in images]).astype(np.float32)
            for c in range(1 + rotations)
        ]
    return _ROTATED[key]


def imagenet_feature_cache(
    images: npt.NDArray[np.float32], backbone: str, rotations: int, cache: Path
) -> tuple[npt.NDArray[np.float32], list[float]]:
    """Penultimate features ``(1 + rotations, N, F)`` of a frozen, randomly initialised ImageNet-layout backbone.

    Same slices and rotated copies as :func:`frozen_cache` (context 0); forward pass under bfloat16 autocast,
    channels-last. Returns the features and the seconds per copy.
    """
    ff = cache / f"feat_{backbone}_random_r{rotations}_bf16.npy"
    fs = cache / f"feat_{backbone}_random_r{rotations}_bf16_seconds.json"
    if ff.exists() and fs.exists():
        return np.load(ff), json.loads(fs.read_text())
    torch.set_num_threads(2)
    torch.manual_seed(0)
    net = get_network("slice_classifier", 2, 1, 3, backbone=backbone, mode="feature_extraction").eval()
    net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    feats, secs = [], []
    for xc in rotated_copies(images, 0, rotations):
        t = time.perf_counter()
        out = []
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            for i in range(0, len(xc), 64):
                h = torch.from_numpy(xc[i : i + 64]).contiguous(memory_format=torch.channels_last)
                out.append(net.features(h).float().numpy())
        feats.append(np.concatenate(out))
        secs.append(time.perf_counter() - t)
        print(f"{backbone}: cached copy {len(secs)} in {secs[-1]:.0f} s", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(ff, np.stack(feats))
    fs.write_text(json.dumps(secs))
    return np.stack(feats), secs


def zscore_features(
    inputs: npt.NDArray[np.float32], train_idx: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """Features z-scored per dimension with the mean and s.d. of ``train_idx`` over all copies."""
    tr = inputs[:, train_idx].reshape(-1, inputs.shape[-1]).astype(np.float64)
    mu, sd = tr.mean(0), tr.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return ((inputs - mu) / sd).astype(np.float32)


class Tail(nn.Module):
    """The trainable part of ``last_block``: the encoder's last stage, global pooling and the head."""

    def __init__(self, stage: nn.Module, head: nn.Module):
        super().__init__()
        self.stage, self.head = stage, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(torch.flatten(F.adaptive_avg_pool2d(self.stage(x.float()), 1), 1))
        return out


def make_trainable(
    part: str, context: int, pretrained: bool, backbone: str = "unet_encoder"
) -> tuple[nn.Module, nn.Module]:
    """(full SliceClassifier, the module trained on cached inputs) sharing parameters."""
    torch.manual_seed(0)
    mode = "feature_extraction" if part == "head" else "last_block"
    if backbone != "unet_encoder":  # ImageNet layout, random initialisation
        net = get_network("slice_classifier", 2, 2 * context + 1, 3, backbone=backbone, mode=mode)
        return net, net.head
    net = get_network(
        "slice_classifier",
        2,
        2 * context + 1,
        3,
        backbone="unet_encoder",
        mode=mode,
        pretrained=str(SEG_MODEL) if pretrained else None,
    )
    if part == "head":
        return net, net.head
    return net, Tail(net.backbone.stages[-1], net.head)


def train_on_cache(
    part: str,
    context: int,
    pretrained: bool,
    inputs: npt.NDArray[Any],
    y: npt.NDArray[np.int64],
    train_idx: npt.NDArray[np.int64],
    optimizer: str,
    lr: float,
    epochs: int,
    seed: int = 0,
    backbone: str = "unet_encoder",
) -> tuple[nn.Module, nn.Module, float]:
    """Train on the cached inputs of ``train_idx`` (all copies); returns (full net, trained module, s)."""
    set_determinism(seed)
    # small matrix products run far faster on one thread than on two contended ones (measured)
    torch.set_num_threads(1 if part == "head" else 2)
    full, module = make_trainable(part, context, pretrained, backbone)
    items = [{"image": inputs[c, i], "label": int(y[i])} for c in range(inputs.shape[0]) for i in train_idx]
    trainer = slice_range_trainer(
        module,
        items,
        max_epochs=epochs,
        lr=lr,
        optimizer=optimizer,  # type: ignore[arg-type]
        batch_size=32,
        transforms=slice_range_val_transforms(),
        seed=seed,
    )
    t = time.perf_counter()
    if part != "head":
        trainer.add_event_handler(
            Events.EPOCH_COMPLETED,
            lambda e: print(f"  epoch {e.state.epoch}: {time.perf_counter() - t:.1f} s", flush=True),
        )
    trainer.run()
    set_determinism(None)
    return full, module.eval(), time.perf_counter() - t


def score(
    probs: npt.NDArray[np.float32], y: npt.NDArray[np.int64], items: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Metrics of pooled held-out predictions: per-slice argmax and the monotone-ordered labelling."""
    stacks = [f"{it['patient']}_{it['phase']}" for it in items]
    zs = np.array([int(it["slice"]) for it in items])
    out = {"argmax": classification_metrics(probs, y, stacks, zs).to_dict()}
    ordered = np.empty(len(items), np.int64)
    for s in sorted(set(stacks)):
        idx = np.array([i for i, t in enumerate(stacks) if t == s])
        idx = idx[np.argsort(zs[idx])]
        labels, _, _ = monotone_slice_labels(np.log(np.clip(probs[idx], 1e-7, 1.0)), apex_to_base=None)
        ordered[idx] = labels
    out["ordered"] = classification_metrics(probs, y, stacks, zs, pred=ordered).to_dict()
    return out


def macro_f1(m: dict[str, Any]) -> float:
    return float(np.mean([m[f"f1_{k}"] or 0.0 for k in ("oap", "in", "obs")]))


def run_cv(
    names: Sequence[str],
    rotations: int,
    cache: Path,
    results: dict[str, Any],
    probs_dir: Path,
    sweep: Sequence[tuple[str, float]] | None = None,
) -> None:
    """Cross-validate ``names``; ``sweep`` restricts every candidate's (optimizer, lr) settings."""
    patients_items: dict[int, list[dict[str, Any]]] = {}
    for name in names:
        backbone, context, pretrained, part = candidate(name)
        if context not in patients_items:
            patients_items[context] = load_items(context)
        items = patients_items[context]
        y = np.array([int(it["label"]) for it in items])
        images = np.stack([it["image"] for it in items])
        t0 = time.perf_counter()
        cache_copy_s: list[float] | None = None
        if backbone == "unet_encoder":
            maps, feats = frozen_cache(images, context, pretrained, rotations, cache)
            inputs = feats if part == "head" else maps
        else:
            inputs, cache_copy_s = imagenet_feature_cache(images, backbone, rotations, cache)
        cache_s = time.perf_counter() - t0
        pats = sorted({str(it["patient"]) for it in items})
        folds = patient_folds(pats, 5, seed=0)
        pid = np.array([str(it["patient"]) for it in items])
        settings = [s for s in SWEEP[part] if sweep is None or s in sweep]
        for opt, lr in settings:
            key = f"{name}/{opt}/{lr:g}"
            probs = np.zeros((len(items), 3), np.float32)
            train_s = []
            for k, (_train, val) in enumerate(folds):
                tr = np.flatnonzero(~np.isin(pid, val))
                va = np.flatnonzero(np.isin(pid, val))
                x = zscore_features(inputs, tr) if name in ZSCORED else inputs
                _, module, secs = train_on_cache(
                    part, context, pretrained, x, y, tr, opt, lr, EPOCHS[part], backbone=backbone
                )
                train_s.append(secs)
                val_items = [{"image": x[0, i], "label": int(y[i])} for i in va]
                probs[va] = predict_probabilities(module, val_items)
                print(f"{key}: fold {k + 1} trained in {secs:.1f} s", flush=True)
                # progress per fold, so that a run stopped early keeps what it measured
                results.setdefault("cv_partial", {})[key] = {
                    "folds_done": k + 1,
                    "epochs": EPOCHS[part],
                    "train_s_folds": [float(s) for s in train_s],
                    "cpu": cpu_model(),
                }
                np.save(probs_dir / f"{name}_{opt}_{lr:g}_partial.npy", probs)
                OUT_JSON.write_text(json.dumps(results, indent=1))
            res = score(probs, y, items)
            res.update(
                candidate=name,
                backbone=backbone,
                context=context,
                pretrained="segmentation encoder" if pretrained else "random",
                trained=part,
                optimizer=opt,
                lr=lr,
                epochs=EPOCHS[part],
                train_s_per_fold=float(np.mean(train_s)),
                train_s_folds=[float(s) for s in train_s],
                cache_s=cache_s,
                features="z-scored per dimension (fold's training statistics)" if name in ZSCORED else "raw",
                cpu=cpu_model(),
                torch_threads=1 if part == "head" else 2,
            )
            if cache_copy_s is not None:
                res["cache_s_per_copy"] = cache_copy_s
                res["cache_dtype"] = "bfloat16 autocast, channels-last"
            n_train = [int((~np.isin(pid, val)).sum()) * inputs.shape[0] for _, val in folds]
            res["train_items_per_epoch"] = int(np.mean(n_train))
            results["cv"][key] = res
            results.get("cv_partial", {}).pop(key, None)
            if not results.get("cv_partial", True):
                del results["cv_partial"]
            np.save(probs_dir / f"{name}_{opt}_{lr:g}.npy", probs)
            a = res["argmax"]
            print(
                f"{key}: acc {_f(a['accuracy'])} soft {_f(a['soft_accuracy'])} auc {_f(a['auc_weighted'])} "
                f"F1 {_f(a['f1_oap'], 2)}/{_f(a['f1_in'], 2)}/{_f(a['f1_obs'], 2)} "
                f"train {np.mean(train_s):.1f}s/fold",
                flush=True,
            )
            OUT_JSON.write_text(json.dumps(results, indent=1))


def baseline(results: dict[str, Any]) -> None:
    items = slice_range_items(ACDC)
    y = np.array([int(it["label"]) for it in items])
    probs = np.tile(np.array([[0.0, 1.0, 0.0]], np.float32), (len(y), 1))
    m = classification_metrics(
        probs, y, [f"{i['patient']}_{i['phase']}" for i in items], [i["slice"] for i in items]
    )
    results["baseline_always_in"] = m.to_dict()
    results["class_counts"] = np.bincount(y, minlength=3).tolist()


def train_final(name: str, opt: str, lr: float, rotations: int, cache: Path, results: dict[str, Any]) -> None:
    context, pretrained, part = CANDIDATES[name]
    items = load_items(context)
    y = np.array([int(it["label"]) for it in items])
    images = np.stack([it["image"] for it in items])
    maps, feats = frozen_cache(images, context, pretrained, rotations, cache)
    inputs = feats if part == "head" else maps
    full, _module, secs = train_on_cache(
        part, context, pretrained, inputs, y, np.arange(len(y)), opt, lr, EPOCHS[part]
    )
    path = save_half_state_dict(full, BUNDLE / "models" / "model.pt")
    results["final"] = {
        "candidate": name,
        "optimizer": opt,
        "lr": lr,
        "epochs": EPOCHS[part],
        "patients": 75,
        "train_s": secs,
        "bytes": path.stat().st_size,
    }
    OUT_JSON.write_text(json.dumps(results, indent=1))
    print("final", results["final"], flush=True)


#: Cost of one training epoch (1394 items drawn, batch 32) and one inference pass over the 1394 slices on
#: full 160x160 images, from ``--timing`` (2 train steps after a warm-up, extrapolated): filled by
#: :func:`time_candidates` into the JSON's ``timing``.
TIMED = [
    ("unet_encoder", "feature_extraction", 1),
    ("unet_encoder", "last_block", 1),
    ("unet_encoder", "last_block", 3),
    ("mobilenet_v2", "finetune", 1),
    ("resnet34", "finetune", 1),
    ("vgg16", "finetune", 1),
]


def time_candidates(results: dict[str, Any], n_items: int = 1394) -> None:
    torch.set_num_threads(2)
    x = torch.randn(32, 1, 160, 160)
    y = torch.randint(0, 3, (32,))
    out = []
    for backbone, mode, c in TIMED:
        pre = str(SEG_MODEL) if backbone == "unet_encoder" else None
        net = get_network("slice_classifier", 2, c, 3, backbone=backbone, mode=mode, pretrained=pre)
        xx = x.repeat(1, c, 1, 1)
        opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], 1e-3)
        net.eval()
        with torch.no_grad():
            net(xx)
            t = time.perf_counter()
            net(xx)
            fwd = time.perf_counter() - t
        net.train()
        steps = []
        for _ in range(3):
            t = time.perf_counter()
            opt.zero_grad()
            F.cross_entropy(net(xx), y).backward()
            opt.step()
            steps.append(time.perf_counter() - t)
        row = {
            "backbone": backbone,
            "mode": mode,
            "in_channels": c,
            "train_epoch_s": float(np.mean(steps[1:]) * n_items / 32),
            "inference_pass_s": float(fwd * n_items / 32),
        }
        print(row, flush=True)
        out.append(row)
    results["timing"] = out
    OUT_JSON.write_text(json.dumps(results, indent=1))


def figures(name: str, opt: str, lr: float, rotations: int, cache: Path, results: dict[str, Any]) -> None:
    """Confusion matrix and t-SNE of the pooled held-out folds, Grad-CAM of a fold-1 model on its fold."""
    from cardiacseg.metrics.classification import confusion_matrix
    from cardiacseg.metrics.classification_figures import plot_confusion_matrix, plot_grad_cam, plot_tsne

    context, pretrained, part = CANDIDATES[name]
    docs = BUNDLE / "docs"
    items = load_items(context)
    y = np.array([int(it["label"]) for it in items])
    probs = np.load(cache / "probs" / f"{name}_{opt}_{lr:g}.npy")
    title = f"{name} {opt} {lr:g}, 5-fold CV by patient (held-out, pooled)"
    plot_confusion_matrix(
        confusion_matrix(probs.argmax(1), y, 3), docs / "confusion_matrix.png", title=title, overwrite=True
    )
    images = np.stack([it["image"] for it in items])
    maps, feats = frozen_cache(images, context, pretrained, rotations, cache)
    # penultimate features: the frozen encoder's pooled output (the same in every fold for this recipe)
    plot_tsne(
        feats[0],
        y,
        docs / "tsne.png",
        title="t-SNE of the 512-d encoder features (truth colours)",
        overwrite=True,
    )
    pid = np.array([str(it["patient"]) for it in items])
    folds = patient_folds(sorted(set(pid.tolist())), 5, seed=0)
    val = folds[0][1]
    tr, va = np.flatnonzero(~np.isin(pid, val)), np.flatnonzero(np.isin(pid, val))
    inputs = feats if part == "head" else maps
    full, _m, _s = train_on_cache(part, context, pretrained, inputs, y, tr, opt, lr, EPOCHS[part])
    full.eval()
    torch.set_num_threads(2)
    with torch.no_grad():
        p = torch.softmax(full(torch.from_numpy(images[va])), 1).numpy()
    pred = p.argmax(1)
    right = [i for i in range(len(va)) if pred[i] == y[va][i] and y[va][i] != 1][:3]
    right += [i for i in range(len(va)) if pred[i] == y[va][i] == 1][:1]
    wrong = [i for i in range(len(va)) if pred[i] != y[va][i]][:4]
    for tag, sel in (("right", right), ("wrong", wrong)):
        idx = va[sel]
        plot_grad_cam(
            full,
            torch.from_numpy(images[idx]),
            docs / f"grad_cam_{tag}.png",
            truth=y[idx].tolist(),
            overwrite=True,
        )
    results["figures"] = {
        "recipe": f"{name}/{opt}/{lr:g}",
        "grad_cam_fold": 1,
        "grad_cam_fold_accuracy": float((pred == y[va]).mean()),
        "grad_cam_right": [
            f"{items[i]['patient']} {items[i]['phase']} slice {items[i]['slice']}" for i in va[right]
        ],
        "grad_cam_wrong": [
            f"{items[i]['patient']} {items[i]['phase']} slice {items[i]['slice']} truth {y[i]}"
            for i in va[wrong]
        ],
    }
    OUT_JSON.write_text(json.dumps(results, indent=1))


def _f(v: float | None, nd: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def write_markdown(results: dict[str, Any]) -> None:
    """``docs/benchmarks/slice_range_cv.md`` from the JSON."""
    b = results["baseline_always_in"]
    counts = results["class_counts"]
    lines = [
        "# Slice-range classifier: 5-fold cross-validation by patient (ACDC)",
        "",
        "Generated by `benchmarks/slice_range_cv.py` (numbers: `slice_range_cv.json`). 75 ACDC patients,",
        f"ED and ES, {sum(counts)} slices: OAP {counts[0]}, IN {counts[1]}, OBS {counts[2]} (labels from the",
        "expert segmentations, `docs/slice_range.md`). Folds: `patient_folds(seed=0)` (stratified by",
        "pathology); held-out predictions of the five folds pooled. Encoder: the shipped `cardiac_cine_seg`",
        "U-Net's down path (`unet_encoder`), or an ImageNet-layout backbone of the factory (`vgg16`,",
        "`resnet34`, `resnet50`, `densenet121`, `mobilenet_v2`) with random weights (no ImageNet weights on",
        "this machine), 1 input channel; frozen stages cached once per slice (original + 2 copies rotated",
        "at random within +-45 degrees, drawn once and the same for every backbone: the augmentation); the",
        "ImageNet-layout frozen pass runs under CPU bfloat16 autocast (features within ~0.5 % of float32)",
        "and their features are z-scored per dimension with each fold's training statistics (column",
        "*features*; `random_fe_z` is the U-Net control with the same step); training through",
        "`cardiacseg.engines.slice_range.slice_range_trainer` (MONAI `SupervisedTrainer`, cross-entropy,",
        "OAP/OBS oversampled x6 by a `WeightedRandomSampler`, cosine learning rate). *Ordered*: the",
        "per-slice probabilities made monotone OAP\\*IN\\*OBS\\* along each stack (direction decided by",
        "the more probable labelling, `monotone_slice_labels(apex_to_base=None)`), as the shipped predictor",
        "does by default.",
        "",
        "The learning rate is chosen on the same pooled folds (macro F1), so the best row is optimistic.",
        "",
        "## Trivial baseline",
        "",
        f"Always IN: accuracy {_f(b['accuracy'])}, soft accuracy {_f(b['soft_accuracy'])}, F1 OAP/IN/OBS "
        f"{_f(b['f1_oap'], 2)}/{_f(b['f1_in'], 2)}/{_f(b['f1_obs'], 2)}. The paper's targets (accuracy >= 0.90,",
        "soft >= 0.97) are met or nearly met by this baseline on ACDC, whose stacks hold few slices outside",
        "the LV; the rare-class F1 and the AUC are the informative numbers.",
        "",
        "## Cross-validation",
        "",
        "| candidate | backbone | init | features | trained | opt | lr | epochs | items/epoch | train s/fold | "
        "accuracy | soft | AUC (weighted) | F1 OAP | F1 IN | F1 OBS | acc. ordered | soft ordered | "
        "F1 OAP/OBS ordered |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["cv"].values():
        a, o = r["argmax"], r["ordered"]
        feats = "z-scored" if r.get("features", "raw").startswith("z-scored") else "raw"
        lines.append(
            f"| {r['candidate']} (context {r['context']}) | {r.get('backbone', 'unet_encoder')} | "
            f"{r['pretrained']} | {feats} | {r['trained']} | "
            f"{r['optimizer']} | {r['lr']:g} | {r['epochs']} | {r['train_items_per_epoch']} | "
            f"{r['train_s_per_fold']:.0f} | {_f(a['accuracy'])} | {_f(a['soft_accuracy'])} | "
            f"{_f(a['auc_weighted'])} | {_f(a['f1_oap'], 2)} | {_f(a['f1_in'], 2)} | {_f(a['f1_obs'], 2)} | "
            f"{_f(o['accuracy'])} | {_f(o['soft_accuracy'])} | {_f(o['f1_oap'], 2)}/{_f(o['f1_obs'], 2)} |"
        )
    cpus = sorted({r["cpu"] for r in results["cv"].values() if "cpu" in r})
    if cpus:
        lines += ["", f"CPU of the rows that record it: {'; '.join(cpus)}, no GPU, shared with other work."]
    cached = {r["backbone"]: r["cache_s_per_copy"] for r in results["cv"].values() if "cache_s_per_copy" in r}
    if cached:
        lines += [
            "",
            "## Frozen pass of the ImageNet-layout backbones (cache)",
            "",
            "Seconds per copy of the 1394 slices (original, rotated, rotated), batch 64, 2 threads, bfloat16",
            "autocast, channels-last:",
            "",
            "| backbone | s per copy |",
            "|---|---|",
        ]
        lines += [f"| {b} | {' / '.join(f'{v:.0f}' for v in c)} |" for b, c in cached.items()]
    if "timing" in results:
        lines += [
            "",
            "## Cost per epoch on this machine (full 160x160 images, no cache)",
            "",
            "One training epoch = 1394 items, batch 32 (2 train steps after a warm-up, extrapolated), and one",
            "inference pass over the 1394 slices; 2-core CPU shared with other work, no GPU (`--timing`).",
            "",
            "| backbone | mode | in channels | train epoch (s) | inference pass (s) |",
            "|---|---|---|---|---|",
        ]
        for t in results["timing"]:
            lines.append(
                f"| {t['backbone']} | {t['mode']} | {t['in_channels']} | {t['train_epoch_s']:.0f} | "
                f"{t['inference_pass_s']:.0f} |"
            )
    for extra in results.get("notes", []):
        lines += ["", extra]
    if "final" in results:
        fin = results["final"]
        lines += [
            "",
            "## Shipped model",
            "",
            f"`{fin['candidate']}`, {fin['optimizer']} lr {fin['lr']:g}, {fin['epochs']} epochs on all 75",
            f"patients ({fin['train_s']:.0f} s on the cache); `models/model.pt` {fin['bytes'] / 1e6:.1f} MB (float16).",
        ]
    OUT_MD.write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", default="", help="comma-separated names of CANDIDATES")
    ap.add_argument("--rotations", type=int, default=2)
    ap.add_argument(
        "--sweep", default="", help="optimizer/lr,...: only these settings of SWEEP (default all)"
    )
    ap.add_argument("--cache", type=Path, default=Path("/tmp/slice_range_cache"))
    ap.add_argument("--final", default="", help="candidate/optimizer/lr to train on all patients")
    ap.add_argument("--figures", default="", help="candidate/optimizer/lr: bundle figures")
    ap.add_argument("--timing", action="store_true", help="time one epoch of each full-image candidate")
    ap.add_argument("--markdown", action="store_true", help="(re)write the Markdown report from the JSON")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    results: dict[str, Any] = json.loads(OUT_JSON.read_text()) if OUT_JSON.exists() else {}
    results.setdefault("cv", {})
    if "baseline_always_in" not in results:
        baseline(results)
    probs_dir = args.cache / "probs"
    probs_dir.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.candidates.split(",") if n]
    sweep = None
    if args.sweep:
        sweep = [(s.split("/")[0], float(s.split("/")[1])) for s in args.sweep.split(",")]
    if names:
        run_cv(names, args.rotations, args.cache, results, probs_dir, sweep)
    if args.final:
        name, opt, lr = args.final.split("/")
        train_final(name, opt, float(lr), args.rotations, args.cache, results)
    if args.figures:
        name, opt, lr = args.figures.split("/")
        figures(name, opt, float(lr), args.rotations, args.cache, results)
    if args.timing:
        time_candidates(results)
    OUT_JSON.write_text(json.dumps(results, indent=1))
    if args.markdown:
        write_markdown(results)


if __name__ == "__main__":
    main()
