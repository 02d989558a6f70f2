"""Training and evaluation of the slice-range classifier (OAP 0 / IN 1 / OBS 2) with MONAI's Ignite engines.

The recipe of the slice-range paper (``../shared/papers/slice-range.txt``): cross-entropy, the rare
classes (OAP, OBS) oversampled six times (a :class:`~torch.utils.data.WeightedRandomSampler` whose epoch
draws as many samples as the dataset with the rare items repeated), random rotations within +-45 degrees
(:class:`monai.transforms.RandRotated`), SGD with Nesterov momentum 0.9 or Adam. Items are the dicts of
:func:`cardiacseg.data.slice_range.slice_range_items` (``"image"`` ``(C, X, Y)`` z-scored with
:class:`~cardiacseg.transforms.intensity.array.SliceZScore`, ``"label"`` an int); the same engines train a
head alone on cached penultimate features (``"image"`` an ``(F,)`` vector, no augmentation).

Builders, not subclasses: :func:`slice_range_trainer` returns a MONAI
:class:`~monai.engines.SupervisedTrainer`, :func:`slice_range_evaluator` a
:class:`~monai.engines.SupervisedEvaluator`; :func:`predict_probabilities` runs the evaluator and collects
the softmax. The bundle ``cardiacseg/slice_range_classifier/configs/train.json`` wires them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.transforms import Compose, EnsureTyped, RandRotated
from torch import nn
from torch.utils.data import WeightedRandomSampler

from cardiacseg.networks.weights import save_half_precision
from cardiacseg.typing import PathLike

__all__ = [
    "OVERSAMPLE",
    "evaluate_slice_range",
    "oversampling_weights",
    "predict_probabilities",
    "save_half_state_dict",
    "slice_range_evaluator",
    "slice_range_train_transforms",
    "slice_range_trainer",
    "slice_range_val_transforms",
    "zscore_items",
]

#: Oversampling factor of the rare classes (OAP 0 and OBS 2) in the paper.
OVERSAMPLE = 6.0

OptimizerName = Literal["adam", "sgd"]


def zscore_items(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copy :func:`~cardiacseg.data.slice_range.slice_range_items` items with z-scored images.

    :class:`~cardiacseg.transforms.intensity.array.SliceZScore` per channel, as the inference input
    (:func:`cardiacseg.transforms.slice_input.slice_classifier_input`) does.

    Args:
        items: items with a ``(C, X, Y)`` ``"image"``.

    Returns:
        New dicts, ``"image"`` float32 numpy.

    """
    from cardiacseg.transforms.intensity.array import SliceZScore

    z = SliceZScore()
    return [{**it, "image": np.asarray(z(np.asarray(it["image"])), dtype=np.float32)} for it in items]


def oversampling_weights(
    labels: Sequence[int] | npt.ArrayLike, oversample: float = OVERSAMPLE, common: int = 1
) -> npt.NDArray[np.float64]:
    """Weight each item for sampling: ``oversample`` for the rare classes, 1 for ``common`` (IN).

    Args:
        labels: class of each item.
        oversample: weight of every class other than ``common``.
        common: the majority class.

    Returns:
        ``(N,)`` weights.

    Example:
        >>> oversampling_weights([0, 1, 1, 2]).tolist()
        [6.0, 1.0, 1.0, 6.0]

    """
    y = np.asarray(labels)
    return np.where(y == common, 1.0, float(oversample))


def slice_range_train_transforms(rotate_degrees: float = 45.0, prob: float = 1.0) -> Compose:
    """Training augmentation: a random in-plane rotation within ``+-rotate_degrees`` (the paper's +-45).

    Bilinear, zero padding (0 is the slice mean after z-scoring).

    Args:
        rotate_degrees: maximum rotation; 0: none.
        prob: probability of rotating an item.

    Returns:
        A dictionary :class:`~monai.transforms.Compose` on ``"image"``.

    """
    steps: list[Callable[..., Any]] = []
    if rotate_degrees > 0:
        r = math.radians(rotate_degrees)
        steps.append(RandRotated(keys="image", range_x=r, prob=prob, mode="bilinear", padding_mode="zeros"))
    steps.append(EnsureTyped(keys="image", dtype=torch.float32, track_meta=False))
    return Compose(steps)


def slice_range_val_transforms() -> Compose:
    """Build the evaluation transforms: the z-scored item as a float32 tensor."""
    return Compose([EnsureTyped(keys="image", dtype=torch.float32, track_meta=False)])


def _optimizer(
    network: nn.Module, optimizer: OptimizerName, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    params = [p for p in network.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the network has no trainable parameters")
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")


def slice_range_trainer(
    network: nn.Module,
    train_items: Sequence[Mapping[str, Any]],
    max_epochs: int = 10,
    lr: float = 1e-3,
    optimizer: OptimizerName = "adam",
    weight_decay: float = 0.0,
    batch_size: int = 32,
    oversample: float = OVERSAMPLE,
    class_weights: Sequence[float] | None = None,
    transforms: Callable[..., Any] | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    num_workers: int = 0,
    train_handlers: Sequence[Any] | None = None,
) -> SupervisedTrainer:
    """Build a MONAI ``SupervisedTrainer`` for the slice-range classifier.

    Each epoch draws ``len(train_items)`` items with replacement, OAP/OBS ``oversample`` times as likely as
    IN (``oversample=1``: a plain shuffle). The loss is cross-entropy, optionally class-weighted.

    Args:
        network: ``(B, C, H, W) -> (B, 3)`` logits (or a head on ``(B, F)`` features); only parameters
            with ``requires_grad`` are optimised (the :class:`SliceClassifier` ``mode`` decides).
        train_items: dicts with ``"image"`` and an int ``"label"``.
        max_epochs: epochs.
        lr: learning rate (cosine-annealed to 0 over the run, stepped per iteration).
        optimizer: ``"adam"`` or ``"sgd"`` (Nesterov, momentum 0.9).
        weight_decay: L2 penalty.
        batch_size: items per iteration.
        oversample: sampling weight of the rare classes relative to IN; ``None`` or 1: shuffle.
        class_weights: cross-entropy weights per class, or ``None``.
        transforms: dictionary transforms of each item (default: :func:`slice_range_train_transforms`;
            pass :func:`slice_range_val_transforms` for cached features).
        device: torch device.
        seed: seed of the sampler (and of MONAI's random transforms through ``set_determinism`` elsewhere).
        num_workers: data-loader workers.
        train_handlers: extra Ignite handlers.

    Returns:
        The trainer (``trainer.run()`` trains; ``trainer.network`` is ``network``).

    Raises:
        ValueError: empty ``train_items`` or a bad optimizer name.

    """
    if not train_items:
        raise ValueError("train_items is empty")
    dev = torch.device(device)
    labels = [int(it["label"]) for it in train_items]
    ds = Dataset(data=list(train_items), transform=transforms or slice_range_train_transforms())
    gen = torch.Generator().manual_seed(seed)
    if oversample and oversample != 1:
        w = oversampling_weights(labels, oversample)
        sampler = WeightedRandomSampler(w.tolist(), num_samples=len(labels), replacement=True, generator=gen)
        loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=num_workers)
    else:
        loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=num_workers, generator=gen)
    network.to(dev)
    opt = _optimizer(network, optimizer, lr, weight_decay)
    cw = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32, device=dev)
    loss = nn.CrossEntropyLoss(weight=cw)
    handlers = list(train_handlers or [])
    n_iter = max(1, max_epochs * len(loader))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n_iter)
    from monai.handlers import LrScheduleHandler

    handlers.append(LrScheduleHandler(sched, print_lr=False, epoch_level=False))  # type: ignore[arg-type]
    return SupervisedTrainer(
        device=dev,
        max_epochs=max_epochs,
        train_data_loader=loader,
        network=network,
        optimizer=opt,
        loss_function=loss,
        train_handlers=handlers,
        amp=False,
    )


def slice_range_evaluator(
    network: nn.Module,
    items: Sequence[Mapping[str, Any]],
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    transforms: Callable[..., Any] | None = None,
) -> SupervisedEvaluator:
    """Build a MONAI ``SupervisedEvaluator`` over ``items`` that keeps the softmax of every item.

    After ``evaluator.run()`` the probabilities are in ``evaluator.state.probabilities`` (``(N, 3)``
    float32 numpy, item order) and the labels in ``evaluator.state.labels``.

    Args:
        network: the classifier.
        items: dicts with ``"image"`` and ``"label"``.
        batch_size: items per forward pass.
        device: torch device.
        transforms: dictionary transforms (default: :func:`slice_range_val_transforms`).

    Returns:
        The evaluator.

    """
    from ignite.engine import Engine, Events

    dev = torch.device(device)
    loader = DataLoader(
        Dataset(data=list(items), transform=transforms or slice_range_val_transforms()),
        batch_size=batch_size,
        shuffle=False,
    )
    evaluator = SupervisedEvaluator(
        device=dev, val_data_loader=loader, network=network.to(dev), decollate=False, amp=False
    )
    probs: list[npt.NDArray[np.float32]] = []
    labels: list[npt.NDArray[np.int64]] = []

    def _reset(engine: Engine) -> None:
        probs.clear()
        labels.clear()

    def _collect(engine: Engine) -> None:
        out = engine.state.output
        assert isinstance(out, dict)
        probs.append(torch.softmax(out["pred"].float(), dim=1).detach().cpu().numpy())
        labels.append(torch.as_tensor(out["label"]).detach().cpu().numpy().astype(np.int64))

    def _finish(engine: Engine) -> None:
        engine.state.probabilities = np.concatenate(probs) if probs else np.zeros((0, 3), np.float32)  # type: ignore[attr-defined]
        engine.state.labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)  # type: ignore[attr-defined]

    evaluator.add_event_handler(Events.EPOCH_STARTED, _reset)
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, _collect)
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, _finish)
    return evaluator


def predict_probabilities(
    network: nn.Module,
    items: Sequence[Mapping[str, Any]],
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    transforms: Callable[..., Any] | None = None,
) -> npt.NDArray[np.float32]:
    """Softmax ``(N, 3)`` of ``network`` on ``items`` (in order), through :func:`slice_range_evaluator`.

    Args:
        network: the classifier.
        items: dicts with ``"image"`` and ``"label"``.
        batch_size: items per forward pass.
        device: torch device.
        transforms: dictionary transforms (default: :func:`slice_range_val_transforms`).

    Returns:
        Probabilities, float32.

    """
    ev = slice_range_evaluator(network, items, batch_size, device, transforms)
    ev.run()
    out: npt.NDArray[np.float32] = ev.state.probabilities
    return out


def save_half_state_dict(network: nn.Module, path: PathLike) -> Path:
    """Save ``network.state_dict()`` with floating tensors in half precision (as the shipped models).

    :func:`~cardiacseg.networks.weights.save_half_precision` (atomic; the folder is created).

    Args:
        network: the trained network.
        path: output ``model.pt``.

    Returns:
        The path.

    """
    return save_half_precision(network.state_dict(), path)


def evaluate_slice_range(
    network: nn.Module,
    items: Sequence[Mapping[str, Any]],
    output_file: PathLike | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Compute the paper's metrics of ``network`` on ``items`` (per-slice argmax), optionally as JSON.

    Accuracy, soft accuracy (a neighbour's class counts, per ``patient``/``phase`` stack), per-class
    precision/recall/F1 and the weighted AUC
    (:func:`cardiacseg.metrics.classification.classification_metrics`).

    Args:
        network: the classifier.
        items: z-scored items of :func:`~cardiacseg.data.slice_range.slice_range_items`.
        output_file: JSON file to write (parent folders created), or ``None``.
        batch_size: items per forward pass.
        device: torch device.

    Returns:
        ``ClassificationMetrics.to_dict()``.

    """
    import json

    from cardiacseg.metrics.classification import classification_metrics

    network.eval()
    probs = predict_probabilities(network, items, batch_size, device)
    stacks = [f"{it.get('patient', '')}_{it.get('phase', '')}" for it in items]
    zs = [int(it.get("slice", i)) for i, it in enumerate(items)]
    out = classification_metrics(probs, [int(it["label"]) for it in items], stacks, zs).to_dict()
    if output_file is not None:
        path = Path(output_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1))
    return out
