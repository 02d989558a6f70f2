"""Pseudo-labels with confidence sets: label an unlabelled cohort, keep the studies whose volumes agree.

The 7T transfer study (``transfer-7t``, section II.A.2 "Creating Labels") segmented the Kaggle Data
Science Bowl cohort with a trained model, compared the predicted LV end-systolic and end-diastolic
volumes with the reference volumes Kaggle provides, and kept as *confidence sets* the examinations whose
predicted values lay within ±5 % (p5), ±10 % (p10) and ±15 % (p15) of the true values. Those pseudo-labels
then served as training data for transfer learning.

:func:`pseudo_label_cohort` does the same for a user's cohort:

1. every study is segmented with :func:`~cardiacseg.workflows.segment.segment_batch` (same outputs,
   resume and failure handling as ``cardiacseg segment``) into ``OUT/segmentations/<study>/``;
2. each study is matched to a row of a reference CSV in the Data Science Bowl format (``Id,Systole,
   Diastole``; :func:`read_reference_volumes`) by :func:`match_reference_ids`;
3. relative errors ``(pred - ref) / ref`` of EDV and ESV are computed (:func:`relative_error`), and a
   study belongs to the set ``pK`` when **both** lie within ``±K %`` (inclusive);
4. each set is written as a MONAI datalist (``OUT/p5.json``, ...) of per-phase 3D NIfTI images and
   pseudo-labels (``OUT/images/<study>_ED.nii.gz``, ``OUT/labels/<study>_ED.nii.gz``), ready for
   ``cardiacseg transfer --data`` and :func:`~cardiacseg.data.datalist.nifti_slice_items`; with the
   table ``OUT/pseudo_labels.csv`` (every study, its volumes, errors and set membership) and
   ``OUT/summary.json`` (counts per set; written last, it marks a finished run).

A relative volume error is a ratio of volumes, so the voxel volume cancels: studies without voxel spacing
(ACDC in the SSL4MIS layout, NIfTI without geometry) are compared in voxel counts when the reference is
given in voxels too (``reference_units="voxels"``); every output names the units.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cardiacseg.inferers.identity import describe_predictor
from cardiacseg.inferers.predictor import SlicePredictor
from cardiacseg.io.discover import StudyInput, discover_studies
from cardiacseg.io.kaggle import DsbFormatError, read_dsb_volumes
from cardiacseg.io.nifti import read_nifti_array, write_nifti
from cardiacseg.typing import PathLike
from cardiacseg.utils.atomic import atomic_write_text
from cardiacseg.workflows.segment import SLICE_RANGE_RULES, BatchResult, segment_batch

__all__ = [
    "DEFAULT_TOLERANCES_PERCENT",
    "PseudoLabelResult",
    "ReferenceVolumes",
    "StudyComparison",
    "VolumeUnits",
    "confidence_set_name",
    "confidence_sets",
    "match_reference_ids",
    "parse_tolerances",
    "pseudo_label_cohort",
    "read_id_map",
    "read_reference_volumes",
    "reference_id_from_name",
    "relative_error",
]

#: The paper's confidence sets p5, p10, p15 (± percent of the reference volume).
DEFAULT_TOLERANCES_PERCENT: tuple[float, ...] = (5.0, 10.0, 15.0)

#: Units of the reference volumes: millilitres, or voxel counts (for studies without spacing).
VolumeUnits = Literal["ml", "voxels"]

#: How the units are written in the outputs.
UNIT_LABELS: dict[str, str] = {"ml": "mL", "voxels": "voxels"}

#: The matching rule, in words (``summary.json`` and the docs).
MATCHING_RULES = {
    "name": "the integer in the study name (exactly one run of digits, leading zeros ignored: "
    "'patient004' -> 4, 'SCD0000101' -> 101, '12' -> 12)",
    "id_map": "the study,Id table given by the user",
}

#: Names of the outputs directly under the output folder (``summary.json`` is written last).
TABLE_FILE = "pseudo_labels.csv"
SUMMARY_FILE = "summary.json"
SEGMENTATIONS_DIR = "segmentations"

_PHASES = ("ED", "ES")


@dataclass(frozen=True)
class ReferenceVolumes:
    """Reference LV volumes of one study (one row of the reference CSV).

    Attributes:
        reference_id: the CSV's integer ``Id``.
        edv: end-diastolic volume (the CSV's ``Diastole``), in ``units``.
        esv: end-systolic volume (the CSV's ``Systole``), in ``units``.
        units: ``"ml"`` or ``"voxels"``.

    Example:
        >>> ReferenceVolumes(1, 120.0, 50.0, "ml").edv
        120.0

    """

    reference_id: int
    edv: float
    esv: float
    units: VolumeUnits


@dataclass(frozen=True)
class StudyComparison:
    """One study of a pseudo-label run: predicted and reference volumes, errors and set membership.

    Attributes:
        study: the study name (the ``segment`` output folder name).
        input: the study's path.
        reference_id: the matched reference ``Id``.
        status: ``"compared"``, ``"failed"`` (segmentation failed) or ``"not comparable"`` (single
            phase; no spacing while the reference is in mL).
        reason: why a study was not compared (empty otherwise).
        units: units of the four volumes (``"mL"`` or ``"voxels"``).
        ed_phase: end-diastolic phase index into the study's ``T`` axis (as ``segment`` chose it).
        es_phase: end-systolic phase index.
        n_slices: slices per phase (each pseudo-labelled phase gives this many 2D images).
        pred_edv: predicted LV EDV (all slices).
        pred_esv: predicted LV ESV.
        ref_edv: reference EDV.
        ref_esv: reference ESV.
        edv_rel_error: ``(pred_edv - ref_edv) / ref_edv`` (a fraction, signed).
        esv_rel_error: ``(pred_esv - ref_esv) / ref_esv``.
        sets: names of the confidence sets the study belongs to (``("p10", "p15")``).
        qc_flags: the segmentation's QC flag codes (``;``-separated; information only).

    Example:
        >>> StudyComparison("s1", "s1.nii.gz", 1, "compared", edv_rel_error=0.02).max_abs_rel_error
        0.02

    """

    study: str
    input: str
    reference_id: int
    status: str
    reason: str = ""
    units: str = ""
    ed_phase: int | None = None
    es_phase: int | None = None
    n_slices: int | None = None
    pred_edv: float | None = None
    pred_esv: float | None = None
    ref_edv: float | None = None
    ref_esv: float | None = None
    edv_rel_error: float | None = None
    esv_rel_error: float | None = None
    sets: tuple[str, ...] = ()
    qc_flags: str = ""

    @property
    def max_abs_rel_error(self) -> float | None:
        """The larger of ``|edv_rel_error|`` and ``|esv_rel_error|`` (``None`` when either is unknown)."""
        errors = [e for e in (self.edv_rel_error, self.esv_rel_error) if e is not None]
        return max(abs(e) for e in errors) if errors else None

    def to_row(self, set_names: Sequence[str]) -> dict[str, object]:
        """Return the study's row of ``pseudo_labels.csv`` (errors in percent; an ``in_<set>`` per set).

        Args:
            set_names: every set of the run, in order.

        Returns:
            Column name to value (``""`` for unknown values).

        """

        def num(x: float | None, scale: float = 1.0) -> object:
            return "" if x is None else round(x * scale, 6)

        row: dict[str, object] = {
            "study": self.study,
            "input": self.input,
            "reference_id": self.reference_id,
            "status": self.status,
            "reason": self.reason,
            "units": self.units,
            "ed_phase": "" if self.ed_phase is None else self.ed_phase,
            "es_phase": "" if self.es_phase is None else self.es_phase,
            "n_slices": "" if self.n_slices is None else self.n_slices,
            "pred_edv": num(self.pred_edv),
            "ref_edv": num(self.ref_edv),
            "edv_rel_error_percent": num(self.edv_rel_error, 100.0),
            "pred_esv": num(self.pred_esv),
            "ref_esv": num(self.ref_esv),
            "esv_rel_error_percent": num(self.esv_rel_error, 100.0),
            "max_abs_rel_error_percent": num(self.max_abs_rel_error, 100.0),
        }
        for name in set_names:
            row[f"in_{name}"] = int(name in self.sets)
        row["qc_flags"] = self.qc_flags
        return row


@dataclass
class PseudoLabelResult:
    """Outcome of :func:`pseudo_label_cohort`.

    Attributes:
        studies: one :class:`StudyComparison` per study, in discovery order.
        sets: ``{set name: study names}`` (``{"p5": [...], "p10": [...], "p15": [...]}``).
        datalists: ``{set name: datalist JSON path}``.
        table: the ``pseudo_labels.csv`` path.
        summary: the content of ``summary.json``.
        batch: the segmentation batch's :class:`~cardiacseg.workflows.segment.BatchResult`.

    Example:
        >>> PseudoLabelResult().ok
        True

    """

    studies: list[StudyComparison] = field(default_factory=list)
    sets: dict[str, list[str]] = field(default_factory=dict)
    datalists: dict[str, Path] = field(default_factory=dict)
    table: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    batch: BatchResult = field(default_factory=BatchResult)

    @property
    def ok(self) -> bool:
        """True when every study was segmented (some may still be not comparable)."""
        return not any(s.status == "failed" for s in self.studies)


def relative_error(predicted: float, reference: float) -> float:
    """Relative volume error ``(predicted - reference) / reference`` (a signed fraction).

    Spacing-free: both volumes may be voxel counts, as long as they are in the same units.

    Args:
        predicted: the predicted volume.
        reference: the reference volume (positive).

    Returns:
        The relative error.

    Raises:
        ValueError: a reference that is not a positive finite number.

    Example:
        >>> relative_error(105.0, 100.0)
        0.05

    """
    if not (math.isfinite(reference) and reference > 0):
        raise ValueError(f"a reference volume must be a positive number, got {reference}")
    return (predicted - reference) / reference


def confidence_set_name(tolerance_percent: float) -> str:
    """Name of the set of tolerance ``±tolerance_percent %``: ``p5``, ``p10``, ``p7.5``.

    Args:
        tolerance_percent: the tolerance in percent.

    Returns:
        The name.

    Example:
        >>> confidence_set_name(5.0), confidence_set_name(7.5)
        ('p5', 'p7.5')

    """
    return f"p{tolerance_percent:g}"


def confidence_sets(
    edv_rel_error: float, esv_rel_error: float, tolerances: Sequence[float] = DEFAULT_TOLERANCES_PERCENT
) -> tuple[str, ...]:
    """Name the sets a study belongs to: ``pK`` when ``|error| <= K / 100`` for both EDV and ESV (inclusive).

    Args:
        edv_rel_error: the EDV's relative error (a fraction, :func:`relative_error`).
        esv_rel_error: the ESV's relative error.
        tolerances: ``K`` values in percent.

    Returns:
        The names of the sets, in the order of ``tolerances``.

    Example:
        >>> confidence_sets(0.05, -0.08)
        ('p10', 'p15')

    """
    worst = max(abs(edv_rel_error), abs(esv_rel_error))
    return tuple(confidence_set_name(k) for k in tolerances if worst <= k / 100.0)


def parse_tolerances(text: str | Sequence[float]) -> tuple[float, ...]:
    """Read tolerances in percent (``"5,10,15"`` or numbers): positive, finite, unique, sorted.

    Args:
        text: comma-separated numbers, or a sequence of numbers.

    Returns:
        The tolerances in increasing order.

    Raises:
        ValueError: an empty list, a non-number, a value that is not positive and finite, or duplicates.

    Example:
        >>> parse_tolerances("15, 5,10")
        (5.0, 10.0, 15.0)

    """
    parts: list[Any] = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    values: list[float] = []
    for p in parts:
        try:
            v = float(p)
        except (TypeError, ValueError):
            raise ValueError(f"tolerances must be numbers in percent (e.g. 5,10,15), got {p!r}") from None
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"a tolerance must be a positive percentage, got {p!r}")
        values.append(v)
    if not values:
        raise ValueError("no tolerance given (e.g. 5,10,15)")
    if len({confidence_set_name(v) for v in values}) != len(values):
        raise ValueError(f"duplicate tolerances in {text!r}")
    return tuple(sorted(values))


def read_reference_volumes(path: PathLike, units: VolumeUnits = "ml") -> dict[int, ReferenceVolumes]:
    """Read reference LV volumes in the Kaggle Data Science Bowl format and check them.

    ``Id,Systole,Diastole`` (``train.csv``, ``validate.csv``) or ``Id,Volume`` with ``N_Systole`` /
    ``N_Diastole`` ids (``solution.csv``); read with :func:`~cardiacseg.io.kaggle.read_dsb_volumes`.
    ``Systole`` is the ESV and ``Diastole`` the EDV. Kaggle's volumes are in mL; ``units="voxels"`` says
    the file holds voxel counts instead (for studies without spacing).

    Args:
        path: the CSV file.
        units: ``"ml"`` or ``"voxels"``.

    Returns:
        ``{Id: ReferenceVolumes}``.

    Raises:
        ValueError: unknown ``units``.
        DsbFormatError: (a ``ValueError``) missing ``Systole``/``Diastole`` columns, malformed numbers, an
            ``Id`` given twice, or a volume that is not a positive finite number (zero, negative, NaN);
            every message names the file and the ``Id``.
        FileNotFoundError: no such file.

    Example:
        >>> refs = read_reference_volumes("kaggle_dsb_truth/train.csv")  # doctest: +SKIP
        >>> refs[1].edv, refs[1].units  # doctest: +SKIP
        (261.0, 'ml')

    """
    if units not in UNIT_LABELS:
        raise ValueError(f"units must be 'ml' or 'voxels', got {units!r}")
    path = Path(path)
    volumes = read_dsb_volumes(path)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if "Systole" in (reader.fieldnames or ()):
            ids = [r["Id"].strip() for r in reader]
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise DsbFormatError(f"{path}: Id given more than once: {dup[:5]}")
    out: dict[int, ReferenceVolumes] = {}
    for pid, v in sorted(volumes.items()):
        for column, value in (("Diastole", v.diastole_ml), ("Systole", v.systole_ml)):
            if not (math.isfinite(value) and value > 0):
                raise DsbFormatError(
                    f"{path}: Id {pid} has {column} = {value}; reference volumes must be positive numbers"
                )
        out[pid] = ReferenceVolumes(pid, v.diastole_ml, v.systole_ml, units)
    if not out:
        raise DsbFormatError(f"{path}: no reference volumes (an empty table)")
    return out


def read_id_map(path: PathLike) -> dict[str, int]:
    """Read a ``study,Id`` table that names the reference ``Id`` of each study.

    Args:
        path: CSV with columns ``study`` (the study name, as ``segment`` names its output folder) and
            ``Id`` (the reference CSV's integer id).

    Returns:
        ``{study: Id}``.

    Raises:
        ValueError: missing columns, an ``Id`` that is not an integer, or a study listed twice (the
            message names the file).

    Example:
        >>> read_id_map("ids.csv")  # doctest: +SKIP
        {'SCD0000101': 1}

    """
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not {"study", "Id"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{path}: an id map needs columns study,Id; got {reader.fieldnames}")
        out: dict[str, int] = {}
        for line, r in enumerate(reader, start=2):
            name = (r["study"] or "").strip()
            try:
                pid = int((r["Id"] or "").strip())
            except ValueError:
                raise ValueError(f"{path}, line {line}: Id {r['Id']!r} is not an integer") from None
            if name in out:
                raise ValueError(f"{path}, line {line}: study {name!r} is listed twice")
            out[name] = pid
    return out


def reference_id_from_name(name: str) -> int:
    """Find a study's reference ``Id`` by the default rule: the integer in its name.

    The name must hold exactly one run of digits; leading zeros are ignored. Kaggle DSB studies are
    folders named by their ``Id`` (``"12"``).

    Args:
        name: the study name.

    Returns:
        The integer.

    Raises:
        ValueError: no digits, or several runs of digits (ambiguous: give an id map).

    Example:
        >>> reference_id_from_name("patient004"), reference_id_from_name("SCD0000101")
        (4, 101)

    """
    runs = re.findall(r"\d+", name)
    if len(runs) != 1:
        what = "no digits" if not runs else f"several numbers {runs}"
        raise ValueError(f"study {name!r}: {what} in its name; give its reference Id in an id map (--id-map)")
    return int(runs[0])


def match_reference_ids(
    names: Sequence[str],
    references: Mapping[int, ReferenceVolumes],
    id_map: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Match every study to a reference row, before anything is segmented.

    Rule: with ``id_map``, the study's entry there; otherwise the integer in its name
    (:func:`reference_id_from_name`). Every study must match a distinct ``Id`` present in
    ``references``; reference rows without a study are fine (a cohort may be a subset).

    Args:
        names: the study names (as :func:`~cardiacseg.io.discover.discover_studies` names them).
        references: from :func:`read_reference_volumes`.
        id_map: ``{study name: Id}`` (from :func:`read_id_map`); entries naming no study are warned about.

    Returns:
        ``{study name: Id}``.

    Raises:
        ValueError: studies without an ``Id`` (not in the map, or no single number in the name),
            ``Id`` s missing from the reference, or two studies matched to one ``Id``; the message lists
            the studies.

    Example:
        >>> refs = {4: ReferenceVolumes(4, 100.0, 40.0, "voxels")}
        >>> match_reference_ids(["patient004"], refs)
        {'patient004': 4}

    """
    ids: dict[str, int] = {}
    problems: list[str] = []
    for name in names:
        if id_map is not None:
            if name not in id_map:
                problems.append(f"{name!r} is not in the id map")
                continue
            ids[name] = id_map[name]
        else:
            try:
                ids[name] = reference_id_from_name(name)
            except ValueError as exc:
                problems.append(str(exc))
    if problems:
        raise ValueError("no reference Id for some studies: " + "; ".join(problems))
    missing = {n: i for n, i in ids.items() if i not in references}
    if missing:
        listed = ", ".join(f"{n} -> Id {i}" for n, i in list(missing.items())[:10])
        raise ValueError(
            f"the reference has no row for {len(missing)} study(ies): {listed}"
            f"{' ...' if len(missing) > 10 else ''} (rule: "
            f"{MATCHING_RULES['id_map' if id_map is not None else 'name']})"
        )
    by_id: dict[int, list[str]] = {}
    for n, i in ids.items():
        by_id.setdefault(i, []).append(n)
    shared = {i: ns for i, ns in by_id.items() if len(ns) > 1}
    if shared:
        raise ValueError(f"several studies match one reference Id: {shared}")
    if id_map is not None:
        unused = sorted(set(id_map) - set(names))
        if unused:
            warnings.warn(
                f"the id map names {len(unused)} study(ies) not among the inputs: {unused[:5]}"
                f"{' ...' if len(unused) > 5 else ''}",
                stacklevel=2,
            )
    return ids


def pseudo_label_cohort(
    inputs: Sequence[PathLike],
    output_dir: PathLike,
    predictor: SlicePredictor,
    reference: PathLike | Mapping[int, ReferenceVolumes],
    reference_units: VolumeUnits = "ml",
    id_map: PathLike | Mapping[str, int] | None = None,
    tolerances: Sequence[float] | str = DEFAULT_TOLERANCES_PERCENT,
    overwrite: bool = False,
    progress: bool = True,
    figures: bool = True,
) -> PseudoLabelResult:
    """Segment a cohort, compare its LV volumes with reference volumes and write confidence sets.

    Studies are found as ``cardiacseg segment`` finds them and matched to reference rows
    (:func:`match_reference_ids`) before any is segmented: a study without a reference row is refused.
    They are segmented with :func:`~cardiacseg.workflows.segment.segment_batch` into
    ``OUT/segmentations`` (resumable; a failing study is recorded and the others go on). LV EDV and ESV
    are those of the segmentation report (ED and ES as ``segment`` chose them, all slices counted), in mL,
    or in voxels when ``reference_units="voxels"``. A study belongs to the set ``pK`` when
    ``|pred - ref| / ref <= K / 100`` for both EDV and ESV.

    Outputs in ``output_dir``: ``pK.json`` per set (MONAI datalist: ``{"training": [{"image", "label",
    "patient", "phase"}, ...]}``, two entries per study, ED and ES, paths relative to the JSON; labels in
    cardiacseg's convention 1 LV, 2 MYO, 3 RV), the files they name (``images/<study>_<ED|ES>.nii.gz``,
    3D float32 on the input grid with the input geometry, and ``labels/<study>_<ED|ES>.nii.gz``, uint8,
    exactly as predicted), ``pseudo_labels.csv`` (every study) and ``summary.json`` (counts per set,
    written last: it marks a finished run).

    An unfinished run (no ``summary.json``) resumes: finished segmentations are kept, the rest is
    written again. A finished run is refused without ``overwrite``; with it, its outputs are replaced and
    the segmentations are reused where the same model and settings made them (else redone).

    Args:
        inputs: study paths or folders of studies (DICOM, NIfTI, ACDC; see
            :func:`~cardiacseg.io.discover.discover_studies`).
        output_dir: the output folder (must not lie inside an input folder).
        predictor: the model.
        reference: the reference CSV (Kaggle DSB format) or already read volumes.
        reference_units: units of a reference CSV: ``"ml"`` or ``"voxels"`` (ignored for read volumes).
        id_map: ``{study: Id}`` or a ``study,Id`` CSV (:func:`read_id_map`); default: the integer in the
            study name.
        tolerances: set tolerances in percent (default 5, 10, 15: the paper's p5, p10, p15).
        overwrite: replace the outputs of a finished run.
        progress: progress on stderr (see :func:`~cardiacseg.workflows.segment.segment_batch`).
        figures: write each segmentation's montage and volume-curve PNGs (to inspect pseudo-labels).

    Returns:
        :class:`PseudoLabelResult`.

    Raises:
        ValueError: bad reference (see :func:`read_reference_volumes`), bad id map, unmatched studies,
            bad tolerances, no study found, an output folder inside an input.
        FileExistsError: a finished run in ``output_dir`` without ``overwrite``, or segmentations there
            made by another model or other settings.
        FileNotFoundError: an input, the reference or the id map does not exist.

    Example:
        >>> from cardiacseg.cli import FAST_PRESET
        >>> from cardiacseg.demo import shipped_bundle_path
        >>> model = SlicePredictor.from_bundle(shipped_bundle_path(), **FAST_PRESET)  # doctest: +SKIP
        >>> result = pseudo_label_cohort(["cohort/"], "pl", model, "train.csv")  # doctest: +SKIP
        >>> result.sets["p10"]  # doctest: +SKIP
        ['12', '57']

    """
    levels = parse_tolerances(tolerances)
    names_of_sets = [confidence_set_name(k) for k in levels]
    if isinstance(reference, Mapping):
        refs = dict(reference)
        units_set = {r.units for r in refs.values()}
        if len(units_set) != 1:
            raise ValueError(f"reference volumes must share one unit, got {sorted(units_set)}")
        units: VolumeUnits = units_set.pop()
        ref_source = "given"
    else:
        refs = read_reference_volumes(reference, reference_units)
        units, ref_source = reference_units, str(reference)
    mapping = id_map if id_map is None or isinstance(id_map, Mapping) else read_id_map(id_map)
    out = Path(output_dir)
    _refuse_output_inside_inputs(out, inputs)
    if (out / SUMMARY_FILE).exists() and not overwrite:
        raise FileExistsError(
            f"{out} holds a finished pseudo-label run ({SUMMARY_FILE}); pass overwrite=True (--overwrite) "
            "to replace it"
        )
    studies = discover_studies(inputs, exclude=[out])
    if not studies:
        raise ValueError(
            f"no study (DICOM folder, ACDC folder, NIfTI file) found in {[str(i) for i in inputs]}"
        )
    ids = match_reference_ids([s.name for s in studies], refs, mapping)

    seg_dir = out / SEGMENTATIONS_DIR
    _check_earlier_segmentations(seg_dir, studies, predictor, overwrite)
    batch = segment_batch(inputs, seg_dir, predictor, overwrite=False, progress=progress, figures=figures)
    statuses = {str(r["study"]): r for r in batch.rows}
    lost = [s.name for s in studies if s.name not in statuses]
    if lost:  # discovery is deterministic: this would be a bug, not a user error
        raise RuntimeError(f"segment_batch did not report the studies {lost}")

    comparisons = [
        _compare(s, ids[s.name], refs[ids[s.name]], units, statuses[s.name], seg_dir, levels) for s in studies
    ]
    written = _write_pairs(out, studies, comparisons, seg_dir)
    result = PseudoLabelResult(studies=comparisons, batch=batch)
    for k, name in zip(levels, names_of_sets, strict=True):
        members = [c for c in comparisons if name in c.sets]
        result.sets[name] = [c.study for c in members]
        result.datalists[name] = _write_datalist(out / f"{name}.json", name, k, members, written, units)
    result.table = _write_table(out / TABLE_FILE, comparisons, names_of_sets)
    result.summary = _summary(comparisons, levels, units, ref_source, mapping is not None, predictor)
    atomic_write_text(out / SUMMARY_FILE, json.dumps(result.summary, indent=2) + "\n", overwrite=True)
    return result


def _refuse_output_inside_inputs(out: Path, inputs: Sequence[PathLike]) -> None:
    """Refuse an output folder inside an input: its images would be found as studies of a later run."""
    target = out.resolve()
    for i in inputs:
        p = Path(i).resolve()
        if p.is_dir() and (target == p or p in target.parents):
            raise ValueError(f"the output folder {out} lies inside the input {i}; choose one outside it")


def _expected_model(predictor: SlicePredictor) -> dict[str, Any]:
    """Return the ``model`` entry ``segment`` writes into ``report.json`` for this predictor (as JSON)."""
    identity = describe_predictor(predictor, slice_range=SLICE_RANGE_RULES["all"])
    model: dict[str, Any] = json.loads(json.dumps(identity.to_dict()))
    return model


def _check_earlier_segmentations(
    seg_dir: Path, studies: Sequence[StudyInput], predictor: SlicePredictor, overwrite: bool
) -> None:
    """Reuse finished segmentations only when this model and these settings made them.

    Without ``overwrite`` another model's segmentations are refused; with it, their ``report.json`` is
    removed so that :func:`segment_batch` segments the study again.
    """
    expected = _expected_model(predictor)
    other: list[Path] = []
    for s in studies:
        report = seg_dir / s.name / "report.json"
        if report.exists() and json.loads(report.read_text()).get("model") != expected:
            other.append(report)
    if other and not overwrite:
        raise FileExistsError(
            f"{len(other)} segmentation(s) in {seg_dir} were made by another model or other settings "
            f"(e.g. {other[0]}); use another output folder or pass overwrite=True (--overwrite) to redo them"
        )
    for report in other:
        report.unlink()


def _compare(
    study: StudyInput,
    reference_id: int,
    ref: ReferenceVolumes,
    units: VolumeUnits,
    row: Mapping[str, object],
    seg_dir: Path,
    levels: Sequence[float],
) -> StudyComparison:
    """Compare one study's predicted volumes with its reference row and decide its set membership."""
    base: dict[str, Any] = {
        "study": study.name,
        "input": str(study.path),
        "reference_id": reference_id,
        "units": UNIT_LABELS[units],
        "ref_edv": ref.edv,
        "ref_esv": ref.esv,
        "qc_flags": str(row.get("qc_flags") or ""),
    }
    if row["status"] == "failed":
        return StudyComparison(status="failed", reason=str(row["error"]), **base)
    report = json.loads((seg_dir / study.name / "report.json").read_text())
    indices = report["indices"]
    ed, es = int(indices["ed_phase"]), int(indices["es_phase"])
    base.update(ed_phase=ed, es_phase=es, n_slices=int(report["shape_TZYX"][1]))
    if int(report["shape_TZYX"][0]) < 2 or ed == es:
        return StudyComparison(
            status="not comparable", reason="a single phase: no ED and ES to compare", **base
        )
    if units == "ml":
        pred_edv, pred_esv = indices["lv_edv_ml"], indices["lv_esv_ml"]
        if pred_edv is None or pred_esv is None:
            return StudyComparison(
                status="not comparable",
                reason="no voxel spacing: predicted volumes are in voxels but the reference is in mL "
                "(give the reference in voxels: --reference-units voxels)",
                **base,
            )
    else:
        voxels = {int(p["phase"]): int(p["lv_voxels"]) for p in indices["per_phase"]}
        pred_edv, pred_esv = voxels[ed], voxels[es]
    e_edv = relative_error(float(pred_edv), ref.edv)
    e_esv = relative_error(float(pred_esv), ref.esv)
    sets = confidence_sets(e_edv, e_esv, levels)
    return StudyComparison(
        status="compared",
        pred_edv=float(pred_edv),
        pred_esv=float(pred_esv),
        edv_rel_error=e_edv,
        esv_rel_error=e_esv,
        sets=sets,
        **base,
    )


def _write_pairs(
    out: Path, studies: Sequence[StudyInput], comparisons: Sequence[StudyComparison], seg_dir: Path
) -> dict[tuple[str, str], tuple[Path, Path]]:
    """Write the ED and ES image/pseudo-label pair of every study in some set; remove stale pairs.

    Returns:
        ``{(study, phase): (image, label)}``.

    """
    written: dict[tuple[str, str], tuple[Path, Path]] = {}
    by_name = {s.name: s for s in studies}
    for c in comparisons:
        if not c.sets:
            continue
        assert c.ed_phase is not None and c.es_phase is not None
        study = by_name[c.study].read()
        labels, _, _ = read_nifti_array(seg_dir / c.study / "labels.nii.gz")
        if labels.shape != study.image.shape:
            raise ValueError(
                f"{seg_dir / c.study / 'labels.nii.gz'}: shape {labels.shape} is not the study's "
                f"{study.image.shape}; segment it again (--overwrite)"
            )
        affine = study.affine if study.spacing_mm is not None else None  # unknown geometry stays unknown
        for phase, t in zip(_PHASES, (c.ed_phase, c.es_phase), strict=True):
            name = f"{c.study}_{phase}.nii.gz"
            image = write_nifti(
                out / "images" / name,
                np.asarray(study.image[t], np.float32),
                affine,
                study.spacing_mm,
                overwrite=True,  # a finished run was refused before; these are this run's (or leftovers)
            )
            label = write_nifti(
                out / "labels" / name,
                np.asarray(labels[t], np.uint8),
                affine,
                study.spacing_mm,
                overwrite=True,
            )
            written[(c.study, phase)] = (image, label)
    keep = {p for pair in written.values() for p in pair}
    for folder in ("images", "labels"):
        for p in (out / folder).glob("*_E[DS].nii.gz"):
            if p not in keep:  # a pair of an earlier run whose study is in no set now
                p.unlink()
    return written


def _write_datalist(
    path: Path,
    name: str,
    tolerance: float,
    members: Sequence[StudyComparison],
    written: Mapping[tuple[str, str], tuple[Path, Path]],
    units: VolumeUnits,
) -> Path:
    """Write one confidence set as a MONAI datalist with paths relative to the JSON."""
    entries = []
    for c in members:
        for phase in _PHASES:
            image, label = written[(c.study, phase)]
            entries.append(
                {
                    "image": image.relative_to(path.parent).as_posix(),
                    "label": label.relative_to(path.parent).as_posix(),
                    "patient": c.study,
                    "phase": phase,
                }
            )
    content = {
        "description": f"cardiacseg pseudo-labels, confidence set {name}: studies whose predicted LV EDV "
        f"and ESV both lie within +/-{tolerance:g} % of the reference ({UNIT_LABELS[units]})",
        "tolerance_percent": tolerance,
        "units": UNIT_LABELS[units],
        "label_convention": "internal",
        "labels": {"0": "background", "1": "LV", "2": "MYO", "3": "RV"},
        "numTraining": len(entries),
        "training": entries,
    }
    return atomic_write_text(path, json.dumps(content, indent=2) + "\n", overwrite=True)


def _write_table(path: Path, comparisons: Sequence[StudyComparison], set_names: Sequence[str]) -> Path:
    rows = [c.to_row(set_names) for c in comparisons]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue(), overwrite=True)


def _summary(
    comparisons: Sequence[StudyComparison],
    levels: Sequence[float],
    units: VolumeUnits,
    reference: str,
    mapped: bool,
    predictor: SlicePredictor,
) -> dict[str, Any]:
    sets: dict[str, Any] = {}
    for k in levels:
        name = confidence_set_name(k)
        members = [c for c in comparisons if name in c.sets]
        sets[name] = {
            "tolerance_percent": k,
            "studies": len(members),
            "images_3d": 2 * len(members),
            "images_2d": sum(2 * (c.n_slices or 0) for c in members),
            "datalist": f"{name}.json",
            "members": [c.study for c in members],
        }
    return {
        "n_studies": len(comparisons),
        "n_compared": sum(c.status == "compared" for c in comparisons),
        "n_not_comparable": sum(c.status == "not comparable" for c in comparisons),
        "n_failed": sum(c.status == "failed" for c in comparisons),
        "units": UNIT_LABELS[units],
        "reference": reference,
        "matching_rule": MATCHING_RULES["id_map" if mapped else "name"],
        "set_rule": "a study is in pK when |pred - ref| / ref <= K % for both LV EDV and ESV (inclusive; "
        "transfer-7t section II.A.2, confidence sets p5/p10/p15)",
        "volumes": "LV EDV and ESV of the segmentation report: ED and ES as segment chose them, all slices"
        + (", voxel counts (spacing-free relative errors)" if units == "voxels" else ", in mL"),
        "sets": sets,
        "table": TABLE_FILE,
        "model": _expected_model(predictor),
    }
