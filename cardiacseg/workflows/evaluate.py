"""Compare predicted label files with reference labels: per-class/per-phase metrics, index errors, cohorts.

This is what ``cardiacseg evaluate PRED REF`` runs. Inputs are label NIfTI files (3D, or 4D cine with
phases on the 4th axis), output folders of ``cardiacseg segment`` (their ``labels.nii.gz``), or ACDC
patient folders (reference ED/ES ground truth). Labels are read in the internal convention (1 LV, 2 MYO,
3 RV) unless ``convention="acdc"`` (1 RV, 2 MYO, 3 LV) is given for a side.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cardiacseg.clinical.figures import plot_bland_altman
from cardiacseg.clinical.indices import compute_cardiac_indices, detect_ed_es
from cardiacseg.io.acdc import read_acdc_patient
from cardiacseg.io.atomic import atomic_write_text
from cardiacseg.io.discover import study_name
from cardiacseg.io.labels import acdc_to_internal
from cardiacseg.io.nifti import read_nifti_array
from cardiacseg.metrics import dice_score, segmentation_metrics
from cardiacseg.typing import LabelArray, PathLike, SpacingZYX

__all__ = ["LabelSet", "compare_cohort", "compare_labels", "find_label_sets", "read_label_set"]

Convention = Literal["internal", "acdc"]


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


def compare_labels(
    pred: LabelSet, ref: LabelSet, name: str = ""
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Metrics of one study: per class and phase (Dice, HD95, MSD), and LV/RV index errors.

    Phases compared are the reference's labelled phases. ED/ES come from the reference (stated by the
    source, else its largest/smallest LV); EF, EDV and ESV of both sides are computed at those phases.

    Args:
        pred: predicted labels (all phases, or the same phases as the reference).
        ref: reference labels.
        name: study name for the rows.

    Returns:
        ``(metric rows, index row)``; metric rows with ``slice == "all"`` are over the 3D stack, the
        others per slice (Dice and voxel counts of slices where either side has the structure).

    Raises:
        ValueError: a reference phase missing from the prediction, or shapes differ (names both files).

    Example:
        >>> rows, idx = compare_labels(read_label_set("out/p1"), read_label_set("acdc/p1"))  # doctest: +SKIP

    """
    phases = sorted(ref.labels)
    if not phases:
        raise ValueError(f"{ref.path}: no labelled phase")
    if pred.n_phases == 1 and ref.n_phases == 1:
        pred_labels = {phases[0]: pred.labels[0]}
    else:
        missing = [t for t in phases if t not in pred.labels]
        if missing:
            raise ValueError(f"{pred.path}: no phase(s) {missing} labelled in the reference {ref.path}")
        pred_labels = {t: pred.labels[t] for t in phases}
    spacing = ref.spacing_mm or pred.spacing_mm
    ed = es = None
    if ref.ed_phase is not None and ref.es_phase is not None:
        ed, es = ref.ed_phase, ref.es_phase
    elif len(phases) >= 2:
        ed, es = detect_ed_es(ref.labels)
    rows: list[dict[str, Any]] = []
    for t in phases:
        if pred_labels[t].shape != ref.labels[t].shape:
            raise ValueError(
                f"{pred.path} phase {t} has shape {pred_labels[t].shape}, "
                f"{ref.path} has {ref.labels[t].shape}"
            )
        tag = "ED" if t == ed else "ES" if t == es else ""
        for m in segmentation_metrics(pred_labels[t], ref.labels[t], spacing):
            rows.append({"study": name, "phase": t, "phase_name": tag, "slice": "all", **m.to_dict()})
        for z in range(ref.labels[t].shape[0]):
            for value, cls in ((1, "LV"), (2, "MYO"), (3, "RV")):
                p_m, r_m = pred_labels[t][z] == value, ref.labels[t][z] == value
                if p_m.any() or r_m.any():
                    rows.append(
                        {
                            "study": name,
                            "phase": t,
                            "phase_name": tag,
                            "slice": z,
                            "name": cls,
                            "dice": dice_score(p_m, r_m),
                            "ref_voxels": int(r_m.sum()),
                            "pred_voxels": int(p_m.sum()),
                        }
                    )
    index_row: dict[str, Any] = {"study": name, "ed_phase": ed, "es_phase": es}
    if ed is not None and es is not None:
        r = compute_cardiac_indices({t: ref.labels[t] for t in (ed, es)}, spacing, ed, es)
        p = compute_cardiac_indices({t: pred_labels[t] for t in (ed, es)}, spacing, ed, es)
        for key, short in (
            ("lv_ef_percent", "ef"),
            ("lv_edv_ml", "edv"),
            ("lv_esv_ml", "esv"),
            ("lv_mass_g", "lv_mass"),
            ("rv_ef_percent", "rv_ef"),
            ("rv_edv_ml", "rv_edv"),
            ("rv_esv_ml", "rv_esv"),
        ):
            a, b = getattr(p, key), getattr(r, key)
            index_row[f"{short}_pred"], index_row[f"{short}_ref"] = a, b
            index_row[f"{short}_error"] = None if a is None or b is None else a - b
    return rows, index_row


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


def _nanmean(values: Sequence[Any]) -> float | None:
    """Mean over finite values; ``None`` (JSON null) when there are none."""
    arr = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else None


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def compare_cohort(
    pred: PathLike,
    ref: PathLike,
    output_dir: PathLike,
    pred_convention: Convention = "internal",
    ref_convention: Convention = "internal",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Compare predictions with references for one study or a cohort; write CSV, JSON and a Bland–Altman PNG.

    Studies are paired by name (see :func:`find_label_sets`); unpaired ones are listed in the summary.
    Writes ``metrics.csv`` (study, phase, class: Dice, HD95, MSD over the stack), ``metrics_per_slice.csv``
    (Dice and voxel counts per slice), ``indices.csv`` (EF/EDV/ESV/mass, both
    sides and errors), ``summary.json`` (means per class and phase type, mean absolute index errors) and
    ``bland_altman.png`` (EF, EDV, ESV; when at least one study has them).

    Args:
        pred: prediction file or folder.
        ref: reference file or folder.
        output_dir: output folder.
        pred_convention: label convention of prediction NIfTI files.
        ref_convention: label convention of reference NIfTI files.
        overwrite: replace earlier outputs.

    Returns:
        The summary dictionary.

    Raises:
        ValueError: no study could be paired.
        FileExistsError: outputs exist and ``overwrite`` is False.

    Example:
        >>> summary = compare_cohort("out", "acdc", "eval")  # doctest: +SKIP

    """
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
    metric_rows: list[dict[str, Any]] = []
    slice_rows: list[dict[str, Any]] = []
    index_rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    for name, (pp, rp) in pairs.items():
        try:
            rows, idx = compare_labels(
                read_label_set(pp, pred_convention),
                read_label_set(rp, ref_convention, labelled_only=True),
                name,
            )
        except (ValueError, OSError) as exc:
            failed[name] = str(exc)
            continue
        metric_rows += [r for r in rows if r["slice"] == "all"]
        slice_rows += [r for r in rows if r["slice"] != "all"]
        index_rows.append(idx)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "n_studies": len(index_rows),
        "unpaired_predictions": sorted(set(preds) - set(refs)) if len(pairs) > 1 else [],
        "unpaired_references": sorted(set(refs) - set(preds)) if len(pairs) > 1 else [],
        "failed": failed,
        "distance_unit": sorted({str(r["unit"]) for r in metric_rows}),
        "metrics": {},
        "indices": {},
    }
    for cls in ("lv", "myo", "rv"):
        for phase_name in ("ED", "ES", "all"):
            sel = [
                r
                for r in metric_rows
                if str(r["name"]).lower() == cls and (phase_name == "all" or r["phase_name"] == phase_name)
            ]
            sel = [r for r in sel if r["ref_voxels"] > 0]
            if sel:
                summary["metrics"][f"{cls}_{phase_name}"] = {
                    k: _nanmean([r[k] for r in sel]) for k in ("dice", "hd95", "msd")
                }
    for short in ("ef", "edv", "esv", "lv_mass", "rv_ef", "rv_edv", "rv_esv"):
        errs = [r[f"{short}_error"] for r in index_rows if r.get(f"{short}_error") is not None]
        if errs:
            summary["indices"][short] = {
                "mean_error": float(np.mean(errs)),
                "mean_abs_error": float(np.mean(np.abs(errs))),
                "n": len(errs),
            }
    written = [
        atomic_write_text(out / "metrics.csv", _csv(metric_rows), overwrite=overwrite),
        atomic_write_text(out / "metrics_per_slice.csv", _csv(slice_rows), overwrite=overwrite),
        atomic_write_text(out / "indices.csv", _csv(index_rows), overwrite=overwrite),
    ]
    ba = {}
    units = {"EF": "%", "EDV": "mL", "ESV": "mL"}
    for label, short in (("EF", "ef"), ("EDV", "edv"), ("ESV", "esv")):
        ok = [r for r in index_rows if r.get(f"{short}_error") is not None]
        if ok:
            ba[label] = ([r[f"{short}_pred"] for r in ok], [r[f"{short}_ref"] for r in ok])
    if ba:
        written.append(
            plot_bland_altman(
                ba,
                out / "bland_altman.png",
                units,
                f"model vs reference, {len(index_rows)} studies",
                overwrite,
            )
        )
    summary["outputs"] = [str(p) for p in written] + [str(out / "summary.json")]
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n", overwrite=overwrite)
    return summary
