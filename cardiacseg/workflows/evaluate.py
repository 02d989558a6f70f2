"""The one comparison of predicted label maps with references: per-phase metrics, per-slice Dice, indices.

Everything that scores a segmentation against a reference goes through :func:`compare_label_maps`:
``cardiacseg evaluate PRED REF`` (:func:`compare_cohort`, label files on disk), the bundle's
``evaluate.json`` and ``scripts/evaluate_and_choose.py``
(:mod:`cardiacseg.workflows.bundle_evaluation`, a predictor on ACDC and Sunnybrook) and ``cardiacseg demo``
(:func:`compare_study`). Inputs on disk are label NIfTI files (3D, or 4D cine with phases on the 4th
axis), output folders of ``cardiacseg segment`` (their ``labels.nii.gz``), or ACDC patient folders
(reference ED/ES ground truth). Labels are read in the internal convention (1 LV, 2 MYO, 3 RV) unless
``convention="acdc"`` (1 RV, 2 MYO, 3 LV) is given for a side.

Row keys carry their unit; ``{s}`` is a structure key of :data:`cardiacseg.enums.STRUCTURES`
(``lv``, ``myo``, ``rv``), ``{q}`` an index of :data:`INDEX_QUANTITIES`:

* metric rows (:attr:`Comparison.metrics`, ``metrics.csv``), one per study and compared phase:
  ``study``, ``phase`` (index), ``phase_name`` (``ED``, ``ES`` or empty), ``dice_{s}`` (over the 3D
  stack), ``hd95_{s}_mm`` and ``msd_{s}_mm`` (95th percentile and mean symmetric surface distance),
  ``hd95_{s}_voxels`` and ``msd_{s}_voxels`` (the same in voxels, only when the spacing is unknown; the
  other pair is then NaN), ``{s}_voxels_ref`` and ``{s}_voxels_pred`` (voxel counts);
* per-slice rows (:attr:`Comparison.slices`, ``metrics_per_slice.csv``), slices where either side has
  a structure: ``study``, ``phase``, ``phase_name``, ``slice``, ``dice_{s}``, ``{s}_voxels_ref``,
  ``{s}_voxels_pred``;
* index rows (:attr:`Comparison.indices`, ``indices.csv``), one per study: ``study``, ``ed_phase``,
  ``es_phase``, ``ed_es_source`` (``given`` by the source or ``detected`` as largest/smallest reference
  LV), ``{q}_pred``, ``{q}_ref`` and ``{q}_error`` (prediction minus reference, in the unit of ``{q}``;
  EF errors in percentage points), and ``lv_ef_percent_pred_slice_range`` /
  ``lv_ef_percent_error_slice_range`` (the predicted LV counted only inside its slice range,
  :func:`~cardiacseg.clinical.slice_range.apply_slice_range`, as ``cardiacseg segment --slice-range
  segmentation`` reports it).

A value that does not exist is NaN, never 0: Dice and distances of a structure the reference lacks in
that phase or slice (its voxel counts still show what the prediction put there), volumes and mass
without a voxel spacing, indices of a structure the reference lacks at ED (e.g. RV of Sunnybrook's
LV-only contours), every index when ED/ES cannot be told (a single labelled phase). CSV files write NaN
as ``nan``; JSON files write ``null`` (:func:`json_ready`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cardiacseg.clinical.figures import plot_bland_altman
from cardiacseg.clinical.indices import compute_cardiac_indices, detect_ed_es
from cardiacseg.clinical.slice_range import apply_slice_range
from cardiacseg.enums import STRUCTURES, Phase
from cardiacseg.io.acdc import read_acdc_patient
from cardiacseg.io.discover import study_name
from cardiacseg.io.labels import acdc_to_internal
from cardiacseg.io.nifti import read_nifti_array
from cardiacseg.io.study import CineStudy
from cardiacseg.metrics import dice_score, segmentation_metrics
from cardiacseg.typing import LabelArray, PathLike, SpacingZYX
from cardiacseg.utils.atomic import atomic_write_text, check_writable

__all__ = [
    "COMPARISON_OUTPUTS",
    "INDEX_QUANTITIES",
    "Comparison",
    "LabelSet",
    "check_outputs",
    "compare_cohort",
    "compare_label_maps",
    "compare_labels",
    "compare_study",
    "find_label_sets",
    "json_ready",
    "read_label_set",
    "write_comparison",
]

Convention = Literal["internal", "acdc"]

#: Clinical indices compared per study, named as in :class:`~cardiacseg.clinical.indices.CardiacIndices`.
INDEX_QUANTITIES = (
    "lv_edv_ml",
    "lv_esv_ml",
    "lv_sv_ml",
    "lv_ef_percent",
    "lv_mass_g",
    "rv_edv_ml",
    "rv_esv_ml",
    "rv_sv_ml",
    "rv_ef_percent",
)

#: Files :func:`write_comparison` writes in its folder (``bland_altman.png`` only when a study has EF,
#: EDV or ESV on both sides); ``summary.json`` is written last.
COMPARISON_OUTPUTS = (
    "metrics.csv",
    "metrics_per_slice.csv",
    "indices.csv",
    "bland_altman.png",
    "summary.json",
)

_NAN = float("nan")
_SUMMARY_PHASES = (Phase.ED.value, Phase.ES.value, "all")


@dataclass
class LabelSet:
    """Label maps of one study as read from disk.

    Attributes:
        path: where they came from.
        labels: ``{phase: (Z, Y, X) uint8}`` internal labels (only phases with any label for references
            of 4D files; all phases for predictions).
        spacing_mm: ``(z, y, x)`` or ``None``.
        n_phases: phases in the file (1 for 3D).
        ed_phase, es_phase: when the source states them (ACDC), else ``None``.

    Example:
        >>> LabelSet(Path("x.nii.gz"), {}, None, 1).n_phases
        1

    """

    path: Path
    labels: dict[int, LabelArray]
    spacing_mm: SpacingZYX | None
    n_phases: int
    ed_phase: int | None = None
    es_phase: int | None = None


@dataclass
class Comparison:
    """Rows of one or more compared studies (keys in the module docstring).

    Attributes:
        metrics: one row per study and compared phase (Dice, HD95, MSD over the 3D stack).
        slices: one row per study, phase and slice holding a structure on either side.
        indices: one row per study (clinical indices: prediction, reference, error).
        failed: ``{study: reason}`` of studies that could not be compared.

    Example:
        >>> import numpy as np
        >>> ref = np.zeros((1, 4, 4), np.uint8); ref[0, :2] = 1
        >>> c = compare_label_maps({0: ref}, {0: ref}, study="s")
        >>> c.metrics[0]["dice_lv"], math.isnan(c.metrics[0]["dice_rv"])
        (1.0, True)

    """

    metrics: list[dict[str, Any]] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)
    indices: list[dict[str, Any]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def extend(self, other: Comparison) -> None:
        """Append another comparison's rows and failures.

        Args:
            other: the rows to add.

        """
        self.metrics += other.metrics
        self.slices += other.slices
        self.indices += other.indices
        self.failed.update(other.failed)

    def summary(self) -> dict[str, Any]:
        """Means per phase type and mean index errors (NaN-aware; ``None`` where nothing is finite).

        Returns:
            ``{"n_studies", "failed", "metrics": {"ED"|"ES"|"all": {metric key: {"mean", "n"}}},
            "indices": {q: {"mean_error", "mean_abs_error", "n"}}}``; ``n`` counts finite values, so a
            structure missing from a reference does not pull its mean down. The slice-range EF error is
            under ``"lv_ef_percent_slice_range"``.

        Example:
            >>> Comparison().summary()["n_studies"]
            0

        """
        keys = [
            k for k in (self.metrics[0] if self.metrics else {}) if k.startswith(("dice_", "hd95_", "msd_"))
        ]
        metrics: dict[str, dict[str, dict[str, float | int | None]]] = {}
        for phase_name in _SUMMARY_PHASES:
            sel = [r for r in self.metrics if phase_name == "all" or r["phase_name"] == phase_name]
            if sel:
                metrics[phase_name] = {k: _mean_n([r[k] for r in sel]) for k in keys}
        indices: dict[str, dict[str, float | int]] = {}
        errors = {q: f"{q}_error" for q in INDEX_QUANTITIES}
        errors["lv_ef_percent_slice_range"] = "lv_ef_percent_error_slice_range"
        for name, key in errors.items():
            errs = np.asarray([r.get(key, _NAN) for r in self.indices], dtype=float)
            errs = errs[np.isfinite(errs)]
            if errs.size:
                indices[name] = {
                    "mean_error": float(errs.mean()),
                    "mean_abs_error": float(np.abs(errs).mean()),
                    "n": int(errs.size),
                }
        return {
            "n_studies": len(self.indices),
            "failed": dict(self.failed),
            "metrics": metrics,
            "indices": indices,
        }


def _mean_n(values: Sequence[Any]) -> dict[str, float | int | None]:
    arr = np.asarray([_NAN if v is None else v for v in values], dtype=float)
    arr = arr[np.isfinite(arr)]
    return {"mean": float(arr.mean()) if arr.size else None, "n": int(arr.size)}


def json_ready(value: Any) -> Any:
    """Replace NaN and infinities by ``None`` (JSON ``null``) and numpy scalars by Python numbers.

    Args:
        value: rows, dictionaries, lists or scalars.

    Returns:
        The same structure, valid for strict JSON.

    Example:
        >>> json_ready({"dice_rv": float("nan"), "n": np.int64(2)})
        {'dice_rv': None, 'n': 2}

    """
    if isinstance(value, Mapping):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_label_set(
    path: PathLike, convention: Convention = "internal", labelled_only: bool = False
) -> LabelSet:
    """Read label maps from a NIfTI file, a ``cardiacseg segment`` output folder or an ACDC patient folder.

    Args:
        path: the file or folder.
        convention: label values of NIfTI input (``"acdc"``: 1 RV, 2 MYO, 3 LV).
        labelled_only: keep only phases with at least one labelled voxel (references).

    Returns:
        :class:`LabelSet`.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: not a label file (names the file), or values outside 0-3.

    Example:
        >>> ref = read_label_set("acdc/patient001")  # doctest: +SKIP

    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_dir():
        if (p / "Info.cfg").exists():
            study = read_acdc_patient(p)
            return LabelSet(
                p, dict(study.labels), study.spacing_mm, study.n_phases, study.ed_phase, study.es_phase
            )
        if (p / "labels.nii.gz").exists():
            p = p / "labels.nii.gz"
        else:
            raise ValueError(f"{p}: folder holds neither labels.nii.gz nor an ACDC Info.cfg")
    arr, _, spacing = read_nifti_array(p)
    values = np.unique(arr)
    if values.size and (values.min() < 0 or values.max() > 3 or not np.all(np.equal(np.mod(values, 1), 0))):
        raise ValueError(f"{p}: not a label map (values {values[:8].tolist()}...; expected integers 0-3)")
    arr = arr.astype(np.uint8)
    if convention == "acdc":
        arr = acdc_to_internal(arr)
    stack = arr if arr.ndim == 4 else arr[None]
    labels = {t: np.ascontiguousarray(stack[t]) for t in range(stack.shape[0])}
    if labelled_only:
        labels = {t: lab for t, lab in labels.items() if lab.any()}
    return LabelSet(p, labels, spacing, stack.shape[0])


def _dice_if_ref(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice, or NaN when the reference lacks the structure (a prediction there is no overlap score)."""
    return dice_score(pred, ref) if ref.any() else _NAN


def _metric_row(
    study: str, phase: int, phase_name: str, pred: LabelArray, ref: LabelArray, spacing: SpacingZYX | None
) -> dict[str, Any]:
    row: dict[str, Any] = {"study": study, "phase": phase, "phase_name": phase_name}
    by_name = {m.name: m for m in segmentation_metrics(pred, ref, spacing)}
    for s in STRUCTURES:
        row[f"dice_{s.key}"] = by_name[s.name].dice if by_name[s.name].ref_voxels else _NAN
    for s in STRUCTURES:
        m = by_name[s.name]
        has_ref = m.ref_voxels > 0
        for unit in ("mm", "voxels"):
            own = has_ref and (m.unit == "mm") == (unit == "mm")
            row[f"hd95_{s.key}_{unit}"] = m.hd95 if own else _NAN
            row[f"msd_{s.key}_{unit}"] = m.msd if own else _NAN
    for s in STRUCTURES:
        row[f"{s.key}_voxels_ref"] = by_name[s.name].ref_voxels
        row[f"{s.key}_voxels_pred"] = by_name[s.name].pred_voxels
    return row


def _slice_rows(
    study: str, phase: int, phase_name: str, pred: LabelArray, ref: LabelArray
) -> list[dict[str, Any]]:
    rows = []
    for z in range(ref.shape[0]):
        if not (pred[z].any() or ref[z].any()):
            continue
        row: dict[str, Any] = {"study": study, "phase": phase, "phase_name": phase_name, "slice": z}
        masks = {s: (pred[z] == s, ref[z] == s) for s in STRUCTURES}
        for s, (p, r) in masks.items():
            row[f"dice_{s.key}"] = _dice_if_ref(p, r)
        for s, (p, r) in masks.items():
            row[f"{s.key}_voxels_ref"] = int(r.sum())
            row[f"{s.key}_voxels_pred"] = int(p.sum())
        rows.append(row)
    return rows


def _value(x: float | None) -> float:
    return _NAN if x is None else float(x)


def compare_label_maps(
    pred: Mapping[int, LabelArray],
    ref: Mapping[int, LabelArray],
    spacing_mm: SpacingZYX | None = None,
    study: str = "",
    ed_phase: int | None = None,
    es_phase: int | None = None,
    pred_source: str = "prediction",
    ref_source: str = "reference",
) -> Comparison:
    """Compare one study's predicted label maps with its reference: the one comparison of cardiacseg.

    Phases compared are the reference's. ED/ES are ``ed_phase``/``es_phase`` when given, else the
    reference's largest/smallest LV (two or more phases); the indices of both sides are computed at
    those phases. Keys and NaN rules are in the module docstring.

    Args:
        pred: predicted ``(Z, Y, X)`` internal labels keyed by phase (at least the reference's phases).
        ref: reference labels keyed by phase.
        spacing_mm: ``(z, y, x)`` in mm; ``None``: distances in voxels, no volumes or mass.
        study: study name in every row.
        ed_phase: end-diastolic phase stated by the source, or ``None``.
        es_phase: end-systolic phase stated by the source, or ``None``.
        pred_source: how error messages name the prediction (e.g. its file).
        ref_source: how error messages name the reference.

    Returns:
        A :class:`Comparison` of one study.

    Raises:
        ValueError: no reference phase, a reference phase missing from the prediction, or shapes that
            differ (the messages name both sources).

    Example:
        >>> ed = np.zeros((2, 8, 8), np.uint8); ed[:, 2:6, 2:6] = 1
        >>> es = np.zeros((2, 8, 8), np.uint8); es[:, 3:5, 3:5] = 1
        >>> c = compare_label_maps({0: ed, 1: ed}, {0: ed, 1: es}, study="s")
        >>> c.metrics[1]["dice_lv"], c.indices[0]["lv_ef_percent_ref"], c.indices[0]["lv_ef_percent_error"]
        (0.4, 75.0, -75.0)

    """
    phases = sorted(ref)
    if not phases:
        raise ValueError(f"{ref_source}: no labelled phase")
    missing = [t for t in phases if t not in pred]
    if missing:
        raise ValueError(f"{pred_source}: no phase(s) {missing} labelled in the reference {ref_source}")
    for t in phases:
        if np.shape(pred[t]) != np.shape(ref[t]):
            raise ValueError(
                f"{pred_source} phase {t} has shape {np.shape(pred[t])}, {ref_source} has {np.shape(ref[t])}"
            )
    ed, es, source = ed_phase, es_phase, "given"
    if (ed is None or es is None) and len(phases) >= 2:
        ed, es = detect_ed_es(ref)
        source = "detected"
    elif ed is None or es is None:
        ed = es = None
        source = ""
    out = Comparison()
    for t in phases:
        tag = Phase.ED.value if t == ed else Phase.ES.value if t == es else ""
        p, r = np.asarray(pred[t]), np.asarray(ref[t])
        out.metrics.append(_metric_row(study, t, tag, p, r, spacing_mm))
        out.slices += _slice_rows(study, t, tag, p, r)
    row: dict[str, Any] = {"study": study, "ed_phase": ed, "es_phase": es, "ed_es_source": source}
    for q in INDEX_QUANTITIES:
        row[f"{q}_pred"] = row[f"{q}_ref"] = row[f"{q}_error"] = _NAN
    row["lv_ef_percent_pred_slice_range"] = row["lv_ef_percent_error_slice_range"] = _NAN
    if ed is not None and es is not None:
        pair = (ed, es)
        r_idx = compute_cardiac_indices({t: ref[t] for t in pair}, spacing_mm, ed, es)
        p_maps = {t: pred[t] for t in pair}
        p_idx = compute_cardiac_indices(p_maps, spacing_mm, ed, es)
        ranged = compute_cardiac_indices(apply_slice_range(p_maps)[0], spacing_mm, ed, es)
        for q in INDEX_QUANTITIES:
            a, b = _value(getattr(p_idx, q)), _value(getattr(r_idx, q))
            row[f"{q}_pred"], row[f"{q}_ref"], row[f"{q}_error"] = a, b, a - b
        a = _value(ranged.lv_ef_percent)
        row["lv_ef_percent_pred_slice_range"] = a
        row["lv_ef_percent_error_slice_range"] = a - row["lv_ef_percent_ref"]
    out.indices.append(row)
    return out


#: The indices that need each structure (an index is NaN when one of its structures is not scored).
_INDEX_STRUCTURES = {q: ("myo",) if q == "lv_mass_g" else (q[:2],) for q in INDEX_QUANTITIES}


def _keep_annotated(
    pred: Mapping[int, LabelArray], ref: Mapping[int, LabelArray]
) -> tuple[dict[int, LabelArray], dict[int, LabelArray]]:
    """Empty both sides on the slices where the reference carries no label (not contoured)."""
    p_out: dict[int, LabelArray] = dict(pred)
    for t, r in ref.items():
        keep = np.asarray(np.asarray(r).reshape(np.shape(r)[0], -1).any(axis=1), dtype=bool)
        if t in p_out and np.shape(p_out[t]) == np.shape(r):
            p_out[t] = np.where(keep[:, None, None], p_out[t], 0).astype(np.uint8)
    return p_out, dict(ref)


def restrict_to_structures(comparison: Comparison, structures: Sequence[str]) -> Comparison:
    """Set every metric and index of a structure not in ``structures`` to NaN (scored: only those).

    Args:
        comparison: the rows to edit (in place).
        structures: structure keys scored (``"lv"``, ``"myo"``, ``"rv"``).

    Returns:
        The same comparison.

    Raises:
        ValueError: an unknown structure key.

    Example:
        >>> c = restrict_to_structures(Comparison(), ["lv", "myo"])

    """
    known = [s.key for s in STRUCTURES]
    unknown = sorted(set(structures) - set(known))
    if unknown:
        raise ValueError(f"unknown structure(s) {unknown}; choose from {known}")
    dropped = [k for k in known if k not in structures]
    for row in comparison.metrics + comparison.slices:
        for key in list(row):
            if any(key.startswith((f"dice_{d}", f"hd95_{d}_", f"msd_{d}_")) for d in dropped):
                row[key] = _NAN
    for row in comparison.indices:
        for q, needs in _INDEX_STRUCTURES.items():
            if any(n in dropped for n in needs):
                for key in (f"{q}_pred", f"{q}_ref", f"{q}_error"):
                    row[key] = _NAN
                if q == "lv_ef_percent":
                    row["lv_ef_percent_pred_slice_range"] = row["lv_ef_percent_error_slice_range"] = _NAN
    return comparison


def compare_labels(pred: LabelSet, ref: LabelSet, name: str = "", annotated_only: bool = False) -> Comparison:
    """Compare label sets read from disk (:func:`read_label_set`) with :func:`compare_label_maps`.

    A 3D prediction is compared with a 3D reference whatever their phase indices; otherwise the
    reference's labelled phases must be in the prediction. The spacing is the reference's, else the
    prediction's; ED/ES are the reference's when its source states them.

    Args:
        pred: predicted labels (all phases, or the same phases as the reference).
        ref: reference labels.
        name: study name for the rows.
        annotated_only: compare only the slices where the reference has a label (a partly contoured
            reference, e.g. Sunnybrook): both sides are emptied on the other slices, for the metrics and
            the indices. A prediction on a slice the expert left empty is then not counted.

    Returns:
        A :class:`Comparison` of one study.

    Raises:
        ValueError: a reference phase missing from the prediction, or shapes differ (names both files).

    Example:
        >>> c = compare_labels(read_label_set("out/p1"), read_label_set("acdc/p1"), "p1")  # doctest: +SKIP

    """
    phases = sorted(ref.labels)
    pred_labels = dict(pred.labels)
    if pred.n_phases == 1 and ref.n_phases == 1 and phases and 0 in pred.labels:
        pred_labels = {phases[0]: pred.labels[0]}
    ref_labels: Mapping[int, LabelArray] = ref.labels
    if annotated_only:
        pred_labels, ref_labels = _keep_annotated(pred_labels, ref.labels)
    return compare_label_maps(
        pred_labels,
        ref_labels,
        ref.spacing_mm or pred.spacing_mm,
        name,
        ref.ed_phase,
        ref.es_phase,
        str(pred.path),
        str(ref.path),
    )


def compare_study(
    study: CineStudy,
    pred: Mapping[int, LabelArray],
    restrict_to_annotated: bool = False,
    name: str | None = None,
) -> Comparison:
    """Compare predicted label maps with a labelled study's own labels (:func:`compare_label_maps`).

    Args:
        study: a study with labels; its spacing and ED/ES are used.
        pred: predicted ``(Z, Y, X)`` labels of at least the labelled phases.
        restrict_to_annotated: compare only slices carrying annotations (e.g. the contoured Sunnybrook
            slices): both sides are emptied elsewhere, for the metrics and the indices.
        name: study name in the rows (default: ``study.source``).

    Returns:
        A :class:`Comparison` of one study.

    Raises:
        ValueError: the study has no labels, or a labelled phase is missing from ``pred``.

    Example:
        >>> c = compare_study(study, predictor.predict(study), restrict_to_annotated=True)  # doctest: +SKIP

    """
    ref: dict[int, LabelArray] = dict(study.labels)
    prediction: dict[int, LabelArray] = {t: pred[t] for t in ref if t in pred}
    if restrict_to_annotated:
        for t, kept in study.annotated_slices.items():
            if t not in ref:
                continue
            keep = np.zeros(ref[t].shape[0], bool)
            keep[list(kept)] = True
            ref[t] = np.where(keep[:, None, None], ref[t], 0).astype(np.uint8)
            if t in prediction:
                prediction[t] = np.where(keep[:, None, None], prediction[t], 0).astype(np.uint8)
    return compare_label_maps(
        prediction,
        ref,
        study.spacing_mm,
        study.source if name is None else name,
        study.ed_phase,
        study.es_phase,
        f"prediction of {study.source}",
        f"labels of {study.source}",
    )


def find_label_sets(path: PathLike) -> dict[str, Path]:
    """Label sources in a folder keyed by study name (:func:`~cardiacseg.io.discover.study_name`).

    Args:
        path: a label file, a single-study folder, or a folder of them.

    Returns:
        ``{study name: path}``.

    Raises:
        FileNotFoundError: the path does not exist.

    Example:
        >>> find_label_sets("out")  # doctest: +SKIP
        {'SCD0000101': PosixPath('out/SCD0000101/labels.nii.gz')}

    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_file() or (p / "Info.cfg").exists() or (p / "labels.nii.gz").exists():
        return {study_name(p) if p.is_file() else p.name: p}
    out: dict[str, Path] = {}
    for e in sorted(p.iterdir()):
        if e.is_dir() and ((e / "Info.cfg").exists() or (e / "labels.nii.gz").exists()):
            out[e.name] = e
        elif e.is_file() and e.name.endswith((".nii", ".nii.gz")):
            out[study_name(e)] = e
    return out


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n", restval="nan")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def check_outputs(paths: Sequence[Path], overwrite: bool) -> None:
    """Refuse before any work when an output exists and ``overwrite`` is False.

    Args:
        paths: the files a job will write.
        overwrite: whether replacing them is allowed.

    Raises:
        FileExistsError: names the first existing file.

    Example:
        >>> check_outputs([Path("/nonexistent/metrics.csv")], overwrite=False)

    """
    for p in paths:
        check_writable(p, overwrite)


def write_comparison(
    comparison: Comparison,
    output_dir: PathLike,
    overwrite: bool = False,
    figures: bool = True,
    summary_extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a comparison's :data:`COMPARISON_OUTPUTS`, each atomically; ``summary.json`` last.

    Args:
        comparison: the rows.
        output_dir: output folder (created).
        overwrite: replace earlier outputs; otherwise nothing is written when any of them exists.
        figures: write ``bland_altman.png`` (EF, EDV, ESV; studies with both sides).
        summary_extra: entries added to the summary (e.g. unpaired studies).

    Returns:
        The summary (:meth:`Comparison.summary` with ``summary_extra`` and ``outputs``), as written.

    Raises:
        FileExistsError: an output exists and ``overwrite`` is False (names the file; nothing written).

    Example:
        >>> summary = write_comparison(comparison, "eval")  # doctest: +SKIP

    """
    out = Path(output_dir)
    check_outputs([out / n for n in COMPARISON_OUTPUTS], overwrite)
    summary = {**comparison.summary(), **(summary_extra or {})}
    written = [
        atomic_write_text(out / "metrics.csv", _csv(comparison.metrics), overwrite=overwrite),
        atomic_write_text(out / "metrics_per_slice.csv", _csv(comparison.slices), overwrite=overwrite),
        atomic_write_text(out / "indices.csv", _csv(comparison.indices), overwrite=overwrite),
    ]
    pairs: dict[str, tuple[list[float], list[float]]] = {}
    units = {"EF": "%", "EDV": "mL", "ESV": "mL"}
    for label, q in (("EF", "lv_ef_percent"), ("EDV", "lv_edv_ml"), ("ESV", "lv_esv_ml")):
        ok = [r for r in comparison.indices if math.isfinite(r[f"{q}_error"])]
        if ok:
            pairs[label] = ([r[f"{q}_pred"] for r in ok], [r[f"{q}_ref"] for r in ok])
    if figures and pairs:
        title = f"model vs reference, {len(comparison.indices)} studies"
        written.append(plot_bland_altman(pairs, out / "bland_altman.png", units, title, overwrite))
    summary["outputs"] = [str(p) for p in written] + [str(out / "summary.json")]
    ready: dict[str, Any] = json_ready(summary)
    atomic_write_text(out / "summary.json", json.dumps(ready, indent=2) + "\n", overwrite=overwrite)
    return ready


def compare_cohort(
    pred: PathLike,
    ref: PathLike,
    output_dir: PathLike,
    pred_convention: Convention = "internal",
    ref_convention: Convention = "internal",
    overwrite: bool = False,
    structures: Sequence[str] | None = None,
    annotated_only: bool = False,
) -> dict[str, Any]:
    """Compare predictions with references for one study or a cohort; write CSV, JSON and a Bland–Altman PNG.

    Studies are paired by name (see :func:`find_label_sets`); unpaired ones are listed in the summary.
    Writes :data:`COMPARISON_OUTPUTS` with :func:`write_comparison`: ``metrics.csv`` (per study and
    phase), ``metrics_per_slice.csv``, ``indices.csv`` (per study), ``summary.json`` (means per phase
    type, mean and mean absolute index errors, unpaired and failed studies) and ``bland_altman.png``.

    Args:
        pred: prediction file or folder.
        ref: reference file or folder.
        output_dir: output folder.
        pred_convention: label convention of prediction NIfTI files.
        ref_convention: label convention of reference NIfTI files.
        overwrite: replace earlier outputs.
        structures: score only these structures (``"lv"``, ``"myo"``, ``"rv"``; default all), e.g. LV
            and MYO for LV-only expert contours: the others' metrics and indices are NaN and the summary
            says what was scored (``scored_structures``). A structure the reference lacks is NaN anyway.
        annotated_only: score only the slices where the reference has a label
            (:func:`compare_labels`); the summary says so (``annotated_slices_only``).

    Returns:
        The summary dictionary (``n_studies``, ``metrics``, ``indices``, ``failed``, ``unpaired_*``,
        ``scored_structures``, ``annotated_slices_only``, ``outputs``).

    Raises:
        ValueError: no study could be paired, or an unknown structure key.
        FileExistsError: outputs exist and ``overwrite`` is False (checked before reading any study).

    Example:
        >>> summary = compare_cohort("out", "acdc", "eval")  # doctest: +SKIP

    """
    out = Path(output_dir)
    scored = list(structures) if structures else [s.key for s in STRUCTURES]
    restrict_to_structures(Comparison(), scored)  # an unknown key fails before any work
    check_outputs([out / n for n in COMPARISON_OUTPUTS], overwrite)
    preds, refs = find_label_sets(pred), find_label_sets(ref)
    if len(preds) == 1 and len(refs) == 1:
        pairs = {next(iter(refs)): (next(iter(preds.values())), next(iter(refs.values())))}
    else:
        pairs = {k: (preds[k], refs[k]) for k in sorted(set(preds) & set(refs))}
    if not pairs:
        raise ValueError(
            f"no study in {pred} matches one in {ref} by name (predictions: {sorted(preds)[:5]}, "
            f"references: {sorted(refs)[:5]})"
        )
    comparison = Comparison()
    for name, (pp, rp) in pairs.items():
        try:
            comparison.extend(
                compare_labels(
                    read_label_set(pp, pred_convention),
                    read_label_set(rp, ref_convention, labelled_only=True),
                    name,
                    annotated_only=annotated_only,
                )
            )
        except (ValueError, OSError) as exc:
            comparison.failed[name] = str(exc)
    restrict_to_structures(comparison, scored)
    extra = {
        "scored_structures": scored,
        "annotated_slices_only": annotated_only,
        "unpaired_predictions": sorted(set(preds) - set(refs)) if len(pairs) > 1 else [],
        "unpaired_references": sorted(set(refs) - set(preds)) if len(pairs) > 1 else [],
    }
    return write_comparison(comparison, out, overwrite=overwrite, summary_extra=extra)
