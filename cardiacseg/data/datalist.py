"""Datalists and experiment splits: patient-level splits and k-fold, subject subsets, matched image subsets.

No patient is ever split across training and validation: every function works on patient ids first and
expands to images afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cardiacseg.io.labels import acdc_to_internal
from cardiacseg.io.nifti import read_nifti_array
from cardiacseg.io.ssl4mis import list_ssl4mis_patients, read_ssl4mis_frame, read_ssl4mis_study
from cardiacseg.transforms.utils import neighbour_indices
from cardiacseg.typing import PathLike

__all__ = [
    "IGNORE_VALUE",
    "STRUCTURE_CLASSES",
    "acdc_group",
    "datalist_slice_items",
    "kfold_patients",
    "nifti_slice_items",
    "random_image_subset",
    "split_patients",
    "ssl4mis_slice_items",
    "subset_subjects",
]

_ACDC_GROUPS = ((1, 20, "DCM"), (21, 40, "HCM"), (41, 60, "MINF"), (61, 80, "NOR"), (81, 100, "RV"))


def acdc_group(patient: str) -> str:
    """Pathology group of an ACDC training patient from its id (001-020 DCM, ..., 081-100 RV).

    Args:
        patient: e.g. ``"patient042"``.

    Returns:
        ``"DCM"``, ``"HCM"``, ``"MINF"``, ``"NOR"``, ``"RV"`` or ``""`` outside 1..100.

    Example:
        >>> acdc_group("patient042")
        'MINF'

    """
    digits = "".join(c for c in patient if c.isdigit())
    n = int(digits) if digits else -1
    return next((g for lo, hi, g in _ACDC_GROUPS if lo <= n <= hi), "")


def kfold_patients(
    patients: Sequence[str], n_folds: int = 5, seed: int = 0, stratify: Callable[[str], str] | None = None
) -> list[tuple[list[str], list[str]]]:
    """Patient-level k-fold splits, optionally stratified (e.g. by :func:`acdc_group`).

    Args:
        patients: patient ids.
        n_folds: number of folds.
        seed: shuffling seed.
        stratify: maps a patient to its stratum; patients of each stratum are dealt round-robin.

    Returns:
        ``[(train_ids, val_ids), ...]`` for each fold; every patient is in exactly one validation fold.

    Raises:
        ValueError: fewer patients than folds, or duplicate ids.

    Example:
        >>> folds = kfold_patients([f"p{i}" for i in range(10)], n_folds=5)
        >>> [len(v) for _, v in folds]
        [2, 2, 2, 2, 2]

    """
    ids = list(patients)
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate patient ids")
    if n_folds < 2 or len(ids) < n_folds:
        raise ValueError(
            f"need at least {n_folds} patients and 2 folds, got {len(ids)} patients, {n_folds} folds"
        )
    rng = np.random.default_rng(seed)
    strata: dict[str, list[str]] = {}
    for p in sorted(ids):
        strata.setdefault(stratify(p) if stratify else "", []).append(p)
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    offset = 0
    for key in sorted(strata):
        members = list(rng.permutation(strata[key]))
        for i, p in enumerate(members):
            folds[(offset + i) % n_folds].append(str(p))
        offset += len(members)
    return [([p for j, f in enumerate(folds) if j != k for p in f], sorted(folds[k])) for k in range(n_folds)]


def split_patients(
    patients: Sequence[str],
    val_fraction: float = 0.2,
    seed: int = 0,
    stratify: Callable[[str], str] | None = acdc_group,
) -> tuple[list[str], list[str]]:
    """One patient-level train/validation split (fold 0 of a stratified k-fold with ``k = 1 / val_fraction``).

    Args:
        patients: patient ids.
        val_fraction: fraction of patients for validation.
        seed: shuffling seed.
        stratify: stratum of a patient (default: ACDC pathology group).

    Returns:
        ``(train_ids, val_ids)``.

    Example:
        >>> train, val = split_patients([f"patient{i:03d}" for i in range(1, 101)])
        >>> len(train), len(val), sorted({acdc_group(p) for p in val})
        (80, 20, ['DCM', 'HCM', 'MINF', 'NOR', 'RV'])

    """
    n_folds = max(2, round(1.0 / val_fraction))
    return kfold_patients(patients, n_folds, seed, stratify)[0]


def subset_subjects(patients: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """``n`` whole subjects, nested: shuffle the patient list once with ``seed`` and take the first ``n``.

    The 7T study's subject-count experiments (14, 7, 3, 1 subjects): with one seed, every smaller subset
    is contained in every larger one, so learning curves over subset sizes differ only by the data added.
    The shuffle starts from the sorted unique ids, so the order in which ``patients`` is given does not
    matter.

    Args:
        patients: patient ids.
        n: how many (0 to the number of distinct ids).
        seed: seed of the single shuffle.

    Returns:
        The chosen ids, sorted.

    Raises:
        ValueError: ``n`` negative or larger than the number of distinct patients.

    Example:
        >>> subset_subjects(["a", "b", "c", "d"], 2, seed=1), subset_subjects(["d", "c", "b", "a"], 3, seed=1)
        (['a', 'b'], ['a', 'b', 'c'])

    """
    ids = sorted({str(p) for p in patients})
    if not 0 <= n <= len(ids):
        raise ValueError(f"asked for {n} subjects out of {len(ids)}")
    order = np.random.default_rng(seed).permutation(len(ids))
    return sorted(ids[int(i)] for i in order[:n])


def random_image_subset(items: Sequence[dict[str, Any]], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Shuffle the images once and take the first ``n`` (image-count-matched experiments).

    Taking the first ``n`` of one fixed permutation makes smaller subsets nested in larger ones.

    Args:
        items: image items.
        n: how many.
        seed: seed of the single shuffle.

    Returns:
        ``n`` items.

    Raises:
        ValueError: ``n`` larger than the number of items.

    Example:
        >>> [d["i"] for d in random_image_subset([{"i": i} for i in range(5)], 3, seed=0)]
        [2, 4, 3]

    """
    if n > len(items):
        raise ValueError(f"asked for {n} images out of {len(items)}")
    order = np.random.default_rng(seed).permutation(len(items))
    return [items[int(i)] for i in order[:n]]


def _input_channels(image_zyx: np.ndarray, z: int, context_slices: int) -> np.ndarray:
    """Return ``(2k + 1, X, Y)`` float32: slice ``z`` and its neighbours (:func:`neighbour_indices`)."""
    idx = neighbour_indices(image_zyx.shape[0], z, context_slices)
    return np.ascontiguousarray(image_zyx[idx].transpose(0, 2, 1).astype(np.float32))


def ssl4mis_slice_items(
    root: PathLike,
    patients: Sequence[str] | None = None,
    phases: Sequence[str] = ("ED", "ES"),
    skip_empty: bool = False,
    context_slices: int = 0,
) -> list[dict[str, Any]]:
    """2D training items from the SSL4MIS copy of ACDC, one per (patient, phase, slice).

    Each item holds ``image`` ``(1 + 2 * context_slices, X, Y)`` float32 (the slice, with its neighbours
    as further channels for a 2.5D network: :func:`neighbour_indices`, the centre slice in the middle
    channel) and ``label`` ``(1, X, Y)`` uint8 (internal labels,
    cardiacseg's channel-first layout), ``centre``: the ``(x, y)`` centre of the bounding box of the
    patient's labels over all slices and both phases (for a heart crop that also covers label-free apical
    and basal slices), and ``patient``, ``phase``, ``slice``, ``group``.

    Args:
        root: the ``acdc_ssl4mis`` folder.
        patients: ids to use (default: all).
        phases: ``"ED"`` and/or ``"ES"``.
        skip_empty: drop slices without any label.
        context_slices: neighbouring slices on each side given as input channels (0: 2D).

    Returns:
        The items.

    Raises:
        ValueError: unknown phase name, negative ``context_slices``.

    Example:
        >>> items = ssl4mis_slice_items("../shared/data/acdc_ssl4mis", ["patient001"])  # doctest: +SKIP

    """
    index = {"ED": 0, "ES": 1}
    if context_slices < 0:
        raise ValueError(f"context_slices must be >= 0, got {context_slices}")
    for ph in phases:
        if ph not in index:
            raise ValueError(f"phase must be 'ED' or 'ES', got {ph!r}")
    ids = list(patients) if patients is not None else list_ssl4mis_patients(root)
    items: list[dict[str, Any]] = []
    for pid in ids:
        study = read_ssl4mis_study(Path(root), pid)
        fg = np.zeros(study.image.shape[2:], bool)
        for lab in study.labels.values():
            fg |= lab.any(axis=0)
        rows, cols = np.nonzero(fg)
        centre = (float(cols.min() + cols.max()) / 2.0, float(rows.min() + rows.max()) / 2.0)  # (x, y)
        for ph in phases:
            t = index[ph]
            for z in range(study.n_slices):
                lab = study.labels[t][z]
                if skip_empty and not lab.any():
                    continue
                items.append(
                    {
                        "image": _input_channels(study.image[t], z, context_slices),
                        "label": np.ascontiguousarray(lab.T[None]),
                        "centre": centre,
                        "patient": pid,
                        "phase": ph,
                        "slice": z,
                        "group": acdc_group(pid),
                    }
                )
    return items


#: Structure names of ``--labelled`` and their internal label values.
STRUCTURE_CLASSES = {"lv": 1, "myo": 2, "rv": 3}

#: Label value of pixels without annotation (the losses' ignore value).
IGNORE_VALUE = 255

_PHASE_OF_FRAME = {1: "ED", 2: "ES"}


def _slice_items(
    pid: str,
    image_zyx: np.ndarray,
    label_zyx: np.ndarray,
    phase: str,
    slices: Sequence[int] | None = None,
    entry: int | None = None,
    context_slices: int = 0,
) -> list[dict[str, Any]]:
    use = list(range(image_zyx.shape[0])) if slices is None else sorted(set(slices))
    fg = ((label_zyx[use] > 0) & (label_zyx[use] != IGNORE_VALUE)).any(axis=0)
    rows, cols = np.nonzero(fg) if fg.any() else (np.array([fg.shape[0] // 2]), np.array([fg.shape[1] // 2]))
    centre = (float(cols.min() + cols.max()) / 2.0, float(rows.min() + rows.max()) / 2.0)
    items = []
    for z in use:
        item: dict[str, Any] = {
            "image": _input_channels(image_zyx, z, context_slices),  # neighbours may be unannotated
            "label": np.ascontiguousarray(label_zyx[z].T[None]),
            "centre": centre,
            "patient": pid,
            "phase": phase,
            "slice": z,
            "group": "",
        }
        if entry is not None:
            item["entry"] = entry
        items.append(item)
    return items


def _read_entry(
    entry: dict[str, Any], base: Path, label_convention: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """Image and internal label ``(Z, Y, X)`` of one datalist entry, and a name for messages."""
    if "ssl4mis" in entry:
        root = base / str(entry["ssl4mis"])
        frame = int(entry.get("frame", 1))
        h5_image, h5_label = read_ssl4mis_frame(root, str(entry["patient"]), frame)
        if h5_image.ndim == 2:
            h5_image, h5_label = h5_image[None], h5_label[None]
        return h5_image, h5_label, f"{root} {entry['patient']} frame {frame:02d}"
    if "image" not in entry or "label" not in entry:
        raise ValueError(f"datalist entry {entry}: needs 'image' and 'label' (or 'ssl4mis' and 'patient')")
    img_path, lab_path = base / str(entry["image"]), base / str(entry["label"])
    image, _, _ = read_nifti_array(img_path)
    label, _, _ = read_nifti_array(lab_path)
    if image.shape != label.shape or image.ndim != 3:
        raise ValueError(
            f"{lab_path}: label shape {label.shape} does not match image {img_path} {image.shape} "
            "(3D stacks expected)"
        )
    lab = np.asarray(label)
    if not np.all(np.mod(lab, 1) == 0) or lab.min() < 0:
        raise ValueError(f"{lab_path}: label values must be non-negative integers")
    lab = lab.astype(np.int64)
    ignore = lab == IGNORE_VALUE
    if label_convention == "acdc":
        converted = acdc_to_internal(np.where(ignore, 0, lab)).astype(np.uint8)
    else:
        bad = sorted(set(np.unique(lab[~ignore]).tolist()) - {0, 1, 2, 3})
        if bad:
            raise ValueError(
                f"{lab_path}: label values {bad} are not 0-3 (internal: 1 LV, 2 MYO, 3 RV) or {IGNORE_VALUE}"
            )
        converted = lab.astype(np.uint8)
    converted[ignore] = IGNORE_VALUE
    return np.asarray(image, np.float32), converted, str(lab_path)


def datalist_slice_items(
    datalist: PathLike | dict[str, Any],
    section: str = "training",
    label_convention: str = "internal",
    labelled_classes: Sequence[int] | None = None,
    drop_unlabelled: bool = False,
    context_slices: int = 0,
) -> list[dict[str, Any]]:
    """2D items from a datalist of 3D stacks with labels, one per labelled slice (MONAI datalist JSON layout).

    The datalist holds ``{"training": [entry, ...], "validation": [...]}``; an entry is either a NIfTI
    image/label pair ``{"image": "a.nii.gz", "label": "a_gt.nii.gz"}`` or a frame of an SSL4MIS HDF5
    folder ``{"ssl4mis": "acdc_ssl4mis", "patient": "patient001", "frame": 1}``, with optional keys
    ``"patient"`` (default ``caseNNN``), ``"phase"`` (e.g. ``"ED"``; SSL4MIS frames 1/2 are ED/ES),
    ``"annotated_slices"`` (0-based slice indices that were contoured: only these become items, the
    others are left out, not called background) and ``"slices"`` (a selection of slices, e.g. an image
    subset; items are the slices in both lists). Relative paths are resolved against the JSON file's
    folder. Labels may hold the ignore value :data:`IGNORE_VALUE` (255) for pixels without annotation.

    Each item holds ``image`` ``(1 + 2 * context_slices, X, Y)`` float32 (neighbours as channels, as in
    :func:`ssl4mis_slice_items`), ``label`` ``(1, X, Y)`` uint8 (internal values), ``centre``
    (``(x, y)`` centre of the stack's labels over its used slices), ``patient``, ``phase``, ``slice``,
    ``group`` and ``entry`` (the entry's index in its section).

    Args:
        datalist: the JSON file or its parsed content.
        section: ``"training"`` or ``"validation"``.
        label_convention: ``"internal"`` (1 LV, 2 MYO, 3 RV) or ``"acdc"`` (1 RV, 2 MYO, 3 LV) for NIfTI
            labels (SSL4MIS labels are always ACDC's and converted).
        labelled_classes: the foreground classes the labels contain (e.g. ``(1, 2)``: LV and MYO);
            ``None``: all three.
        drop_unlabelled: set label values of other classes to 0 (simulates partial labels, e.g. from ACDC)
            instead of refusing them.
        context_slices: neighbouring slices on each side given as input channels (0: 2D).

    Returns:
        The items, entry by entry, slice by slice.

    Raises:
        ValueError: unknown section or convention; image and label of different shapes; label values
            outside 0-3 and the ignore value, or of an unlabelled class without ``drop_unlabelled``;
            ``annotated_slices``/``slices`` outside the stack (the file is named).

    Example:
        >>> items = datalist_slice_items("data/datalist.json", "training", "acdc", (1, 2))  # doctest: +SKIP

    """
    import json

    base = Path(".")
    if isinstance(datalist, dict):
        content: dict[str, Any] = datalist
    else:
        base = Path(datalist).parent
        content = json.loads(Path(datalist).read_text())
    if section not in content:
        raise ValueError(
            f"datalist {datalist if not isinstance(datalist, dict) else ''} has no section "
            f"{section!r} (sections: {sorted(content)})"
        )
    if label_convention not in ("internal", "acdc"):
        raise ValueError(f"label_convention must be 'internal' or 'acdc', got {label_convention!r}")
    labelled = [1, 2, 3] if labelled_classes is None else sorted({int(c) for c in labelled_classes})
    if not labelled or any(c not in (1, 2, 3) for c in labelled):
        raise ValueError(f"labelled_classes must be a non-empty subset of 1 LV, 2 MYO, 3 RV; got {labelled}")
    names = {v: k.upper() for k, v in STRUCTURE_CLASSES.items()}
    items: list[dict[str, Any]] = []
    for i, entry in enumerate(content[section]):
        image, label, name = _read_entry(entry, base, label_convention)
        present = {int(v) for v in np.unique(label)} - {0, IGNORE_VALUE}
        extra = sorted(present - set(labelled))
        if extra and not drop_unlabelled:
            raise ValueError(
                f"{name}: holds {', '.join(names[c] for c in extra)} (label values {extra}), which are not "
                f"among the labelled structures {[names[c] for c in labelled]}; label them as labelled, or "
                "drop them (drop_unlabelled / --drop-unlabelled) to train as if they were not contoured"
            )
        if extra:
            label = np.where(np.isin(label, extra), 0, label).astype(np.uint8)
        chosen: set[int] | None = None
        for key in ("annotated_slices", "slices"):
            if key in entry and entry[key] is not None:
                wanted = {int(z) for z in entry[key]}
                outside = sorted(z for z in wanted if not 0 <= z < image.shape[0])
                if outside:
                    raise ValueError(f"{name}: {key} {outside} outside the stack's {image.shape[0]} slices")
                chosen = wanted if chosen is None else chosen & wanted
        if chosen is not None and not chosen:
            continue
        frame_phase = _PHASE_OF_FRAME.get(int(entry.get("frame", 0))) if "ssl4mis" in entry else None
        items += _slice_items(
            str(entry.get("patient", f"case{i:03d}")),
            image,
            label,
            str(entry.get("phase", frame_phase or "")),
            None if chosen is None else sorted(chosen),
            entry=i,
            context_slices=context_slices,
        )
    return items


def nifti_slice_items(
    datalist: PathLike | dict[str, Any],
    section: str = "training",
    label_convention: str = "internal",
    labelled_classes: Sequence[int] | None = None,
    drop_unlabelled: bool = False,
) -> list[dict[str, Any]]:
    """2D items from a user's datalist of 3D NIfTI image/label pairs: :func:`datalist_slice_items`.

    Args:
        datalist: the JSON file or its parsed content.
        section: ``"training"`` or ``"validation"``.
        label_convention: ``"internal"`` (1 LV, 2 MYO, 3 RV) or ``"acdc"`` (1 RV, 2 MYO, 3 LV).
        labelled_classes: foreground classes the labels contain (default: all).
        drop_unlabelled: set values of other classes to 0 instead of refusing them.

    Returns:
        The items.

    Raises:
        ValueError: see :func:`datalist_slice_items`.

    Example:
        >>> items = nifti_slice_items("my_data/datalist.json", "training", "acdc")  # doctest: +SKIP

    """
    return datalist_slice_items(datalist, section, label_convention, labelled_classes, drop_unlabelled)
