"""Segment studies end to end: read, predict every phase, write labels on the input grid, a report, pictures.

:func:`segment_study` handles one study; :func:`segment_batch` many (resumable, failure-tolerant, with
progress inside each study: reading, network batches, writing). What counts as one study is decided by
:mod:`cardiacseg.io.discover`, the same definition ``info``, ``evaluate`` and the bundles use. Every output
names the model that produced it (:class:`~cardiacseg.inferers.identity.ModelIdentity`): ``report.json``
→ ``model``, ``# key: value`` lines opening ``report.csv``, a footer line on the PNGs, and a ``model``
column in ``batch_summary.csv``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from cardiacseg.clinical.figures import plot_overlay, plot_volume_curve, warm_up_figures
from cardiacseg.clinical.html_report import FIGURES, write_html_report
from cardiacseg.clinical.indices import CardiacIndices, compute_cardiac_indices, detect_ed_es
from cardiacseg.clinical.qc import quality_flags, uncertainty_flags
from cardiacseg.clinical.reference_ranges import (
    SHIPPED_REFERENCE_RANGES,
    BsaFormula,
    ReferenceTable,
    assess_reference_ranges,
)
from cardiacseg.clinical.report import build_report, write_report
from cardiacseg.clinical.slice_range import apply_slice_range, slice_range_from_classes
from cardiacseg.config import as_bool
from cardiacseg.enums import CardiacLabel, SliceRange
from cardiacseg.inferers.identity import ModelIdentity, describe_predictor
from cardiacseg.inferers.predictor import SlicePredictor
from cardiacseg.inferers.slice_range import SliceRangeClassifier
from cardiacseg.io.discover import StudyInput, discover_studies, read_study
from cardiacseg.io.nifti import write_nifti
from cardiacseg.io.study import CineStudy, PatientInfo
from cardiacseg.provenance import bundle_metadata, file_sha256
from cardiacseg.typing import LabelArray, PathLike
from cardiacseg.utils.atomic import atomic_write_text
from cardiacseg.utils.timing import stage

__all__ = [
    "SLICE_RANGE_MODES",
    "SLICE_RANGE_RULES",
    "STUDY_OUTPUTS",
    "BatchResult",
    "StudyProgress",
    "batch_studies",
    "finished_row",
    "input_record",
    "merge_batch_parts",
    "model_csv_header",
    "prepare_output_folder",
    "same_input",
    "segment_batch",
    "segment_one",
    "segment_study",
    "slice_range_mode",
    "write_batch_summary",
]

#: Files written per study; ``report.json`` is written last and marks a finished study.
STUDY_OUTPUTS = ("labels.nii.gz", "montage.png", "volumes.png", "report.html", "report.csv", "report.json")

#: The slice-range rule used for LV volumes, in words (``report.json`` → ``settings`` and ``model``).
SLICE_RANGE_RULES = {
    "all": "all",
    "segmentation": "segmentation rule (myocardium around >= 50 % of the LV)",
    "classifier": "slice-range classifier (OAP/IN/OBS)",
}

#: Accepted values of ``slice_range`` (booleans are read as ``"segmentation"``/``"all"``).
SLICE_RANGE_MODES = tuple(SLICE_RANGE_RULES)


def slice_range_mode(slice_range: bool | str) -> str:
    """Read a ``slice_range`` setting: ``"all"``, ``"segmentation"`` or ``"classifier"`` (or a bool).

    Args:
        slice_range: the setting; ``True`` means ``"segmentation"`` and ``False`` ``"all"`` (the meaning the
            boolean had before the classifier existed).

    Returns:
        The mode.

    Raises:
        ValueError: another value.

    Example:
        >>> slice_range_mode(True), slice_range_mode("classifier")
        ('segmentation', 'classifier')

    """
    if isinstance(slice_range, bool):
        return "segmentation" if slice_range else "all"
    if slice_range not in SLICE_RANGE_MODES:
        raise ValueError(f"slice_range must be one of {SLICE_RANGE_MODES}, got {slice_range!r}")
    return slice_range


#: ``progress(stage, done, total)``: stage ``"read"``, ``"predict"`` (``done`` of ``total`` slices after
#: each network batch; counting restarts when a fallback crop redoes the study) or ``"write"``.
StudyProgress = Callable[[str, int, int], None]


def model_csv_header(model: dict[str, Any]) -> dict[str, str]:
    """Flatten a model identity to the ``# key: value`` lines that open ``report.csv``.

    Args:
        model: :meth:`ModelIdentity.to_dict` output.

    Returns:
        ``{"model", "package_version", "bundle", "weights", "networks", "settings"}`` as one-line strings
        (``weights``: each file's name and full SHA-256, ``"; "``-separated).

    Example:
        >>> from cardiacseg.inferers.identity import WeightsFile
        >>> ident = ModelIdentity("0.1.0", None, None, (WeightsFile("a.pt", "0" * 64),), ("UNet",), "none",
        ...                       "fp32", 160, None, "crop", 1.5, (), "all")
        >>> model_csv_header(ident.to_dict())["settings"].split()[:3]
        ['tta=none', 'precision=fp32', 'crop_size=160']

    """
    bundle = model.get("bundle")
    keys = ("tta", "precision", "crop_size", "crop_fallback_size", "zscore_region", "target_spacing_mm")
    settings = [f"{k}={model[k]}" for k in keys]
    settings.append("postprocessing=" + (",".join(model["postprocessing"]) or "none"))
    settings.append(f"slice_range={model['slice_range']}")
    return {
        "model": str(model["summary"]),
        "package_version": str(model["package_version"]),
        "bundle": "none" if not bundle else f"{bundle['name']} {bundle['version']}",
        "weights": "; ".join(f"{w['file']} sha256 {w['sha256']}" for w in model["weights"]) or "none",
        "networks": ", ".join(model["networks"]),
        "settings": " ".join(settings),
    }


def segment_study(
    input_path: PathLike | StudyInput | CineStudy,
    output_dir: PathLike,
    predictor: SlicePredictor,
    overwrite: bool | str = False,
    slice_range: bool | str = False,
    figures: bool = True,
    progress: StudyProgress | None = None,
    slice_classifier: SliceRangeClassifier | None = None,
    dicom_seg: bool = False,
    dicom_sr: bool = False,
    patient: PatientInfo | None = None,
    reference_ranges: ReferenceTable = SHIPPED_REFERENCE_RANGES,
    bsa_formula: BsaFormula = "mosteller",
    recorded_input: PathLike | StudyInput | None = None,
) -> dict[str, Any]:
    """Segment a DICOM folder, ACDC folder or NIfTI file; write labels, ``report.json/csv/html`` and PNGs.

    Labels are written as NIfTI on the input grid with the input affine (4D for cine input), exactly as
    predicted (after the predictor's post-processing). ED and ES are the phases with the largest and
    smallest LV volume unless the source states them. The report states the LV slice range of every
    phase (``lv_slice_range``): by the segmentation rule
    (:func:`~cardiacseg.clinical.slice_range.lv_slice_range`), or, with ``slice_range="classifier"``, from
    the slice-range classifier's OAP/IN/OBS classes (``slice_classes``). With ``slice_range`` set to
    ``"segmentation"`` or ``"classifier"``, LV volumes, EF and LV mass count only the slices inside the
    range, and ``slices_excluded`` says which slices were dropped and why (``"all"`` is the default: on the
    ACDC validation patients the segmentation rule raised the mean EF error from 3.20 to 3.41 points).
    The numbers can be recomputed from the written labels. Every output names the model
    (:func:`~cardiacseg.inferers.identity.describe_predictor`): ``report.json`` → ``model`` (package and
    bundle version, each weight file's SHA-256, networks, the settings that change numbers),
    ``report.csv``'s leading ``# key: value`` lines (:func:`model_csv_header`), and a footer line on the
    PNGs (:meth:`~cardiacseg.inferers.identity.ModelIdentity.summary`).

    Args:
        input_path: the study: a path (:func:`~cardiacseg.io.discover.read_study`), a discovered
            :class:`~cardiacseg.io.discover.StudyInput`, or an already read :class:`CineStudy`.
        output_dir: output folder (created).
        predictor: the model.
        overwrite: replace existing output files.
        slice_range: slices counted in LV/MYO volumes: ``"all"``, ``"segmentation"`` (the LV slice range
            by the segmentation rule) or ``"classifier"`` (the slices the classifier calls IN); a bool
            means ``"segmentation"``/``"all"``.
        figures: write ``montage.png`` (ED/ES overlays) and ``volumes.png`` (LV/RV volume curve).
        progress: called as ``progress(stage, done, total)`` while the study is read, predicted (after
            each network batch, counting slices) and written (:data:`StudyProgress`); ``None``: silent.
        dicom_seg: also write a DICOM Segmentation per phase (``dicom_seg/seg_t<NN>[_ED|_ES|_RVES].dcm``,
            one SEG series, :func:`~cardiacseg.io.dicom_seg.write_dicom_seg`) referencing the source images.
            With ``overwrite``, the SEG/SR files of an earlier run are removed first (they would contradict
            the new report), whether or not new ones are written.
        dicom_sr: also write the DICOM SR measurement report ``dicom_sr.dcm`` (TID 1500,
            :func:`~cardiacseg.io.dicom_sr.write_dicom_sr`); implies the SEG it references.
        slice_classifier: the slice-range classifier (needed for ``slice_range="classifier"``; with
            another mode it is not used).
        patient: height, weight, sex and age given by the user; they take precedence over those the
            source states (DICOM Patient module, ACDC ``Info.cfg``). ``report.json`` → ``body_size``,
            ``indexed`` (volumes and mass per m² of BSA) and ``reference_ranges`` (every index against
            ``reference_ranges``, :func:`~cardiacseg.clinical.reference_ranges.assess_reference_ranges`).
        reference_ranges: the adult reference ranges (default: the shipped table; a laboratory's own
            from :func:`~cardiacseg.clinical.reference_ranges.load_reference_ranges`).
        bsa_formula: ``"mosteller"`` (default) or ``"du_bois"``.
        recorded_input: the input named in ``report.json`` → ``input`` (:func:`input_record`; a batch
            recognises a finished study by it) when ``input_path`` is a study read already; default: the
            ``input_path`` given as a path or :class:`~cardiacseg.io.discover.StudyInput`.

    Returns:
        The report dictionary (with ``"outputs"``: the written paths).

    Raises:
        FileExistsError: outputs exist and ``overwrite`` is False.
        ValueError: unreadable input (the message names the file); ``slice_range="classifier"`` without
            a classifier; an unknown ``slice_range``; ``dicom_seg``/``dicom_sr`` for a study not read
            from DICOM, or without highdicom.

    Example:
        >>> segment_study("dicoms/SCD0000101", "out/SCD0000101", predictor)  # doctest: +SKIP

    """
    overwrite = as_bool(overwrite)  # "false" from a bundle command line is a string
    report_progress: StudyProgress = progress or (lambda stage, done, total: None)
    mode = slice_range_mode(slice_range)
    if mode == "classifier" and slice_classifier is None:
        raise ValueError("slice_range='classifier' needs a slice_classifier (a SliceRangeClassifier)")
    identity = describe_predictor(predictor, slice_range=_slice_range_rule(mode, slice_classifier))
    recorded = (
        recorded_input if recorded_input is not None or isinstance(input_path, CineStudy) else input_path
    )
    report_progress("read", 0, 1)
    with stage("read"):
        if isinstance(input_path, CineStudy):
            study = input_path
        elif isinstance(input_path, StudyInput):
            study = input_path.read()
        else:
            study = read_study(input_path)
    dicom = "sr" if as_bool(dicom_sr) else "seg" if as_bool(dicom_seg) else ""
    if dicom:
        _check_dicom_output(study, dicom)
    out = Path(output_dir)
    if not overwrite:
        for name in STUDY_OUTPUTS:
            if (out / name).exists():
                raise FileExistsError(f"{out / name} exists; pass overwrite=True (--overwrite) to replace it")
    if figures:
        warm_up_figures()  # matplotlib's import and first render overlap with the network (issue 21)
    entropy: dict[int, float] = {}
    labels = _predict(predictor, study, report_progress, entropy)
    classes: dict[int, list[str]] = {}
    given: dict[int, tuple[int, int] | None] | None = None
    borrowed: dict[int, int] = {}
    ed_es: tuple[int, int] | None = None
    if mode == "classifier":
        assert slice_classifier is not None
        report_progress("slice range", 0, 1)
        classes, borrowed, ed_es = _classify_ed_es(slice_classifier, study, labels)
        ranges_ed_es = {t: slice_range_from_classes([SliceRange[c] for c in cs]) for t, cs in classes.items()}
        given = {t: ranges_ed_es[borrowed.get(t, t)] for t in labels if borrowed.get(t, t) in ranges_ed_es}
        report_progress("slice range", 1, 1)
    ranged, ranges = apply_slice_range(labels, ranges=given)
    counted = ranged if mode != "all" else labels
    predicted = study.with_labels(counted)
    if ed_es is not None:  # ED/ES as chosen on all slices, before the ranges were applied
        predicted = replace(predicted, ed_phase=ed_es[0], es_phase=ed_es[1])
    try:
        indices = _indices(predicted)
    except ValueError as exc:  # e.g. no LV anywhere: say which study, and the likely cause
        raise ValueError(
            f"{study.source}: {exc} (the model found no LV: is this a short-axis cine? NIfTI axes must be "
            "(X, Y, Z, T))"
        ) from exc
    predicted = replace(predicted, ed_phase=indices.ed_phase, es_phase=indices.es_phase)
    flags = quality_flags(labels, indices, study.curation)
    study_entropy = max(entropy[t] for t in {indices.ed_phase, indices.es_phase})
    flags += uncertainty_flags(study_entropy, indices)
    model = identity.to_dict()
    settings = {  # kept for readers of earlier reports; "model" has these and more
        "ensemble_size": len(predictor.networks),
        "tta": identity.tta,
        "postprocessing": list(identity.postprocessing),
        "slice_range": identity.slice_range,
    }
    extra: dict[str, object] = {
        **({"input": input_record(recorded)} if recorded is not None else {}),
        "labels": "predicted",
        "model": model,
        "settings": settings,
        "lv_slice_range": {str(t): (None if r is None else list(r)) for t, r in ranges.items()},
        "slice_range_mode": mode,
        "slices_excluded": _excluded_slices(mode, study.n_slices, ranges, classes, borrowed),
        **({"slice_classes": {str(t): cs for t, cs in classes.items()}} if classes else {}),
        "qc_flags": [f.to_dict() for f in flags],
        "uncertainty": {
            "heart_region_entropy_nats": {str(t): round(v, 5) for t, v in sorted(entropy.items())},
            "study_entropy_nats": round(study_entropy, 5),
            "rule": "mean predictive entropy (TTA mean) in the heart region; the study's is the larger "
            "of ED and ES",
        },
    }
    body = study.patient.updated(patient) if study.patient is not None else patient
    extra.update(assess_reference_ranges(indices, body, reference_ranges, bsa_formula))
    report = build_report(predicted, indices, extra)
    # everything is computed: now write, and leave nothing half-written behind if a write fails
    report_progress("write", 0, 1)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        with stage("write"):
            _write_outputs(out, study, labels, indices, report, written, overwrite, figures, identity, dicom)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    report_progress("write", 1, 1)
    report["outputs"] = [str(p) for p in written]
    return report


def input_record(source: PathLike | StudyInput) -> dict[str, object]:
    """Describe a study's input as its report records it, to recognise the study in a later run.

    Args:
        source: the study's path, or the study as :func:`~cardiacseg.io.discover.discover_studies` found it.

    Returns:
        ``{"path": absolute path, "kind", "patient_id", "n_files", "size_bytes"}``: ``kind``, ``patient_id``
        (DICOM) and ``n_files`` (DICOM) for a found study; ``size_bytes`` for a NIfTI file.

    Example:
        >>> input_record(StudyInput("p1", "nifti", Path("/data/does-not-exist.nii.gz")))["kind"]
        'nifti'

    """
    path = source.path if isinstance(source, StudyInput) else Path(source)
    record: dict[str, object] = {"path": str(path.resolve())}
    if isinstance(source, StudyInput):
        record.update(kind=source.kind, patient_id=source.patient_id, n_files=len(source.files))
    if path.is_file():
        record["size_bytes"] = path.stat().st_size
    return record


def same_input(earlier: Mapping[str, Any], found: StudyInput) -> bool:
    """Whether a finished report (``report.json``) was made from this study (:func:`input_record`).

    The same absolute path is the same study. So is a moved or re-mounted one: the same kind, and for DICOM
    the same PatientID and number of files, for NIfTI the same file name and size. A report that records no
    input (written before this check existed) is taken as the study's, as then.

    Args:
        earlier: the finished report.
        found: the study of this run.

    Returns:
        True when the report is this study's.

    Example:
        >>> same_input({}, StudyInput("p1", "nifti", Path("p1.nii.gz")))
        True

    """
    record = earlier.get("input")
    if not isinstance(record, dict):
        return True
    now = input_record(found)
    if record.get("path") == now["path"]:
        return True
    if record.get("kind") != found.kind:
        return False
    if found.kind == "dicom":
        return bool(found.patient_id) and all(record.get(k) == now[k] for k in ("patient_id", "n_files"))
    if found.kind == "nifti":
        return Path(str(record.get("path"))).name == found.path.name and record.get("size_bytes") == now.get(
            "size_bytes"
        )
    return Path(str(record.get("path"))).name == found.path.name


def _slice_range_rule(mode: str, classifier: SliceRangeClassifier | None) -> str:
    """Describe the slice-range rule for the model identity (the classifier named by bundle and hash)."""
    rule = SLICE_RANGE_RULES[mode]
    if mode != "classifier" or classifier is None:
        return rule
    parts = []
    if classifier.bundle_dir is not None:
        meta = bundle_metadata(classifier.bundle_dir)
        parts.append(f"{meta.get('name', classifier.bundle_dir.name)} {meta.get('version', '?')}")
    if classifier.weights_file is not None:
        parts.append(f"{classifier.weights_file.name} sha256 {file_sha256(classifier.weights_file)[:12]}")
    return f"{rule}: {', '.join(parts)}" if parts else rule


def _classify_ed_es(
    classifier: SliceRangeClassifier, study: CineStudy, labels: dict[int, LabelArray]
) -> tuple[dict[int, list[str]], dict[int, int], tuple[int, int] | None]:
    """Classify the slices of ED and ES only; every other phase borrows the range of the nearer one.

    ED and ES are the source's, else the phases with the most and fewest predicted LV voxels over all
    slices (what :func:`~cardiacseg.clinical.compute_cardiac_indices` would choose). Classifying two phases
    instead of all keeps the classifier's cost small beside the segmentation (issue 16: <= 10 %); the
    reported indices use ED and ES only. Another phase takes the range of whichever of ED and ES has the
    closer LV voxel count (the volume curve).

    Returns:
        ``({phase: class names per slice} for ED and ES, {other phase: ED or ES}, (ED, ES) or None)``.

    """
    lv = {t: int((np.asarray(lab) == CardiacLabel.LV).sum()) for t, lab in labels.items()}
    if study.n_phases == 1:
        keys, ed_es = [0], None
    else:
        if study.ed_phase is not None and study.es_phase is not None:
            ed, es = study.ed_phase, study.es_phase
        else:
            try:
                ed, es = detect_ed_es(labels)
            except ValueError:  # no LV at all: no range to decide (the indices report the failure)
                return {}, {}, None
        keys, ed_es = sorted({ed, es}), (ed, es)
    predicted = classifier.predict_study(study, keys)
    classes = {t: [SliceRange(int(c)).name for c in predicted[t].classes] for t in keys}
    borrowed = {t: min(keys, key=lambda k: abs(lv[t] - lv[k])) for t in labels if t not in classes}
    return classes, borrowed, ed_es


def _excluded_slices(
    mode: str,
    n_slices: int,
    ranges: dict[int, tuple[int, int] | None],
    classes: dict[int, list[str]],
    borrowed: dict[int, int] | None = None,
) -> dict[str, list[dict[str, object]]]:
    """Per phase, the slices left out of the LV volumes and why (empty lists with ``mode="all"``)."""
    borrowed = borrowed or {}
    out: dict[str, list[dict[str, object]]] = {}
    for t, rng in ranges.items():
        dropped: list[dict[str, object]] = []
        if mode != "all":
            for z in range(n_slices):
                if rng is not None and rng[0] <= z <= rng[1]:
                    continue
                if mode == "classifier":
                    ref = borrowed.get(t, t)
                    name = classes[ref][z]
                    reason = f"classifier: {name}, {SliceRange[name].description}"
                    if ref != t:
                        reason += f" (range of phase {ref}, the nearer of ED and ES in LV volume)"
                else:
                    reason = "segmentation rule: outside the LV blood pool ringed by >= 50 % myocardium"
                dropped.append({"slice": z, "reason": reason})
        out[str(t)] = dropped
    return out


def _predict(
    predictor: SlicePredictor,
    study: CineStudy,
    progress: StudyProgress,
    uncertainty: dict[int, float] | None = None,
) -> dict[int, LabelArray]:
    """``predictor.predict(study)``, forwarding its per-batch progress as the ``"predict"`` stage."""
    before = predictor.progress
    predictor.progress = lambda done, total: progress("predict", done, total)
    try:
        return predictor.predict(study, uncertainty=uncertainty)
    finally:
        predictor.progress = before


def _write_outputs(
    out: Path,
    study: CineStudy,
    labels: dict[int, LabelArray],
    indices: CardiacIndices,
    report: dict[str, Any],
    written: list[Path],
    overwrite: bool,
    figures: bool,
    identity: ModelIdentity,
    dicom: str = "",
) -> None:
    """Write the study's outputs, appending each written path to ``written``; ``report.json`` last."""
    footer = identity.summary()
    stack = np.stack([labels[t] for t in range(study.n_phases)])
    written.append(
        write_nifti(
            out / "labels.nii.gz",
            stack if study.n_phases > 1 else stack[0],
            study.affine if study.spacing_mm is not None else None,  # unknown geometry stays unknown
            study.spacing_mm,
            overwrite=overwrite,
        )
    )
    if figures:
        warm_up_figures().join()  # never draw while the warm-up thread uses matplotlib
        shown = study.with_labels(labels)
        shown = replace(shown, ed_phase=indices.ed_phase, es_phase=indices.es_phase)
        written.append(
            plot_overlay(
                shown,
                out / "montage.png",
                slices=list(range(study.n_slices)),  # every slice: basal/apical errors are not hidden
                title=f"{out.name}: model labels",
                overwrite=overwrite,
                footer=footer,
                rv_left=True,
                base_to_apex=True,
            )
        )
        if study.n_phases > 1:
            written.append(
                plot_volume_curve(
                    indices,
                    out / "volumes.png",
                    study.phase_times_ms,
                    title=out.name,
                    overwrite=overwrite,
                    footer=footer,
                )
            )
    if overwrite:  # outputs of an earlier run would contradict this report: never leave them behind
        for name in FIGURES.values():
            if out / name not in written:
                (out / name).unlink(missing_ok=True)
        _remove_earlier_dicom_outputs(out)
    if dicom:
        report["dicom_outputs"] = _write_dicom_outputs(
            out, study, labels, indices, identity, dicom, overwrite, written
        )
    # the page a person reads: indices, ranges, the PNGs above, QC and curation (before report.json)
    written.append(write_html_report(out, report, overwrite=overwrite))
    written += write_report(out, report, overwrite=overwrite, csv_header=model_csv_header(identity.to_dict()))


def _remove_earlier_dicom_outputs(out: Path) -> None:
    """Delete the SEG/SR files an earlier run wrote in this study folder (only cardiacseg's own names)."""
    (out / "dicom_sr.dcm").unlink(missing_ok=True)
    folder = out / "dicom_seg"
    if folder.is_dir():
        for f in folder.glob("seg_t*.dcm"):
            f.unlink()
        with contextlib.suppress(OSError):  # left in place when the user keeps other files there
            folder.rmdir()


def _check_dicom_output(study: CineStudy, kind: str) -> None:
    """Refuse DICOM SEG/SR output before any work when it cannot be written."""
    from cardiacseg.io.dicom_seg import require_highdicom

    option = "--dicom-sr" if kind == "sr" else "--dicom-seg"
    if study.source_files is None:
        raise ValueError(
            f"{study.source}: {option} needs a study read from DICOM images (a SEG/SR references them); "
            "this one was read from NIfTI/HDF5"
        )
    require_highdicom()


def _algorithm(identity: ModelIdentity) -> tuple[str, str]:
    """Algorithm name and version for DICOM: package, bundle and the first weights' SHA-256 prefix."""
    name = f"cardiacseg {identity.bundle_name or 'model'}"
    sha = identity.weights[0].sha256[:12] if identity.weights else "unknown"
    version = f"{identity.package_version} bundle {identity.bundle_version or '-'} weights {sha}"
    return name, version


def _write_dicom_outputs(
    out: Path,
    study: CineStudy,
    labels: dict[int, LabelArray],
    indices: CardiacIndices,
    identity: ModelIdentity,
    kind: str,
    overwrite: bool,
    written: list[Path],
) -> dict[str, Any]:
    """Write the SEG of every phase (and the SR); return what ``report.json`` records of them."""
    from cardiacseg.io.dicom_seg import write_dicom_seg
    from cardiacseg.io.dicom_sr import SR_CONCEPTS, write_dicom_sr

    name, version = _algorithm(identity)
    roles: dict[int, str] = {}
    if study.n_phases > 1:  # file names: _ED, _ES, and _RVES where the RV's own end-systole differs
        roles = {indices.rv_es_phase: "RVES", indices.es_phase: "ES", indices.ed_phase: "ED"}
    seg = write_dicom_seg(study, labels, out / "dicom_seg", name, version, roles=roles, overwrite=overwrite)
    written += list(seg.files.values())
    record: dict[str, Any] = {
        "seg_series_instance_uid": seg.series_instance_uid,
        "seg_files": {str(t): str(f.relative_to(out)) for t, f in seg.files.items()},
        "notes": list(seg.notes),
    }
    if kind == "sr" and study.n_phases > 1:
        values = {key: getattr(indices, key) for key in SR_CONCEPTS}
        sr = write_dicom_sr(
            study,
            values,
            indices.ed_phase,
            indices.es_phase,
            seg,
            out / "dicom_sr.dcm",
            name,
            version,
            overwrite,
            rv_es_phase=indices.rv_es_phase,
        )
        written.append(sr)
        record["sr_file"] = str(sr.relative_to(out))
    elif kind == "sr":
        record["notes"].append("no DICOM SR: a single phase has no EDV/ESV/EF")
    return record


#: Indices that need ED and ES; cleared for single-phase input.
_CYCLE_INDICES: tuple[str, ...] = (
    "lv_edv_ml",
    "lv_esv_ml",
    "lv_sv_ml",
    "lv_ef_percent",
    "rv_edv_ml",
    "rv_esv_ml",
    "rv_sv_ml",
    "rv_ef_percent",
)


def _indices(study: CineStudy) -> CardiacIndices:
    """Compute indices; a single phase gives volumes and mass only, a single slice gives none."""
    if study.n_phases > 1:
        idx = compute_cardiac_indices(study)
        cleared: tuple[str, ...] = ()
    else:
        idx = compute_cardiac_indices(study.labels, study.spacing_mm, 0, 0)
        cleared, why = (
            _CYCLE_INDICES,
            "single-phase input: ED and ES unknown (see per_phase for this phase's volumes)",
        )
    if study.n_slices == 1:  # one slice is no short-axis stack: its "volume" would be one slab
        cleared, why = (
            (*_CYCLE_INDICES, "lv_mass_g"),
            "single slice position: volumes, mass and EF need a stack",
        )
    if not cleared:
        return idx
    if study.n_slices == 1:
        idx = replace(idx, per_phase=())
    return replace(
        idx,
        unavailable={**idx.unavailable, **dict.fromkeys(cleared, why)},
        **dict.fromkeys(cleared, None),  # type: ignore[arg-type]
    )


@dataclass
class BatchResult:
    """Outcome of :func:`segment_batch`.

    Attributes:
        done: studies segmented in this run.
        skipped: studies whose outputs were already complete (resumed batch).
        failed: ``{name: error message}``.
        rows: one summary row per study (also written to ``batch_summary.csv``).

    Example:
        >>> BatchResult().ok
        True

    """

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    rows: list[dict[str, object]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no study failed."""
        return not self.failed


def _warn_if_body_size_differs(name: str, report: dict[str, Any], patient: PatientInfo | None) -> None:
    """Say so when a finished study is skipped although other body-size values were asked for."""
    if patient is None or not patient.known:
        return
    earlier = report.get("body_size") or {}
    changed = [
        k
        for k in ("height_cm", "weight_kg", "sex", "age_years")
        if getattr(patient, k) is not None and getattr(patient, k) != earlier.get(k)
    ]
    if changed:
        warnings.warn(
            f"{name}: finished earlier with other {', '.join(changed)}; its report keeps the earlier values "
            "(pass --overwrite to redo it)",
            stacklevel=3,
        )


#: The model identity's entries that change a study's numbers (``report.json`` → ``model``).
_NUMBER_SETTINGS = (
    "weights",
    "tta",
    "precision",
    "crop_size",
    "crop_fallback_size",
    "zscore_region",
    "target_spacing_mm",
    "postprocessing",
    "slice_range",
)


def _warn_if_model_differs(name: str, earlier: Mapping[str, Any], model: Mapping[str, Any]) -> None:
    """Say so when a finished study is skipped although the model or its settings are not its report's."""
    changed = [k for k in _NUMBER_SETTINGS if k in earlier and earlier[k] != model.get(k)]
    if changed:
        warnings.warn(
            f"{name}: finished earlier with other {', '.join(changed)}; its results are kept "
            "(pass --overwrite to redo it with the current ones)",
            stacklevel=3,
        )


def _summary_row(
    name: str, path: Path, status: str, report: dict[str, Any] | None, error: str = ""
) -> dict[str, object]:
    row: dict[str, object] = {"study": name, "input": str(path), "status": status, "error": error}
    keys: tuple[str, ...] = ("ed_phase", "es_phase", "lv_edv_ml", "lv_esv_ml", "lv_sv_ml", "lv_ef_percent")
    keys = (*keys, "lv_mass_g", "rv_edv_ml", "rv_esv_ml", "rv_ef_percent")
    indices = (report or {}).get("indices") or {}
    for k in keys:
        row[k] = indices.get(k)
    flags = (report or {}).get("qc_flags") or []
    row["qc_flags"] = ";".join(sorted({str(f["code"]) for f in flags}))
    body = (report or {}).get("body_size") or {}
    row["bsa_m2"] = body.get("bsa_m2")
    ranges = ((report or {}).get("reference_ranges") or {}).get("rows") or []
    row["outside_reference_range"] = ";".join(
        f"{r['key']}:{r['status']}" for r in ranges if r.get("status") in ("below", "above")
    )
    # the model of each study's own report: a resumed batch may hold studies of an earlier model
    model = (report or {}).get("model")
    row["model"] = model.get("summary", "") if isinstance(model, dict) else str(model or "")
    return row


class _BatchProgress:
    """Progress of a batch on a stream (stderr): bars on a terminal, stage lines otherwise, or nothing.

    On a terminal: a bar over the studies and, below it, one over the current study (reading, network
    batches in slices, writing); log records and warnings are printed above the bars
    (``tqdm.contrib.logging.logging_redirect_tqdm`` and ``tqdm.write``), never through them. Elsewhere (a
    log file, a pipe): one line per stage, ``segment [i/n] name: predicting 240 slices``.
    """

    def __init__(self, n_studies: int, enabled: bool, stream: IO[str] | None = None) -> None:
        self.n = n_studies
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.bars = enabled and callable(isatty) and bool(isatty())
        self.i = 0
        self.name = ""
        self.t0 = 0.0
        self._stage = ""
        self._last = 0
        self._outer: Any = None
        self._inner: Any = None

    @contextlib.contextmanager
    def active(self) -> Iterator[_BatchProgress]:
        """Show the bars (terminal) with logging and warnings routed above them; close them after."""
        if not self.bars:
            yield self
            return
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        show = warnings.showwarning

        def show_above_bars(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: IO[str] | None = None,
            line: str | None = None,
        ) -> None:
            text = warnings.formatwarning(message, category, filename, lineno, line)
            tqdm.write(text.rstrip("\n"), file=self.stream)

        self._outer = tqdm(total=self.n, desc="segment", unit="study", file=self.stream, position=0)
        warnings.showwarning = show_above_bars
        try:
            with logging_redirect_tqdm():
                yield self
        finally:
            warnings.showwarning = show
            self._close_inner()
            self._outer.close()

    def _line(self, text: str) -> None:
        print(f"segment [{self.i}/{self.n}] {self.name}: {text}", file=self.stream, flush=True)

    def _close_inner(self) -> None:
        if self._inner is not None:
            self._inner.close()
            self._inner = None

    def start(self, name: str) -> None:
        """Begin the next study."""
        self.i += 1
        self.name, self.t0, self._stage, self._last = name, time.perf_counter(), "", 0
        if self.bars:
            from tqdm import tqdm

            self._outer.set_postfix_str(name)
            self._inner = tqdm(
                total=1, desc=f"{name}: read", unit="slice", leave=False, file=self.stream, position=1
            )

    def __call__(self, stage: str, done: int, total: int) -> None:
        """:data:`StudyProgress` of the current study."""
        if not self.enabled:
            return
        new_pass = stage != self._stage or done < self._last
        if self.bars:
            bar = self._inner
            if bar is not None:
                if new_pass:
                    bar.reset(total=total if stage == "predict" else 1)
                    bar.set_description_str(f"{self.name}: {stage}")
                if stage == "predict":
                    bar.update(done - bar.n)
        elif new_pass:
            what = {"read": "reading", "write": "writing"}
            again = " (again, larger crop)" if stage == self._stage == "predict" else ""
            self._line(f"predicting {total} slices{again}" if stage == "predict" else what.get(stage, stage))
        self._stage, self._last = stage, done

    def finish(self, status: str) -> None:
        """End the current study (``status``: ``done``, ``skipped ...`` or ``failed: ...``)."""
        if not self.enabled:
            return
        if self.bars:
            self._close_inner()
            self._outer.update(1)
            if status.startswith("failed"):
                from tqdm import tqdm

                tqdm.write(f"segment {self.name}: {status}", file=self.stream)
        else:
            secs = f" ({time.perf_counter() - self.t0:.1f} s)" if status == "done" else ""
            self._line(f"{status}{secs}")


def batch_studies(
    inputs: Sequence[PathLike],
    output_dir: PathLike,
    part: tuple[int, int] | None = None,
    patients: Mapping[str, PatientInfo] | None = None,
    one_patient: PatientInfo | None = None,
) -> tuple[list[StudyInput], str]:
    """Find the studies of a batch (or of its part) and the stem of its summary files; check the batch.

    Args:
        inputs: study paths or folders of studies.
        output_dir: output root (never searched for studies).
        part: ``(k, n)`` as in :func:`segment_batch`, or None.
        patients: body size per study name (names not in the batch are warned about).
        one_patient: body size given for one study (refused for several).

    Returns:
        ``(studies, summary_name)``: the studies in stable sorted order and ``"batch_summary"`` (or
        ``"batch_summary_part<k>of<n>"``).

    Raises:
        FileNotFoundError: an input path does not exist.
        ValueError: no study found, an invalid or empty part, or ``one_patient`` for several studies.

    Example:
        >>> studies, summary_name = batch_studies(["studies/"], "out")  # doctest: +SKIP

    """
    studies = discover_studies(inputs, exclude=[output_dir])
    if not studies:
        raise ValueError(
            f"no study (DICOM folder, ACDC folder, NIfTI file) found in {[str(i) for i in inputs]}"
        )
    summary_name = "batch_summary"
    if part is not None:
        k, n = part
        if not (n >= 1 and 1 <= k <= n):
            raise ValueError(f"part must be K/N with 1 <= K <= N, got {k}/{n}")
        studies = studies[k - 1 :: n]
        summary_name = f"batch_summary_part{k}of{n}"
        if not studies:
            raise ValueError(f"part {k}/{n} holds no study (only {k - 1} studies were found)")
    if one_patient is not None and len(studies) > 1:
        raise ValueError(
            f"body size given for one study, but the inputs hold {len(studies)} studies "
            f"({', '.join(s.name for s in studies[:3])}{' ...' if len(studies) > 3 else ''}): use a patient "
            "table (--patient-info) for several"
        )
    unmatched = sorted(set(patients or {}) - {s.name for s in studies})
    if unmatched:
        warnings.warn(
            f"the patient table names {len(unmatched)} study(ies) not in this batch: {unmatched[:5]}"
            f"{' ...' if len(unmatched) > 5 else ''} (names must be the study names segment uses, e.g. "
            "the output folder names)",
            stacklevel=3,
        )
    return studies, summary_name


def segment_batch(
    inputs: Sequence[PathLike],
    output_dir: PathLike,
    predictor: SlicePredictor,
    overwrite: bool = False,
    progress: bool = True,
    patients: Mapping[str, PatientInfo] | None = None,
    part: tuple[int, int] | None = None,
    prefetch: bool = True,
    **kwargs: Any,
) -> BatchResult:
    """Segment many studies into ``output_dir/<study name>/``; finished studies are skipped.

    A study counts as finished when its ``report.json`` exists (it is written last). A study that fails
    (unreadable, corrupt, ...) is recorded with its error and the batch goes on. ``batch_summary.csv`` and
    ``batch_summary.json`` list every study with its status, main indices and QC flags.

    Args:
        inputs: study paths or folders of studies (see :func:`~cardiacseg.io.discover.discover_studies`).
        output_dir: output root.
        predictor: the model.
        overwrite: re-segment finished studies, replacing their outputs.
        progress: show progress on stderr, inside each study too (reading, network batches, writing):
            tqdm bars on a terminal (log records and warnings printed above them), one line per stage
            otherwise (a log file or a pipe).
        patients: body size per study name (e.g. from
            :func:`~cardiacseg.io.patients.read_patient_table`), passed as each study's ``patient``.
        part: ``(k, n)``: segment only part ``k`` of ``n`` (1-based) of the studies found — the studies in
            their stable sorted order, every ``n``-th from the ``k``-th — for schedulers without Ray
            (Slurm arrays, several machines on one output folder). The part writes
            ``batch_summary_part<k>of<n>.csv/json`` instead of ``batch_summary.csv/json``, so parts never
            overwrite each other's summaries; :func:`merge_batch_parts` joins them.
        prefetch: read the next unfinished study in a background thread while the current one is
            predicted and written (issue 21: overlap I/O with compute; at most two studies in memory).
            ``False`` reads each study when its turn comes.
        kwargs: passed to :func:`segment_study` (``slice_range``, ``figures``, ``slice_classifier``, ...).

    Returns:
        :class:`BatchResult`.

    Raises:
        FileNotFoundError: an input path does not exist.
        ValueError: no study found in the inputs, or a ``patient`` (one study's body size) for several.

    Example:
        >>> result = segment_batch(["studies/"], "out", predictor)  # doctest: +SKIP

    """
    one_patient = kwargs.pop("patient", None)  # segment_study's own option: describes one study
    studies, summary_name = batch_studies(inputs, output_dir, part, patients, one_patient)
    root = prepare_output_folder(output_dir)
    result = BatchResult()
    shown = _BatchProgress(len(studies), progress)
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cardiacseg-read") if prefetch else None
    to_read = [i for i, f in enumerate(studies) if overwrite or not _report_file(root, f).exists()]
    reads: dict[int, Future[CineStudy]] = {}

    def read_ahead(after: int) -> None:
        """Start reading the first unfinished study after position ``after`` (one read in flight)."""
        nxt = next((i for i in to_read if i > after), None)
        if reader is not None and nxt is not None and nxt not in reads:
            reads[nxt] = reader.submit(studies[nxt].read)

    try:
        with shown.active():
            read_ahead(-1)
            for i, found in enumerate(studies):
                shown.start(found.name)
                read_ahead(i)  # the next study is read while this one is predicted and written
                status, row = segment_one(
                    found,
                    root,
                    predictor,
                    overwrite,
                    (patients or {}).get(found.name, one_patient),
                    shown,
                    prefetched=reads.pop(i, None),
                    **kwargs,
                )
                result.rows.append(row)
                if status == "done":
                    result.done.append(found.name)
                    shown.finish("done")
                elif status == "skipped":
                    result.skipped.append(found.name)
                    shown.finish("skipped (finished earlier)")
                else:
                    result.failed[found.name] = str(row["error"])
                    shown.finish(f"failed: {row['error']}")
    except KeyboardInterrupt:  # Ctrl-C (or SIGTERM, which the CLI turns into it): keep what is finished
        if result.rows:
            write_batch_summary(root, summary_name, result.rows, keep_earlier=True)
        raise
    finally:
        if reader is not None:  # an interrupted batch: drop reads not started, wait for the one running
            reader.shutdown(wait=True, cancel_futures=True)
    write_batch_summary(root, summary_name, result.rows, keep_earlier=True)
    return result


def prepare_output_folder(output_dir: PathLike) -> Path:
    """Create a batch's output folder and check that it can be written, before any study is segmented.

    Args:
        output_dir: the folder.

    Returns:
        The folder.

    Raises:
        NotADirectoryError: the path is a file.
        PermissionError: the folder cannot be created or written (named, with the system's reason).

    Example:
        >>> prepare_output_folder("/tmp/cardiacseg-out-example").is_dir()
        True

    """
    import tempfile

    root = Path(output_dir)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root}: the output folder is a file; name a folder (it is created)")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except PermissionError as exc:
        raise PermissionError(f"{root}: the output folder cannot be written ({exc.strerror})") from None
    return root


def segment_one(
    found: StudyInput,
    root: Path,
    predictor: SlicePredictor,
    overwrite: bool,
    patient: PatientInfo | None,
    progress: StudyProgress | None = None,
    prefetched: Future[CineStudy] | None = None,
    **kwargs: Any,
) -> tuple[str, dict[str, object]]:
    """Segment one study of a batch into ``root/<name>/`` the way :func:`segment_batch` does.

    Shared by :func:`segment_batch` and the Ray cohort runner (:mod:`cardiacseg.workflows.cohort`), so a
    study's outputs and summary row are the same whichever ran it.

    Args:
        found: the study (from :func:`~cardiacseg.io.discover.discover_studies`).
        root: the batch's output root.
        predictor: the model.
        overwrite: re-segment a finished study (one whose ``report.json`` exists).
        patient: its body size, or None.
        progress: :data:`StudyProgress` callback, or None.
        prefetched: the study being read already (:func:`segment_batch`'s read-ahead); its read error, if
            any, is recorded as this study's failure exactly as if it were read here.
        kwargs: passed to :func:`segment_study`.

    Returns:
        ``(status, row)``: status ``"done"``, ``"skipped"`` (finished earlier) or ``"failed"`` (the error,
        also in ``row["error"]``, and its traceback in ``root/errors/<name>.txt``); the summary row.

    Example:
        >>> status, row = segment_one(found, Path("out"), predictor, False, None)  # doctest: +SKIP

    """
    name, path = found.name, found.path
    out = root / name

    def model() -> dict[str, Any]:  # the settings now, compared with a finished report's
        mode = slice_range_mode(kwargs.get("slice_range", False))
        return describe_predictor(
            predictor, _slice_range_rule(mode, kwargs.get("slice_classifier"))
        ).to_dict()

    earlier = None if overwrite else finished_row(found, root, patient, model)
    if earlier is not None:
        return str(earlier["status"]), earlier
    # this attempt replaces any earlier result: if it fails, the study must not look finished
    _report_file(root, found).unlink(missing_ok=True)
    try:
        source: StudyInput | CineStudy = found
        if prefetched is not None:
            with stage("read"):  # waiting for the read-ahead, if it has not finished yet
                source = prefetched.result()
        # outputs of an interrupted earlier attempt (no report.json) are incomplete: replace them
        report = segment_study(
            source,
            out,
            predictor,
            overwrite=True,
            progress=progress,
            patient=patient,
            recorded_input=found,
            **kwargs,
        )
    except Exception as exc:
        msg = f"{type(exc).__name__}: {exc}"
        _write_error(root, found, traceback.format_exc())
        return "failed", _summary_row(name, path, "failed", None, msg)
    _error_file(root, found).unlink(missing_ok=True)  # an earlier failure's record is obsolete
    return "done", _summary_row(name, path, "done", report)


def _error_file(root: Path, found: StudyInput) -> Path:
    """Return a batch study's ``errors/<name>.txt``."""
    return root / "errors" / f"{found.name}.txt"


def _write_error(root: Path, found: StudyInput, text: str) -> None:
    """Write ``root/errors/<name>.txt``: the study's input path and what went wrong."""
    _error_file(root, found).parent.mkdir(exist_ok=True)
    atomic_write_text(_error_file(root, found), f"{found.path}\n{text}", overwrite=True)


def _report_file(root: Path, found: StudyInput) -> Path:
    """Return a batch study's ``report.json``: written last, so its presence marks the study finished."""
    return root / found.name / "report.json"


def finished_row(
    found: StudyInput,
    root: Path,
    patient: PatientInfo | None = None,
    model: Callable[[], Mapping[str, Any]] | None = None,
) -> dict[str, object] | None:
    """Return the ``skipped`` row of a study finished earlier (its ``report.json`` exists), else None.

    A finished report made from another input (:func:`same_input`: two studies of one name, e.g. two sites'
    ``patient001`` into one output folder) is never taken as this study's: the row is ``failed`` with an
    error that names both inputs, and the earlier outputs are left as they are.

    Args:
        found: the study.
        root: the batch's output root.
        patient: the body size asked for now (a warning says so when the finished report used other values).
        model: returns the model identity now (:meth:`~cardiacseg.inferers.identity.ModelIdentity.to_dict`;
            called only when the finished report names its model); a warning names the settings that change
            numbers (weights, TTA, post-processing, crop, precision,
            slice range ...) where the finished report's differ, since the study keeps its earlier results.

    Returns:
        The summary row from the earlier report (status ``skipped``, or ``failed`` for another input's
        report), or None when the study is not finished.

    Example:
        >>> finished_row(found, Path("out")) is None  # doctest: +SKIP
        True

    """
    report_file = _report_file(root, found)
    if not report_file.exists():
        return None
    earlier = json.loads(report_file.read_text())
    if not same_input(earlier, found):
        made_from = earlier["input"].get("path")
        msg = (
            f"{report_file.parent} holds the results of another input ({made_from}), not of {found.path}: "
            "segment into another output folder, or pass --overwrite to replace them"
        )
        _write_error(root, found, msg + "\n")
        return _summary_row(found.name, found.path, "failed", None, msg)
    _warn_if_body_size_differs(found.name, earlier, patient)
    if model is not None and isinstance(earlier.get("model"), dict):
        _warn_if_model_differs(found.name, earlier["model"], model())
    return _summary_row(found.name, found.path, "skipped", earlier)


def write_batch_summary(
    root: Path, summary_name: str, rows: Sequence[Mapping[str, object]], keep_earlier: bool = False
) -> None:
    """Write ``root/<summary_name>.csv`` and ``.json`` (one row per study, atomically).

    Args:
        root: the batch's output root.
        summary_name: file stem, e.g. ``batch_summary``.
        rows: summary rows (:func:`segment_one`), all with the same keys.
        keep_earlier: keep the rows of the summary already there for studies not in ``rows`` (after
            them, as they were): a run over some of a folder's studies, or an interrupted one, does not drop
            the others from its summary.

    Example:
        >>> write_batch_summary(Path("out"), "batch_summary", rows)  # doctest: +SKIP

    """
    rows = list(rows)
    if keep_earlier:
        named = {row["study"] for row in rows}
        rows += [r for r in _earlier_rows(root / f"{summary_name}.json") if r.get("study") not in named]
    fields = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(root / f"{summary_name}.csv", buf.getvalue(), overwrite=True)
    atomic_write_text(root / f"{summary_name}.json", json.dumps(list(rows), indent=2) + "\n", overwrite=True)


def _earlier_rows(path: Path) -> list[dict[str, object]]:
    """Rows of an existing ``batch_summary.json`` ([] when there is none or it cannot be read)."""
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def merge_batch_parts(output_dir: PathLike, overwrite: bool = False) -> list[dict[str, object]]:
    """Join the summaries of ``segment --part K/N`` runs into ``batch_summary.csv/json``.

    Args:
        output_dir: the output folder the parts wrote to.
        overwrite: replace an existing ``batch_summary.csv/json``.

    Returns:
        The joined rows, sorted by study name.

    Raises:
        FileNotFoundError: no part summary in the folder.
        ValueError: parts of different ``N``, a missing part (named), or a study in two parts.
        FileExistsError: ``batch_summary.csv`` exists and ``overwrite`` is False.

    Example:
        >>> rows = merge_batch_parts("out")  # doctest: +SKIP

    """
    import re

    root = Path(output_dir)
    found: dict[int, Path] = {}
    totals: set[int] = set()
    for f in sorted(root.glob("batch_summary_part*of*.json")):
        m = re.fullmatch(r"batch_summary_part(\d+)of(\d+)\.json", f.name)
        if m:
            found[int(m.group(1))] = f
            totals.add(int(m.group(2)))
    if not found:
        raise FileNotFoundError(f"{root}: no batch_summary_part<K>of<N>.json (run segment --part K/N first)")
    if len(totals) != 1:
        raise ValueError(f"{root}: part summaries of different N {sorted(totals)}: one split per folder")
    (n,) = totals
    missing = sorted(set(range(1, n + 1)) - set(found))
    if missing:
        raise ValueError(f"{root}: part(s) {missing} of {n} have no summary yet")
    rows: list[dict[str, object]] = []
    seen: dict[str, int] = {}
    for k in sorted(found):
        for row in json.loads(found[k].read_text()):
            name = str(row["study"])
            if name in seen:
                raise ValueError(f"{root}: study {name} is in parts {seen[name]} and {k}")
            seen[name] = k
            rows.append(row)
    rows.sort(key=lambda r: str(r["study"]))
    for target in (root / "batch_summary.csv", root / "batch_summary.json"):
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
    write_batch_summary(root, "batch_summary", rows)
    return rows
