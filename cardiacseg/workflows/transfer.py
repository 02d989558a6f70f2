"""Transfer a segmentation bundle to a user's own data: R, TL and TL2 starts, subsets, partial labels.

The 7T transfer study (``transfer-7t``, section II.D) compared three starting points, all trained on the
new domain with the same data:

- ``random`` (R): random weights, every layer trained from the first epoch;
- ``imagenet`` (TL): a ResNet34 U-Net whose encoder holds ImageNet weights (a local file the user gives:
  nothing is downloaded), decoder random;
- ``shipped`` (TL2): the weights of a trained cardiac bundle (the shipped one by default).

TL and TL2 use the staged schedule of ``configs/transfer.json``: the encoder frozen for ``stage1_epochs``
at ``stage1_lr``, then everything fine-tuned for ``stage2_epochs`` at ``stage2_lr``; R uses the same
learning-rate schedule without freezing. :func:`run_transfer` resolves the data (a MONAI datalist JSON,
an ACDC-layout folder or the SSL4MIS HDF5 folder), splits it by patient, selects the requested subset,
writes a copy of the bundle whose ``configs/transfer.json`` records every choice, trains it with
:func:`~cardiacseg.engines.workflow.training_workflow` (``train.json`` + ``transfer.json``: the one
training route), and publishes the best validation weights as ``models/model.pt``, so that
``cardiacseg segment --bundle OUT`` uses the result directly.

Resume and overwrite (``OUT/transfer/run.json`` records the run's options and its status):

- ``OUT`` absent (or an empty folder): a new run.
- ``OUT`` holds an unfinished run with the same options: it resumes from ``models/transfer/last.pt``
  (network, optimizer, scheduler, epoch, random states; exact) and continues its MLflow run.
- ``OUT`` holds an unfinished run with other options, or a finished run: refused unless ``overwrite``,
  which deletes it and starts again. Options that do not change the result (device, MLflow on/off,
  progress) may differ on a resume.
- ``OUT`` exists but was not made by this function (no ``transfer/run.json``): always refused, even with
  ``overwrite``: nothing a user wrote is deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardiacseg.typing import PathLike

__all__ = [
    "STARTS",
    "TransferResult",
    "parse_labelled",
    "resolve_transfer_data",
    "run_transfer",
    "select_transfer_data",
]

logger = logging.getLogger(__name__)

#: Starting points: random weights (R), ImageNet encoder (TL), the shipped bundle's weights (TL2).
STARTS = ("random", "imagenet", "shipped")

#: Network of the ImageNet start (its encoder is torchvision's ResNet34).
IMAGENET_NETWORK = "resnet34_unet"

#: What of the source bundle the output bundle copies (not weights, run outputs, eval/ or mlruns/).
_BUNDLE_PARTS = ("LICENSE", "configs", "docs")

#: Options that may differ when an unfinished run is resumed (they do not change the result).
_RUNTIME_OPTIONS = ("device", "mlflow", "tracking_uri", "progress")


@dataclass(frozen=True)
class TransferResult:
    """What :func:`run_transfer` did.

    Attributes:
        bundle: the output bundle folder.
        model: its weights, ``bundle/models/model.pt`` (best validation mean Dice).
        history: one record per validated epoch (``epoch``, ``iteration``, ``images_seen``,
            ``learning_rate``, ``val_mean_dice``), from ``bundle/transfer/history.json``.
        best_val_dice: the best validation mean Dice over the labelled structures.
        best_epoch: its epoch.
        epochs_run: the last epoch trained (fewer than planned after early stopping).
        resumed_from: the epoch of the checkpoint the run resumed from, or ``None`` for a fresh run.
        train_images: training images (2D slices) per epoch.
        validation_images: validation images.
        train_patients: training patients.
        validation_patients: validation patients.
        mlflow_run_id: the MLflow run, or ``None`` without tracking.

    Example:
        >>> result = run_transfer("datalist.json", "my_bundle")  # doctest: +SKIP
        >>> result.best_val_dice  # doctest: +SKIP
        0.87

    """

    bundle: Path
    model: Path
    history: list[dict[str, Any]]
    best_val_dice: float | None
    best_epoch: int | None
    epochs_run: int
    resumed_from: int | None
    train_images: int
    validation_images: int
    train_patients: list[str] = field(default_factory=list)
    validation_patients: list[str] = field(default_factory=list)
    mlflow_run_id: str | None = None


@dataclass
class TransferData:
    """A resolved data source: datalist entries with absolute paths.

    Attributes:
        kind: ``"datalist"``, ``"acdc"`` or ``"ssl4mis"``.
        path: the datalist file or folder (absolute).
        sha256: SHA-256 of the datalist file; for a folder, of its listing (relative names and sizes).
        label_convention: the labels' convention for :func:`~cardiacseg.data.datalist.datalist_slice_items`.
        training: entries of the training section.
        validation: entries of the validation section, or ``None`` (split by patient then).

    """

    kind: str
    path: Path
    sha256: str
    label_convention: str
    training: list[dict[str, Any]]
    validation: list[dict[str, Any]] | None


def parse_labelled(labelled: str | Sequence[str]) -> list[int]:
    """Return the internal class values of labelled structure names.

    Args:
        labelled: ``"lv,myo"`` or ``["lv", "myo"]`` (names ``lv``, ``myo``, ``rv``, any case).

    Returns:
        Sorted class values (1 LV, 2 MYO, 3 RV).

    Raises:
        ValueError: an unknown or no structure name.

    Example:
        >>> parse_labelled("lv,myo")
        [1, 2]

    """
    from cardiacseg.data.datalist import STRUCTURE_CLASSES

    names = labelled.split(",") if isinstance(labelled, str) else list(labelled)
    names = [n.strip().lower() for n in names if n.strip()]
    unknown = [n for n in names if n not in STRUCTURE_CLASSES]
    if unknown or not names:
        raise ValueError(
            f"labelled structures must be some of {', '.join(STRUCTURE_CLASSES)}; got {labelled!r}"
        )
    return sorted({STRUCTURE_CLASSES[n] for n in names})


def _listing_sha256(root: Path, files: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for f in sorted(files):
        digest.update(f"{f.relative_to(root).as_posix()}\t{f.stat().st_size}\n".encode())
    return digest.hexdigest()


def _acdc_patient_folders(root: Path) -> list[Path]:
    if (root / "Info.cfg").is_file():
        return [root]
    found = sorted(p.parent for p in root.glob("*/Info.cfg"))
    return found or sorted(p.parent for p in root.glob("*/*/Info.cfg"))


def _first_file(*candidates: Path) -> Path | None:
    return next((p for p in candidates if p.is_file()), None)


def _acdc_entries(folders: Sequence[Path]) -> list[dict[str, Any]]:
    from cardiacseg.io.acdc import read_acdc_info

    entries = []
    for folder in folders:
        pid = folder.name
        info = read_acdc_info(folder / "Info.cfg")
        for phase, frame in (("ED", info.ed_frame), ("ES", info.es_frame)):
            stem = folder / f"{pid}_frame{frame:02d}"
            image = _first_file(Path(f"{stem}.nii.gz"), Path(f"{stem}.nii"))
            label = _first_file(Path(f"{stem}_gt.nii.gz"), Path(f"{stem}_gt.nii"))
            if image is not None and label is not None:
                entries.append({"image": str(image), "label": str(label), "patient": pid, "phase": phase})
    return entries


def resolve_transfer_data(data: PathLike, label_convention: str | None = None) -> TransferData:
    """Read a data source into datalist entries with absolute paths.

    Args:
        data: a MONAI datalist JSON (``{"training": [{"image", "label", "patient"?, "phase"?,
            "annotated_slices"?}], "validation"?: [...]}``, paths relative to the file), an ACDC-layout
            folder (``patientNNN/Info.cfg`` and ``_gt`` frames: ED and ES of each patient), or the SSL4MIS
            HDF5 folder (``patientNNN_frame01.h5``: ED, ``frame02``: ES).
        label_convention: ``"internal"`` or ``"acdc"`` for a datalist (default ``"internal"``); folders
            carry ACDC labels, converted when read (giving ``"internal"`` for a folder is an error).

    Returns:
        A :class:`TransferData`.

    Raises:
        FileNotFoundError: ``data`` does not exist.
        ValueError: not one of the three layouts, an empty training section, an entry without
            ``image``/``label``, or a label convention given for a folder (the path is named).

    Example:
        >>> resolve_transfer_data("../shared/data/acdc_ssl4mis").kind  # doctest: +SKIP
        'ssl4mis'

    """
    from cardiacseg.io.ssl4mis import list_ssl4mis_patients
    from cardiacseg.provenance import file_sha256

    path = Path(data).resolve()
    if not path.exists():
        raise FileNotFoundError(f"{path}: training data not found")
    if path.is_file():
        try:
            content = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a datalist JSON ({exc})") from exc
        if not isinstance(content, dict) or not content.get("training"):
            raise ValueError(f"{path}: a datalist needs a non-empty 'training' section")
        convention = label_convention or "internal"
        if convention not in ("internal", "acdc"):
            raise ValueError(f"label convention must be 'internal' or 'acdc', got {convention!r}")
        sections: dict[str, list[dict[str, Any]]] = {}
        for section in ("training", "validation"):
            if section not in content:
                continue
            if not isinstance(content[section], list):
                raise ValueError(f"{path}: section {section!r} must be a list of entries")
            entries = []
            for i, entry in enumerate(content[section]):
                if not isinstance(entry, dict) or not ("image" in entry and "label" in entry):
                    raise ValueError(f"{path}: {section} entry {i} needs 'image' and 'label' ({entry!r})")
                resolved = dict(entry)
                for key in ("image", "label"):
                    resolved[key] = str((path.parent / str(entry[key])).resolve())
                resolved.setdefault("patient", f"{section}{i:03d}")
                entries.append(resolved)
            sections[section] = entries
        if "validation" in sections and not sections["validation"]:
            raise ValueError(f"{path}: the 'validation' section is empty (leave it out to split by patient)")
        return TransferData(
            "datalist", path, file_sha256(path), convention, sections["training"], sections.get("validation")
        )
    if label_convention not in (None, "acdc"):
        raise ValueError(
            f"{path}: a folder carries ACDC labels (converted when read); --label-convention applies to "
            "datalists only"
        )
    patients = list_ssl4mis_patients(path)
    if patients:
        root = path / "data" if (path / "data").is_dir() else path
        entries = [
            {"ssl4mis": str(path), "patient": pid, "frame": frame, "phase": phase}
            for pid in patients
            for frame, phase in ((1, "ED"), (2, "ES"))
        ]
        files = [f for f in root.iterdir() if f.suffix == ".h5"]
        return TransferData("ssl4mis", path, _listing_sha256(path, files), "internal", entries, None)
    folders = _acdc_patient_folders(path)
    if folders:
        entries = _acdc_entries(folders)
        if not entries:
            raise ValueError(f"{path}: ACDC patient folders without labelled (_gt) ED/ES frames")
        files = [Path(e[k]) for e in entries for k in ("image", "label")]
        return TransferData("acdc", path, _listing_sha256(path, files), "acdc", entries, None)
    raise ValueError(
        f"{path}: not a datalist JSON file, an ACDC folder (patientNNN/Info.cfg) or an SSL4MIS folder "
        "(patientNNN_frameNN.h5)"
    )


def select_transfer_data(
    source: TransferData,
    val_fraction: float = 0.2,
    subjects: int | None = None,
    images: int | None = None,
    ed_es_only: bool = False,
    labelled_classes: Sequence[int] | None = None,
    drop_unlabelled: bool = False,
    seed: int = 0,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """Split by patient (when there is no validation section) and select the training subset.

    The order is: validation split (``val_fraction`` of the patients, seeded; stratified by ACDC
    pathology group for ACDC/SSL4MIS folders), then on the training part only: ``subjects`` whole
    patients (:func:`~cardiacseg.data.datalist.subset_subjects`: nested), ``ed_es_only`` (entries whose
    ``phase`` is ED or ES), and ``images`` random 2D images (one shuffle of all remaining training
    images, the first ``images``: :func:`~cardiacseg.data.datalist.random_image_subset`, nested). Every
    entry is read once here, so bad files and labels fail before training starts.

    Args:
        source: from :func:`resolve_transfer_data`.
        val_fraction: fraction of patients held out for validation (without a validation section).
        subjects: number of whole training subjects, or ``None`` for all.
        images: number of training images (2D slices), or ``None`` for all.
        ed_es_only: keep only entries with ``"phase"`` ED or ES.
        labelled_classes: labelled foreground classes (default all).
        drop_unlabelled: set other classes to 0 instead of refusing them.
        seed: seed of the split and of the subset shuffles.

    Returns:
        ``(datalist, summary)``: ``{"training": entries, "validation": entries}`` (image subsets as
        per-entry ``"slices"``) and counts/ids of what was chosen.

    Raises:
        ValueError: fewer than 2 patients to split, a subset larger than the data, ``ed_es_only`` with
            entries without a phase, or no training image left.

    Example:
        >>> source = resolve_transfer_data("datalist.json")  # doctest: +SKIP
        >>> datalist, summary = select_transfer_data(source, subjects=3)  # doctest: +SKIP

    """
    from cardiacseg.data.datalist import (
        acdc_group,
        datalist_slice_items,
        kfold_patients,
        random_image_subset,
        subset_subjects,
    )

    training = [dict(e) for e in source.training]
    if source.validation is None:
        patients = sorted({str(e["patient"]) for e in training})
        if len(patients) < 2:
            raise ValueError(
                f"{source.path}: {len(patients)} patient(s): at least 2 are needed to hold one out for "
                "validation (or give a 'validation' section)"
            )
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
        n_folds = min(max(2, round(1.0 / val_fraction)), len(patients))
        stratify = acdc_group if source.kind in ("acdc", "ssl4mis") else None
        train_ids, val_ids = kfold_patients(patients, n_folds, seed, stratify)[0]
        validation = [e for e in training if str(e["patient"]) in set(val_ids)]
        training = [e for e in training if str(e["patient"]) in set(train_ids)]
    else:
        validation = [dict(e) for e in source.validation]
    if subjects is not None:
        all_train = sorted({str(e["patient"]) for e in training})
        if not 1 <= subjects <= len(all_train):
            raise ValueError(f"--subjects {subjects}: the training part has {len(all_train)} subjects")
        keep = set(subset_subjects(all_train, subjects, seed))
        training = [e for e in training if str(e["patient"]) in keep]
    if ed_es_only:
        no_phase = [i for i, e in enumerate(training) if not e.get("phase")]
        if no_phase:
            raise ValueError(
                f"{source.path}: --ed-es-only needs a 'phase' in every training entry; entries "
                f"{no_phase[:5]} have none"
            )
        training = [e for e in training if str(e["phase"]).upper() in ("ED", "ES")]
    conv = source.label_convention
    content = {"training": training, "validation": validation}
    train_items = datalist_slice_items(content, "training", conv, labelled_classes, drop_unlabelled)
    if images is not None:
        if not 1 <= images <= len(train_items):
            raise ValueError(f"--images {images}: the training part has {len(train_items)} images")
        chosen: dict[int, list[int]] = {}
        for item in random_image_subset(train_items, images, seed):
            chosen.setdefault(int(item["entry"]), []).append(int(item["slice"]))
        training = [dict(e, slices=sorted(chosen[i])) for i, e in enumerate(training) if i in chosen]
        train_items = [it for it in train_items if int(it["slice"]) in chosen.get(int(it["entry"]), [])]
    if not train_items:
        raise ValueError(f"{source.path}: no training image left after the selection")
    val_items = datalist_slice_items(
        {"validation": validation}, "validation", conv, labelled_classes, drop_unlabelled
    )
    if not val_items:
        raise ValueError(f"{source.path}: no validation image")
    summary = {
        "train_images": len(train_items),
        "validation_images": len(val_items),
        "train_patients": sorted({str(e["patient"]) for e in training}),
        "validation_patients": sorted({str(e["patient"]) for e in validation}),
    }
    return {"training": training, "validation": validation}, summary


def _shipped_bundle(bundle: PathLike | None) -> Path:
    from cardiacseg.demo import shipped_bundle_path

    root = Path(bundle).resolve() if bundle is not None else shipped_bundle_path()
    for need in ("configs/train.json", "configs/transfer.json", "configs/inference.json"):
        if not (root / need).is_file():
            raise FileNotFoundError(f"{root}: not a cardiacseg segmentation bundle ({need} missing)")
    return root


def _bundle_network(root: Path) -> str:
    name = json.loads((root / "configs" / "inference.json").read_text()).get("network_name", "unet")
    return str(name)


def _check_start_weights(network: str, weights: Path) -> None:
    from cardiacseg.networks import get_network, load_partial, load_state_dict_file

    net = get_network(network, 2, 1, 4)
    report = load_partial(net, load_state_dict_file(weights))
    if report.skipped or report.missing:
        raise ValueError(f"{weights}: does not fit the bundle's network {network!r}: {report.summary()}")


def _check_imagenet(weights: PathLike | None) -> Path:
    from cardiacseg.networks import WeightLoadError, get_network

    if weights is None:
        raise ValueError(
            "--start imagenet needs --imagenet-weights FILE: a torchvision ResNet34 ImageNet state dict "
            "saved locally (torch.save(torchvision.models.resnet34(weights='IMAGENET1K_V1').state_dict(), "
            "'resnet34.pth') on a machine with internet); nothing is downloaded"
        )
    path = Path(weights).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ImageNet weights file not found (nothing is downloaded)")
    try:
        get_network(IMAGENET_NETWORK, 2, 1, 4, pretrained=str(path))
    except (WeightLoadError, RuntimeError, KeyError) as exc:
        raise ValueError(f"{path}: not a torchvision ResNet34 state dict: {exc}") from exc
    return path


def _read_marker(out: Path) -> dict[str, Any] | None:
    marker = out / "transfer" / "run.json"
    if not marker.is_file():
        return None
    state: dict[str, Any] = json.loads(marker.read_text())
    return state


def _write_json(path: Path, content: Any) -> None:
    from cardiacseg.utils.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(content, indent=1, default=str) + "\n", overwrite=True)


def _prepare_output(out: Path, fingerprint: dict[str, Any], overwrite: bool) -> bool:
    """Decide new / resume / refuse for ``out``; returns True when an unfinished run is resumed."""
    if not out.exists():
        return False
    state = _read_marker(out)
    if state is None:
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
            return False
        raise FileExistsError(
            f"{out}: exists and was not made by cardiacseg transfer (no transfer/run.json); choose a new "
            "output folder (it is never deleted, even with --overwrite)"
        )
    if state.get("status") == "finished":
        if not overwrite:
            raise FileExistsError(
                f"{out}: holds a finished transfer; pass --overwrite to delete it and train again"
            )
    elif state.get("fingerprint") == fingerprint and not overwrite:
        return True
    elif not overwrite:
        old = state.get("fingerprint", {})
        diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
        details = "; ".join(f"{k}: {old.get(k)!r} -> {fingerprint.get(k)!r}" for k in diff[:6])
        raise FileExistsError(
            f"{out}: holds an unfinished transfer with other options ({details}); re-run with the same "
            "options to resume it, or pass --overwrite to delete it and start again"
        )
    logger.info(f"{out}: --overwrite: deleting the earlier transfer")
    shutil.rmtree(out)
    return False


def _create_bundle(out: Path, source: Path, config: dict[str, Any], marker: dict[str, Any]) -> None:
    """Copy the source bundle's configs and docs with the transfer's settings, atomically (one rename)."""
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        for part in _BUNDLE_PARTS:
            src = source / part
            if src.is_dir():
                shutil.copytree(src, tmp / part, ignore=shutil.ignore_patterns("__pycache__"))
            elif src.is_file():
                tmp.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, tmp / part)
        transfer = json.loads((tmp / "configs" / "transfer.json").read_text())
        transfer.update(config)
        _write_json(tmp / "configs" / "transfer.json", transfer)
        inference = json.loads((tmp / "configs" / "inference.json").read_text())
        inference["network_name"] = config["network_name"]
        _write_json(tmp / "configs" / "inference.json", inference)
        (tmp / "models").mkdir(parents=True, exist_ok=True)
        _write_json(tmp / "transfer" / "run.json", marker)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _finish_bundle(
    out: Path, source: Path, marker: dict[str, Any], best: float | None, best_epoch: int | None
) -> None:
    from cardiacseg.utils.atomic import atomic_path, atomic_write_text

    best_file = out / "models" / "transfer" / "model.pt"
    if not best_file.is_file():
        raise RuntimeError(f"training finished but wrote no best checkpoint {best_file}")
    with atomic_path(out / "models" / "model.pt", overwrite=True) as tmp:
        shutil.copyfile(best_file, tmp)
    fp = marker["fingerprint"]
    meta_file = out / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    version = f"{meta.get('version', '0.0.0')}+transfer.{time.strftime('%Y%m%d%H%M%S')}"
    labelled = ", ".join({1: "LV", 2: "MYO", 3: "RV"}[c] for c in fp["labelled_classes"])
    note = (
        f"transfer ({fp['start']} start{', staged' if fp['freeze_groups'] else ''}) from {source.name} "
        f"{meta.get('version', '')} on {fp['data']} (SHA-256 {str(fp['data_sha256'])[:12]}): "
        f"{marker['selection']['train_images']} training / {marker['selection']['validation_images']} "
        f"validation images of {len(marker['selection']['train_patients'])} / "
        f"{len(marker['selection']['validation_patients'])} patients, labelled {labelled}; best validation "
        f"mean Dice {best if best is None else round(best, 4)} at epoch {best_epoch}"
    )
    meta["version"] = version
    meta["changelog"] = {version: note, **meta.get("changelog", {})}
    meta["data_source"] = f"transfer data: {fp['data']}; before: {meta.get('data_source', '')}"
    meta["eval_metrics"] = {"transfer_val_mean_dice": best}
    _write_json(meta_file, meta)
    readme = out / "docs" / "README.md"
    if readme.is_file():
        text = readme.read_text()
        header = f"# Transferred model ({version})\n\n{note}.\n\nOptions: see `transfer/run.json`.\n\n"
        atomic_write_text(readme, header + text, overwrite=True)
    last = out / "models" / "transfer" / "last.pt"
    if last.exists():
        last.unlink()


def run_transfer(
    data: PathLike,
    output: PathLike,
    start: str = "shipped",
    *,
    imagenet_weights: PathLike | None = None,
    bundle: PathLike | None = None,
    labelled: str | Sequence[str] = ("lv", "myo", "rv"),
    label_convention: str | None = None,
    drop_unlabelled: bool = False,
    val_fraction: float = 0.2,
    subjects: int | None = None,
    images: int | None = None,
    ed_es_only: bool = False,
    stage1_epochs: int = 10,
    stage2_epochs: int = 20,
    stage1_lr: float = 1e-4,
    stage2_lr: float = 1e-5,
    patience: int = 6,
    seed: int = 0,
    batch_size: int = 16,
    crop_size: int = 160,
    patch_size: int = 128,
    device: str | None = None,
    mlflow: bool = True,
    tracking_uri: str | None = None,
    overwrite: bool = False,
) -> TransferResult:
    """Train a copy of a segmentation bundle on new data and publish its best weights.

    See the module documentation for the starts (R / TL / TL2) and the resume/overwrite rules. The output
    bundle ``output`` holds ``configs/`` (with ``transfer.json`` recording every option), ``docs/``,
    ``LICENSE``, ``models/model.pt`` (the best validation weights), ``transfer/datalist.json`` (the
    entries trained and validated on, subsets applied), ``transfer/history.json`` (validation Dice per
    epoch against images seen), ``transfer/run.json`` (options, status) and ``mlruns/`` (MLflow).

    Args:
        data: a MONAI datalist JSON, an ACDC-layout folder or the SSL4MIS HDF5 folder
            (:func:`resolve_transfer_data`).
        output: the output bundle folder.
        start: ``"random"`` (R), ``"imagenet"`` (TL) or ``"shipped"`` (TL2: the weights of ``bundle``).
        imagenet_weights: torchvision ResNet34 ImageNet state dict file (``start="imagenet"`` only).
        bundle: the bundle to copy and, for ``"shipped"``, start from (default: the shipped one).
        labelled: the structures the labels contain (``"lv,myo"``: the loss merges RV into background,
            :class:`~cardiacseg.losses.partial.MarginalDiceCELoss`; validation Dice over LV and MYO only).
        label_convention: ``"internal"`` (1 LV, 2 MYO, 3 RV; default) or ``"acdc"`` for a datalist.
        drop_unlabelled: set label values of structures not in ``labelled`` to 0 instead of refusing.
        val_fraction: patients held out for validation when the datalist has no validation section.
        subjects: train on this many whole subjects (nested subsets).
        images: train on this many random 2D images (one shuffle, the first ``images``; nested).
        ed_es_only: train on ED and ES images only (entries with ``"phase"`` ED/ES).
        stage1_epochs: epochs with the encoder frozen (TL, TL2) at ``stage1_lr``.
        stage2_epochs: epochs fine-tuning everything at ``stage2_lr``.
        stage1_lr: learning rate of stage 1.
        stage2_lr: learning rate of stage 2.
        patience: early stopping after this many validations without improvement.
        seed: seed of the split, subsets, augmentation and initialisation.
        batch_size: training batch size.
        crop_size: heart crop side in pixels.
        patch_size: random training patch side in pixels (at most ``crop_size``).
        device: torch device (default: ``cuda:0`` when available, else CPU).
        mlflow: track the run with MLflow (``output/mlruns/mlruns.db`` unless ``tracking_uri``).
        tracking_uri: MLflow tracking URI.
        overwrite: delete a finished run, or an unfinished run with other options, in ``output``.

    Returns:
        A :class:`TransferResult`.

    Raises:
        ValueError: unknown start, ``imagenet`` without weights, bad options or data (named).
        FileNotFoundError: missing data, weights or bundle.
        FileExistsError: ``output`` exists and may not be reused (see the module documentation).

    Example:
        >>> r = run_transfer("data/list.json", "my_bundle", "shipped", labelled="lv,myo")  # doctest: +SKIP
        >>> r.model  # doctest: +SKIP
        PosixPath('my_bundle/models/model.pt')

    """
    from cardiacseg.provenance import file_sha256

    if start not in STARTS:
        raise ValueError(f"start must be one of {', '.join(STARTS)}; got {start!r}")
    if imagenet_weights is not None and start != "imagenet":
        raise ValueError(f"--imagenet-weights is for --start imagenet, not {start!r}")
    if stage1_epochs < 0 or stage2_epochs < 0 or stage1_epochs + stage2_epochs < 1:
        raise ValueError(f"stage epochs must be >= 0 and sum to >= 1, got {stage1_epochs} + {stage2_epochs}")
    if stage1_lr <= 0 or stage2_lr <= 0:
        raise ValueError(f"learning rates must be positive, got {stage1_lr}, {stage2_lr}")
    if not 0 < patch_size <= crop_size:
        raise ValueError(f"patch size {patch_size} must lie in 1..crop size {crop_size}")
    labelled_classes = parse_labelled(labelled)
    source_bundle = _shipped_bundle(bundle)
    if start == "imagenet":
        network = IMAGENET_NETWORK
        start_weights: Path | None = _check_imagenet(imagenet_weights)
    else:
        network = _bundle_network(source_bundle)
        start_weights = source_bundle / "models" / "model.pt" if start == "shipped" else None
        if start_weights is not None:
            if not start_weights.is_file():
                raise FileNotFoundError(f"{start_weights}: the bundle's weights are missing")
            _check_start_weights(network, start_weights)
    source = resolve_transfer_data(data, label_convention)
    datalist, selection = select_transfer_data(
        source, val_fraction, subjects, images, ed_es_only, labelled_classes, drop_unlabelled, seed
    )
    out = Path(output).resolve()
    fingerprint: dict[str, Any] = {
        "data": str(source.path),
        "data_kind": source.kind,
        "data_sha256": source.sha256,
        "label_convention": source.label_convention,
        "labelled_classes": labelled_classes,
        "drop_unlabelled": drop_unlabelled,
        "val_fraction": val_fraction if source.validation is None else None,
        "subjects": subjects,
        "images": images,
        "ed_es_only": ed_es_only,
        "start": start,
        "start_weights": None if start_weights is None else str(start_weights),
        "start_weights_sha256": None if start_weights is None else file_sha256(start_weights),
        "source_bundle": str(source_bundle),
        "network": network,
        "freeze_groups": [] if start == "random" else ["encoder"],
        "stage1_epochs": stage1_epochs,
        "stage2_epochs": stage2_epochs,
        "stage1_lr": stage1_lr,
        "stage2_lr": stage2_lr,
        "patience": patience,
        "seed": seed,
        "batch_size": batch_size,
        "crop_size": crop_size,
        "patch_size": patch_size,
    }
    resuming = _prepare_output(out, fingerprint, overwrite)
    marker: dict[str, Any] = {
        "status": "running",
        "fingerprint": fingerprint,
        "selection": selection,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if not resuming:
        params = {k: v for k, v in fingerprint.items() if k != "source_bundle"}
        params.update(selection_train_images=selection["train_images"])
        config: dict[str, Any] = {
            "datalist": "$@bundle_root + '/transfer/datalist.json'",
            "history_file": "$@bundle_root + '/transfer/history.json'",
            "label_convention": source.label_convention,
            "labelled_classes": labelled_classes,
            "drop_unlabelled": drop_unlabelled,
            "pretrained": None if start != "shipped" else str(start_weights),
            "network_name": network,
            "freeze_groups": fingerprint["freeze_groups"],
            "stage1_epochs": stage1_epochs,
            "stage2_epochs": stage2_epochs,
            "stage1_lr": stage1_lr,
            "stage2_lr": stage2_lr,
            "early_stop_patience": patience,
            "seed": seed,
            "batch_size": batch_size,
            "crop_size": crop_size,
            "patch_size": patch_size,
            "resume": True,
            "experiment_name": "cardiacseg_transfer",
            "mlflow#params": {k: json.dumps(v) if isinstance(v, list) else v for k, v in params.items()},
        }
        if start == "imagenet":
            config["network_def#pretrained"] = str(start_weights)
        _create_bundle(out, source_bundle, config, marker)
        _write_json(out / "transfer" / "datalist.json", datalist)
    else:
        logger.info(f"{out}: resuming the unfinished transfer")
    result = _train(out, device, mlflow, tracking_uri)
    history: list[dict[str, Any]] = []
    if (out / "transfer" / "history.json").is_file():
        history = json.loads((out / "transfer" / "history.json").read_text()).get("epochs", [])
    scored = [h for h in history if h.get("val_mean_dice") is not None]
    best_rec = max(scored, key=lambda h: float(h["val_mean_dice"]), default=None)
    best = None if best_rec is None else float(best_rec["val_mean_dice"])
    best_epoch = None if best_rec is None else int(best_rec["epoch"])
    _finish_bundle(out, source_bundle, marker, best, best_epoch)
    marker.update(
        status="finished",
        finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
        best_val_mean_dice=best,
        best_epoch=best_epoch,
        epochs_run=result["epochs_run"],
        mlflow_run_id=result["mlflow_run_id"],
    )
    _write_json(out / "transfer" / "run.json", marker)
    return TransferResult(
        bundle=out,
        model=out / "models" / "model.pt",
        history=history,
        best_val_dice=best,
        best_epoch=best_epoch,
        epochs_run=result["epochs_run"],
        resumed_from=result["resumed_from"],
        train_images=selection["train_images"],
        validation_images=selection["validation_images"],
        train_patients=selection["train_patients"],
        validation_patients=selection["validation_patients"],
        mlflow_run_id=result["mlflow_run_id"],
    )


def _train(out: Path, device: str | None, mlflow: bool, tracking_uri: str | None) -> dict[str, Any]:
    """Run train.json + transfer.json of the output bundle; mark the MLflow run FAILED/KILLED on error."""
    from ignite.engine import Events

    from cardiacseg.engines.workflow import training_workflow
    from cardiacseg.handlers import ResumableCheckpoint

    overrides: dict[str, Any] = {"mlflow_tracking": mlflow}
    if device is not None:
        from cardiacseg.config import check_device

        check_device(device)
        overrides["device"] = f"$torch.device({device!r})"
    if tracking_uri is not None:
        overrides["tracking_uri"] = tracking_uri
    workflow = training_workflow(out, ("train.json", "transfer.json"), **overrides)
    parser = workflow.parser
    trainer = parser.get_parsed_content("train#trainer")
    handler = parser.get_parsed_content("mlflow")
    checkpoint = next(
        h for h in parser.get_parsed_content("train#handlers") if isinstance(h, ResumableCheckpoint)
    )
    run_ids: list[str] = []

    def remember_run(_: Any) -> None:  # after MLflow's own STARTED handler (attached at initialisation)
        if handler is not None and handler.cur_run is not None:
            run_ids.append(str(handler.cur_run.info.run_id))

    trainer.add_event_handler(Events.STARTED, remember_run)
    try:
        workflow.run()
    except BaseException as exc:
        if handler is not None and handler.cur_run is not None:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            try:
                handler.client.set_terminated(handler.cur_run.info.run_id, status)
            except Exception as mlflow_exc:  # never hide the training error
                logger.warning(f"could not mark the MLflow run {status}: {mlflow_exc}")
        raise
    finally:
        workflow.finalize()
    return {
        "epochs_run": int(trainer.state.epoch),
        "resumed_from": checkpoint.resumed_from,
        "mlflow_run_id": run_ids[-1] if run_ids else None,
    }
