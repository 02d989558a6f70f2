"""Evaluate a predictor on labelled studies: the bundle's ACDC validation patients and Sunnybrook from DICOM.

What the bundle's ``evaluate.json`` and ``scripts/evaluate_and_choose.py`` run. Each study is
predicted at its labelled phases and scored by the one comparison of
:mod:`cardiacseg.workflows.evaluate` (same rows, keys and NaN rules as ``cardiacseg evaluate``):

* ACDC (SSL4MIS copy): ED and ES of each patient, all slices; no voxel spacing, so Dice, EF and
  distances in voxels, while volumes and mass are NaN;
* Sunnybrook: end to end from the DICOM folder against the expert contours, only the contoured slices
  (both sides emptied elsewhere); the contours hold LV (and MYO at ED), so RV and ES MYO metrics are NaN.

:func:`write_evaluation` writes ``<output>/acdc/`` and ``<output>/sunnybrook/`` (the
:data:`~cardiacseg.workflows.evaluate.COMPARISON_OUTPUTS` of ``cardiacseg evaluate``), then
``evaluation.json`` (per dataset: ``summary``, ``metrics`` and ``indices`` rows; NaN as ``null``) and
``evaluation.md`` (per-study tables), all atomically and refusing to replace any of them without
``overwrite``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cardiacseg.config import as_bool
from cardiacseg.enums import STRUCTURES, Phase
from cardiacseg.inferers.predictor import SlicePredictor
from cardiacseg.io.ssl4mis import read_ssl4mis_study
from cardiacseg.io.study import CineStudy
from cardiacseg.io.sunnybrook import read_sunnybrook_study
from cardiacseg.postprocess import STEPS, PostprocessingChoice, select_postprocessing
from cardiacseg.typing import PathLike
from cardiacseg.utils.atomic import atomic_write_text
from cardiacseg.workflows.evaluate import (
    COMPARISON_OUTPUTS,
    Comparison,
    check_outputs,
    compare_study,
    json_ready,
    write_comparison,
)

__all__ = [
    "EVALUATION_DATASETS",
    "check_evaluation_outputs",
    "choose_postprocessing",
    "evaluate_predictor",
    "evaluate_ssl4mis",
    "evaluate_sunnybrook",
    "evaluation_outputs",
    "write_evaluation",
]

#: Sub-folders of :func:`write_evaluation`'s output, one per dataset.
EVALUATION_DATASETS = ("acdc", "sunnybrook")


def evaluate_predictor(
    predictor: SlicePredictor,
    studies: Iterable[tuple[str, CineStudy]],
    restrict_to_annotated: bool = False,
) -> Comparison:
    """Predict every labelled phase of each study and compare with its labels.

    Args:
        predictor: the model (with its TTA and post-processing).
        studies: ``(name, labelled study)`` pairs.
        restrict_to_annotated: compare only slices carrying annotations
            (:func:`~cardiacseg.workflows.evaluate.compare_study`).

    Returns:
        The rows of all studies.

    Raises:
        ValueError: a study without labels.

    Example:
        >>> c = evaluate_predictor(predictor, [("p1", study)])  # doctest: +SKIP

    """
    out = Comparison()
    for name, study in studies:
        if not study.labels:
            raise ValueError(f"{study.source}: no labels to evaluate against")
        pred = predictor.predict(study, sorted(study.labels))
        out.extend(compare_study(study, pred, restrict_to_annotated, name=name))
    return out


def evaluate_ssl4mis(predictor: SlicePredictor, root: PathLike, patients: Sequence[str]) -> Comparison:
    """Evaluate on SSL4MIS ACDC patients (ED and ES; no spacing, so no volumes; EF is spacing-free).

    Args:
        predictor: the model.
        root: the ``acdc_ssl4mis`` folder.
        patients: patient ids (validation patients, never the training ones); the study names.

    Returns:
        The rows, studies named by patient id.

    Example:
        >>> c = evaluate_ssl4mis(predictor, "acdc_ssl4mis", ["patient004"])  # doctest: +SKIP

    """
    return evaluate_predictor(predictor, ((pid, read_ssl4mis_study(root, pid)) for pid in patients))


def evaluate_sunnybrook(predictor: SlicePredictor, root: PathLike, patients: Mapping[str, str]) -> Comparison:
    """Evaluate end to end from the DICOM folders against the expert contours (contoured slices only).

    Args:
        predictor: the model.
        root: the ``sunnybrook`` folder (``dicoms/``, ``contourfiles/``).
        patients: ``{dicom folder: contour folder}``, e.g. ``{"SCD0000101": "SC-HF-I-1"}``.

    Returns:
        The rows, studies named by contour folder.

    Example:
        >>> c = evaluate_sunnybrook(predictor, "sunnybrook", {"SCD0000101": "SC-HF-I-1"})  # doctest: +SKIP

    """
    base = Path(root)
    studies = (
        (contour, read_sunnybrook_study(base / "dicoms" / dicom, base / "contourfiles" / contour))
        for dicom, contour in patients.items()
    )
    return evaluate_predictor(predictor, studies, restrict_to_annotated=True)


def evaluation_outputs(output_dir: PathLike) -> list[Path]:
    """Every file :func:`write_evaluation` may write.

    Args:
        output_dir: its output folder.

    Returns:
        The paths (per-dataset folders first, ``evaluation.json`` and ``evaluation.md`` last).

    Example:
        >>> [p.as_posix() for p in evaluation_outputs("eval")][-2:]
        ['eval/evaluation.json', 'eval/evaluation.md']

    """
    out = Path(output_dir)
    files = [out / d / n for d in EVALUATION_DATASETS for n in COMPARISON_OUTPUTS]
    return [*files, out / "evaluation.json", out / "evaluation.md"]


def check_evaluation_outputs(output_dir: PathLike, overwrite: bool | str = False) -> None:
    """Refuse early (e.g. before the bundle's validation run) when :func:`write_evaluation` would.

    Args:
        output_dir: the evaluation output folder.
        overwrite: whether replacing earlier outputs is allowed (a bool, or a bundle command-line word
            such as ``"false"``, read by :func:`~cardiacseg.config.as_bool`).

    Raises:
        FileExistsError: an output exists and ``overwrite`` is False (names the file).

    Example:
        >>> check_evaluation_outputs("/nonexistent/eval")

    """
    check_outputs(evaluation_outputs(output_dir), as_bool(overwrite))


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 2 else f"{v:.1f}"
    return str(v)


def _study_table(comparison: Comparison) -> str:
    """One line per study: Dice per structure at ED and ES, LV EF, EDV, ESV (reference, model, error)."""
    dice_cols = [(s, p) for s in STRUCTURES for p in (Phase.ED.value, Phase.ES.value)]
    index_cols = [
        ("LV EF ref %", "lv_ef_percent_ref"),
        ("LV EF model %", "lv_ef_percent_pred"),
        ("EF error", "lv_ef_percent_error"),
        ("EF error, slice range", "lv_ef_percent_error_slice_range"),
        ("LV EDV ref mL", "lv_edv_ml_ref"),
        ("LV EDV model mL", "lv_edv_ml_pred"),
        ("LV ESV ref mL", "lv_esv_ml_ref"),
        ("LV ESV model mL", "lv_esv_ml_pred"),
    ]
    header = ["study", *(f"{s.name} Dice {p}" for s, p in dice_cols), *(h for h, _ in index_cols)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    summary = comparison.summary()
    for idx in comparison.indices:
        by_phase = {m["phase_name"]: m for m in comparison.metrics if m["study"] == idx["study"]}
        cells = [str(idx["study"])]
        cells += [_fmt(by_phase.get(p, {}).get(f"dice_{s.key}")) for s, p in dice_cols]
        cells += [_fmt(idx[k]) for _, k in index_cols]
        lines.append("| " + " | ".join(cells) + " |")
    means = ["mean"]
    means += [_fmt(summary["metrics"].get(p, {}).get(f"dice_{s.key}", {}).get("mean")) for s, p in dice_cols]
    for _, k in index_cols:
        vals = [r[k] for r in comparison.indices if math.isfinite(r[k])]
        means.append(_fmt(sum(vals) / len(vals)) if vals else "–")
    lines.append("| " + " | ".join(means) + " |")
    return "\n".join(lines)


def _abs_error_line(summary: Mapping[str, Any]) -> str:
    ef = summary["indices"].get("lv_ef_percent")
    ranged = summary["indices"].get("lv_ef_percent_slice_range")
    if ef is None:
        return "mean |LV EF error|: – (no study with LV EF on both sides)"
    line = f"mean |LV EF error|: {ef['mean_abs_error']:.2f} points (all slices, {ef['n']} studies)"
    return line + (f", {ranged['mean_abs_error']:.2f} (LV slice range)" if ranged else "")


def write_evaluation(
    predictor: SlicePredictor,
    acdc_root: PathLike,
    acdc_patients: Sequence[str],
    sunnybrook_root: PathLike | None,
    sunnybrook_patients: Mapping[str, str] | None,
    output_dir: PathLike,
    overwrite: bool | str = False,
) -> dict[str, Any]:
    """Evaluate on held-out ACDC patients and Sunnybrook; write the comparison files and a report.

    Writes ``<output_dir>/acdc/`` and ``<output_dir>/sunnybrook/`` with
    :func:`~cardiacseg.workflows.evaluate.write_comparison`, then ``evaluation.json`` and
    ``evaluation.md``. Every file is written atomically; existing outputs are checked before predicting.

    Args:
        predictor: the model.
        acdc_root: the ``acdc_ssl4mis`` folder.
        acdc_patients: validation patient ids.
        sunnybrook_root: the ``sunnybrook`` folder, or ``None`` to skip.
        sunnybrook_patients: ``{dicom folder: contour folder}`` (empty or ``None``: skip).
        output_dir: where to write.
        overwrite: replace earlier outputs (a bool or a command-line word, as in
            :func:`check_evaluation_outputs`).

    Returns:
        The content of ``evaluation.json``: ``{"acdc": {"summary", "metrics", "indices"},
        "sunnybrook": ...}`` (``sunnybrook`` only when evaluated; NaN as ``None``).

    Raises:
        FileExistsError: an output exists and ``overwrite`` is False (names the file; nothing written).

    Example:
        >>> sb = {"SCD0000101": "SC-HF-I-1"}
        >>> result = write_evaluation(predictor, acdc, val_ids, sunnybrook, sb, "eval")  # doctest: +SKIP

    """
    out, overwrite = Path(output_dir), as_bool(overwrite)
    check_evaluation_outputs(out, overwrite)
    comparisons = {"acdc": evaluate_ssl4mis(predictor, acdc_root, acdc_patients)}
    if sunnybrook_root is not None and sunnybrook_patients:
        comparisons["sunnybrook"] = evaluate_sunnybrook(predictor, sunnybrook_root, sunnybrook_patients)
    titles = {
        "acdc": "ACDC validation patients ({n}): 3D Dice over the stack, EF in %; no spacing, so no mL",
        "sunnybrook": "Sunnybrook ({n}), end to end from DICOM, contoured slices",
    }
    result: dict[str, Any] = {}
    md = ["# Evaluation", "", "Keys and units: `cardiacseg.workflows.evaluate`; `–`: not available.", ""]
    for name, comparison in comparisons.items():
        summary = write_comparison(comparison, out / name, overwrite=overwrite)
        result[name] = json_ready(
            {"summary": summary, "metrics": comparison.metrics, "indices": comparison.indices}
        )
        md += [f"## {titles[name].format(n=len(comparison.indices))}", "", _study_table(comparison), ""]
        md += [_abs_error_line(summary), ""]
    atomic_write_text(out / "evaluation.json", json.dumps(result, indent=2) + "\n", overwrite=overwrite)
    atomic_write_text(out / "evaluation.md", "\n".join(md), overwrite=overwrite)
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

    Raises:
        ValueError: a patient without ED/ES.

    Example:
        >>> choice, alone = choose_postprocessing(predictor, "acdc_ssl4mis", val_ids)  # doctest: +SKIP

    """
    saved, predictor.postprocess = predictor.postprocess, None
    preds, refs = [], []
    try:
        for pid in patients:
            study = read_ssl4mis_study(acdc_root, pid)
            if study.ed_phase is None or study.es_phase is None:
                raise ValueError(f"{study.source}: ED/ES unknown")
            pred = predictor.predict(study, [study.ed_phase, study.es_phase])
            for t in (study.ed_phase, study.es_phase):
                preds.append(pred[t])
                refs.append(study.labels[t])
    finally:
        predictor.postprocess = saved
    choice = select_postprocessing(preds, refs, tolerance=tolerance)
    alone = {"none": choice.baseline}
    for step in STEPS:
        trial = select_postprocessing(preds, refs, candidates=[step], tolerance=-1.0).trials[0]
        alone[step] = trial["dice"]  # type: ignore[assignment]
    return choice, alone
