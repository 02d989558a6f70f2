"""Evaluation of a predictor on labelled studies: 3D Dice per structure and phase, EF error, per patient."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cardiacseg.clinical.indices import compute_cardiac_indices
from cardiacseg.clinical.slice_range import apply_slice_range
from cardiacseg.enums import CardiacLabel
from cardiacseg.inferers.predictor import SlicePredictor
from cardiacseg.io.ssl4mis import read_ssl4mis_study
from cardiacseg.io.study import CineStudy
from cardiacseg.io.sunnybrook import read_sunnybrook_study
from cardiacseg.metrics import dice_score
from cardiacseg.postprocess import STEPS, PostprocessingChoice, select_postprocessing
from cardiacseg.typing import LabelArray, PathLike

__all__ = [
    "choose_postprocessing",
    "compare_study",
    "evaluate_ssl4mis",
    "evaluate_study",
    "evaluate_sunnybrook",
    "summarise",
]

_NAMES = {CardiacLabel.LV: "lv", CardiacLabel.MYO: "myo", CardiacLabel.RV: "rv"}


def evaluate_study(
    predictor: SlicePredictor, study: CineStudy, restrict_to_annotated: bool = False
) -> dict[str, Any]:
    """Segment a labelled study's ED and ES and compare with its labels.

    Args:
        predictor: the model.
        study: a study with labels and ``ed_phase``/``es_phase``.
        restrict_to_annotated: compare only slices carrying annotations (e.g. the contoured Sunnybrook
            slices) for Dice and EF.

    Returns:
        ``{"dice_{lv,myo,rv}_{ed,es}", "ef_pred", "ef_ref", "ef_error", ...}``; Dice is over the 3D stack;
        ``ef_pred_range``/``ef_error_range`` count the predicted LV only inside its slice range
        (:func:`~cardiacseg.clinical.slice_range.apply_slice_range`, what ``cardiacseg segment`` reports).

    Raises:
        ValueError: ED or ES unknown.

    """
    if study.ed_phase is None or study.es_phase is None:
        raise ValueError(f"{study.source}: ED/ES unknown")
    return compare_study(
        study, predictor.predict(study, [study.ed_phase, study.es_phase]), restrict_to_annotated
    )


def compare_study(
    study: CineStudy, pred: dict[int, LabelArray], restrict_to_annotated: bool = False
) -> dict[str, Any]:
    """Compare predicted ED/ES label maps with a labelled study's (the metrics of :func:`evaluate_study`).

    Args:
        study: a study with labels and ``ed_phase``/``es_phase``.
        pred: predicted ``(Z, Y, X)`` labels of at least the ED and ES phases.
        restrict_to_annotated: compare only slices carrying annotations.

    Returns:
        The row described in :func:`evaluate_study`.

    Raises:
        ValueError: ED or ES unknown.

    Example:
        >>> row = compare_study(study, predictor.predict(study))  # doctest: +SKIP

    """
    if study.ed_phase is None or study.es_phase is None:
        raise ValueError(f"{study.source}: ED/ES unknown")
    phases = [study.ed_phase, study.es_phase]
    row: dict[str, Any] = {"source": study.source}
    ref_labels, pred_labels = {}, {}
    for t, tag in zip(phases, ("ed", "es"), strict=True):
        ref = study.labels[t]
        p = pred[t]
        if restrict_to_annotated and t in study.annotated_slices:
            keep = np.zeros(study.n_slices, bool)
            keep[list(study.annotated_slices[t])] = True
            ref = np.where(keep[:, None, None], ref, 0).astype(np.uint8)
            p = np.where(keep[:, None, None], p, 0).astype(np.uint8)
        ref_labels[t], pred_labels[t] = ref, p
        for value, name in _NAMES.items():
            if (ref == value).any():
                row[f"dice_{name}_{tag}"] = dice_score(p == value, ref == value)
    ref_idx = compute_cardiac_indices(ref_labels, study.spacing_mm, study.ed_phase, study.es_phase)
    pred_idx = compute_cardiac_indices(pred_labels, study.spacing_mm, study.ed_phase, study.es_phase)
    ranged = compute_cardiac_indices(
        apply_slice_range(pred_labels)[0], study.spacing_mm, study.ed_phase, study.es_phase
    )
    row.update(
        {
            "ef_ref": ref_idx.lv_ef_percent,
            "ef_pred": pred_idx.lv_ef_percent,
            "edv_ref": ref_idx.lv_edv_ml,
            "edv_pred": pred_idx.lv_edv_ml,
            "esv_ref": ref_idx.lv_esv_ml,
            "esv_pred": pred_idx.lv_esv_ml,
            "rv_ef_ref": ref_idx.rv_ef_percent,
            "rv_ef_pred": pred_idx.rv_ef_percent,
        }
    )
    row["ef_pred_range"] = ranged.lv_ef_percent
    if row["ef_ref"] is not None and row["ef_pred"] is not None:
        row["ef_error"] = row["ef_pred"] - row["ef_ref"]
    if row["ef_ref"] is not None and row["ef_pred_range"] is not None:
        row["ef_error_range"] = row["ef_pred_range"] - row["ef_ref"]
    return row


def evaluate_ssl4mis(
    predictor: SlicePredictor, root: PathLike, patients: Sequence[str]
) -> list[dict[str, Any]]:
    """Evaluate on SSL4MIS ACDC patients (no spacing: resampling is skipped, EF is spacing-free).

    Args:
        predictor: the model.
        root: the ``acdc_ssl4mis`` folder.
        patients: patient ids (validation patients, never the training ones).

    Returns:
        One row per patient with ``patient`` added.

    """
    rows = []
    for pid in patients:
        row = evaluate_study(predictor, read_ssl4mis_study(root, pid))
        row["patient"] = pid
        rows.append(row)
    return rows


def evaluate_sunnybrook(
    predictor: SlicePredictor, root: PathLike, patients: dict[str, str]
) -> list[dict[str, Any]]:
    """Evaluate end to end from the DICOM folders against the expert contours (contoured slices only).

    Args:
        predictor: the model.
        root: the ``sunnybrook`` folder (``dicoms/``, ``contourfiles/``).
        patients: ``{dicom folder: contour folder}``, e.g. ``{"SCD0000101": "SC-HF-I-1"}``.

    Returns:
        One row per patient (LV Dice at ED/ES, MYO Dice at ED, EF predicted vs expert).

    """
    rows = []
    base = Path(root)
    for dicom, contour in patients.items():
        study = read_sunnybrook_study(base / "dicoms" / dicom, base / "contourfiles" / contour)
        # expert labels hold LV and MYO only; predicted RV must not count as a difference
        row = evaluate_study(predictor, study, restrict_to_annotated=True)
        row["patient"] = contour
        rows.append(row)
    return rows


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean of every numeric column, and the mean absolute EF error.

    Args:
        rows: evaluation rows.

    Returns:
        ``{column: mean}`` plus ``"ef_abs_error"``.

    """
    out: dict[str, float] = {}
    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and v is not None})
    for k in keys:
        vals = [float(r[k]) for r in rows if isinstance(r.get(k), (int, float))]
        out[k] = float(np.nanmean(vals)) if vals else float("nan")
    errs = [abs(float(r["ef_error"])) for r in rows if r.get("ef_error") is not None]
    out["ef_abs_error"] = float(np.mean(errs)) if errs else float("nan")
    errs = [abs(float(r["ef_error_range"])) for r in rows if r.get("ef_error_range") is not None]
    out["ef_range_abs_error"] = float(np.mean(errs)) if errs else float("nan")
    return out


def _fmt(v: Any) -> str:
    return (
        ""
        if v is None
        else f"{v:.3f}"
        if isinstance(v, float) and abs(v) < 2
        else f"{v:.1f}"
        if isinstance(v, float)
        else str(v)
    )


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_evaluation(
    predictor: SlicePredictor,
    acdc_root: PathLike,
    acdc_patients: Sequence[str],
    sunnybrook_root: PathLike | None,
    sunnybrook_patients: dict[str, str] | None,
    output_dir: PathLike,
) -> dict[str, Any]:
    """Evaluate on held-out ACDC patients and Sunnybrook; write ``evaluation.json`` and ``evaluation.md``.

    Args:
        predictor: the model.
        acdc_root: the ``acdc_ssl4mis`` folder.
        acdc_patients: validation patient ids.
        sunnybrook_root: the ``sunnybrook`` folder, or ``None`` to skip.
        sunnybrook_patients: ``{dicom folder: contour folder}``.
        output_dir: where to write.

    Returns:
        ``{"acdc": rows, "acdc_summary": ..., "sunnybrook": rows, "sunnybrook_summary": ...}``.

    """
    import json

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    acdc = evaluate_ssl4mis(predictor, acdc_root, acdc_patients)
    result["acdc"], result["acdc_summary"] = acdc, summarise(acdc)
    cols = [
        "patient",
        "dice_lv_ed",
        "dice_lv_es",
        "dice_myo_ed",
        "dice_myo_es",
        "dice_rv_ed",
        "dice_rv_es",
        "ef_ref",
        "ef_pred",
        "ef_error",
        "ef_error_range",
    ]
    md = [
        "# Evaluation",
        "",
        f"## ACDC validation patients ({len(acdc)}), 3D Dice over the stack, EF in %",
        "",
        _table([*acdc, {"patient": "mean", **result["acdc_summary"]}], cols),
        "",
        f"mean |EF error|: {result['acdc_summary']['ef_abs_error']:.2f} points (all slices), "
        f"{result['acdc_summary']['ef_range_abs_error']:.2f} (LV slice range)",
        "",
    ]
    if sunnybrook_root is not None and sunnybrook_patients:
        sb = evaluate_sunnybrook(predictor, sunnybrook_root, sunnybrook_patients)
        result["sunnybrook"], result["sunnybrook_summary"] = sb, summarise(sb)
        sb_cols = [
            "patient",
            "dice_lv_ed",
            "dice_lv_es",
            "dice_myo_ed",
            "ef_ref",
            "ef_pred",
            "ef_error",
            "ef_error_range",
            "edv_ref",
            "edv_pred",
            "esv_ref",
            "esv_pred",
        ]
        md += ["## Sunnybrook (end to end from DICOM, contoured slices)", "", _table(sb, sb_cols), ""]
    (out / "evaluation.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    (out / "evaluation.md").write_text("\n".join(md) + "\n")
    return result


def choose_postprocessing(
    predictor: SlicePredictor, acdc_root: PathLike, patients: Sequence[str], tolerance: float = 0.0
) -> tuple[PostprocessingChoice, dict[str, dict[str, float]]]:
    """Decide post-processing from validation patients, and measure each step on its own.

    The predictor's own post-processing is switched off while predicting; ED and ES of every patient
    are the cases.

    Args:
        predictor: the model.
        acdc_root: the ``acdc_ssl4mis`` folder.
        patients: validation patient ids (never training ones).
        tolerance: see :func:`~cardiacseg.postprocess.select_postprocessing`.

    Returns:
        ``(choice, {step: mean Dice per class with that step alone})`` (``"none"``: no step).

    Example:
        >>> choice, alone = choose_postprocessing(predictor, "acdc_ssl4mis", val_ids)  # doctest: +SKIP

    """
    saved, predictor.postprocess = predictor.postprocess, None
    preds, refs = [], []
    try:
        for pid in patients:
            study = read_ssl4mis_study(acdc_root, pid)
            assert study.ed_phase is not None and study.es_phase is not None
            pred = predictor.predict(study, [study.ed_phase, study.es_phase])
            for t in (study.ed_phase, study.es_phase):
                preds.append(pred[t])
                refs.append(study.labels[t])
    finally:
        predictor.postprocess = saved
    choice = select_postprocessing(preds, refs, tolerance=tolerance)
    alone = {"none": choice.baseline}
    for step in STEPS:
        alone[step] = select_postprocessing(preds, refs, candidates=[step], tolerance=-1.0).trials[0]["dice"]  # type: ignore[assignment]
    return choice, alone
