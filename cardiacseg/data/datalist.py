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
from cardiacseg.io.ssl4mis import list_ssl4mis_patients, read_ssl4mis_study
from cardiacseg.typing import PathLike

__all__ = [
    "acdc_group",
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
    """``n`` subjects drawn without replacement (the 7T study's subject-count experiments).

    Args:
        patients: patient ids.
        n: how many.
        seed: seed.

    Returns:
        The chosen ids, sorted.

    Raises:
        ValueError: ``n`` larger than the number of patients.

    Example:
        >>> subset_subjects(["a", "b", "c", "d"], 2, seed=1)
        ['b', 'c']

    """
    if n > len(patients):
        raise ValueError(f"asked for {n} subjects out of {len(patients)}")
    rng = np.random.default_rng(seed)
    return sorted(str(p) for p in rng.choice(list(patients), size=n, replace=False))


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


def ssl4mis_slice_items(
    root: PathLike,
    patients: Sequence[str] | None = None,
    phases: Sequence[str] = ("ED", "ES"),
    skip_empty: bool = False,
) -> list[dict[str, Any]]:
    """2D training items from the SSL4MIS copy of ACDC, one per (patient, phase, slice).

    Each item holds ``image`` ``(1, X, Y)`` float32 and ``label`` ``(1, X, Y)`` uint8 (internal labels,
    cardiacseg's channel-first layout), ``centre``: the ``(x, y)`` centre of the bounding box of the
    patient's labels over all slices and both phases (for a heart crop that also covers label-free apical
    and basal slices), and ``patient``, ``phase``, ``slice``, ``group``.

    Args:
        root: the ``acdc_ssl4mis`` folder.
        patients: ids to use (default: all).
        phases: ``"ED"`` and/or ``"ES"``.
        skip_empty: drop slices without any label.

    Returns:
        The items.

    Raises:
        ValueError: unknown phase name.

    Example:
        >>> items = ssl4mis_slice_items("../shared/data/acdc_ssl4mis", ["patient001"])  # doctest: +SKIP

    """
    index = {"ED": 0, "ES": 1}
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
                        "image": np.ascontiguousarray(study.image[t, z].T[None]),
                        "label": np.ascontiguousarray(lab.T[None]),
                        "centre": centre,
                        "patient": pid,
                        "phase": ph,
                        "slice": z,
                        "group": acdc_group(pid),
                    }
                )
    return items


def _slice_items(pid: str, image_zyx: np.ndarray, label_zyx: np.ndarray, phase: str) -> list[dict[str, Any]]:
    fg = label_zyx.any(axis=0)
    rows, cols = np.nonzero(fg) if fg.any() else (np.array([fg.shape[0] // 2]), np.array([fg.shape[1] // 2]))
    centre = (float(cols.min() + cols.max()) / 2.0, float(rows.min() + rows.max()) / 2.0)
    return [
        {
            "image": np.ascontiguousarray(image_zyx[z].T[None].astype(np.float32)),
            "label": np.ascontiguousarray(label_zyx[z].T[None]),
            "centre": centre,
            "patient": pid,
            "phase": phase,
            "slice": z,
            "group": "",
        }
        for z in range(image_zyx.shape[0])
    ]


def nifti_slice_items(
    datalist: PathLike | dict[str, Any], section: str = "training", label_convention: str = "internal"
) -> list[dict[str, Any]]:
    """2D items from a user's datalist of 3D NIfTI image/label pairs (MONAI datalist JSON layout).

    The datalist holds ``{"training": [{"image": "a.nii.gz", "label": "a_gt.nii.gz", "patient": "a"}, ...],
    "validation": [...]}``; relative paths are resolved against the JSON file's folder. Each stack is split
    into slices like :func:`ssl4mis_slice_items`.

    Args:
        datalist: the JSON file or its parsed content.
        section: ``"training"`` or ``"validation"``.
        label_convention: ``"internal"`` (1 LV, 2 MYO, 3 RV) or ``"acdc"`` (1 RV, 2 MYO, 3 LV).

    Returns:
        The items.

    Raises:
        ValueError: unknown section or convention, image and label of different shapes (file named).

    Example:
        >>> items = nifti_slice_items("my_data/datalist.json", "training", "acdc")  # doctest: +SKIP

    """
    import json

    base = Path(".")
    if isinstance(datalist, dict):
        content: dict[str, Any] = datalist
    else:
        base = Path(datalist).parent
        content = json.loads(Path(datalist).read_text())
    if section not in content:
        raise ValueError(f"datalist has no section {section!r} (sections: {sorted(content)})")
    if label_convention not in ("internal", "acdc"):
        raise ValueError(f"label_convention must be 'internal' or 'acdc', got {label_convention!r}")
    items: list[dict[str, Any]] = []
    for i, entry in enumerate(content[section]):
        img_path, lab_path = base / entry["image"], base / entry["label"]
        image, _, _ = read_nifti_array(img_path)
        label, _, _ = read_nifti_array(lab_path)
        if image.shape != label.shape or image.ndim != 3:
            raise ValueError(
                f"{lab_path}: label shape {label.shape} does not match image {img_path} {image.shape} "
                "(3D stacks expected)"
            )
        lab = acdc_to_internal(label) if label_convention == "acdc" else np.asarray(label, dtype=np.uint8)
        items += _slice_items(
            str(entry.get("patient", f"case{i:03d}")),
            np.asarray(image, np.float32),
            lab,
            str(entry.get("phase", "")),
        )
    return items
