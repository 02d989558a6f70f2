"""The one comparison (cardiacseg.workflows.evaluate) against hand-computed values on constructed masks."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from cardiacseg.io.nifti import write_nifti
from cardiacseg.io.study import CineStudy
from cardiacseg.workflows.evaluate import (
    COMPARISON_OUTPUTS,
    INDEX_QUANTITIES,
    compare_cohort,
    compare_label_maps,
    compare_study,
    json_ready,
)

SPACING = (10.0, 1.5, 2.0)  # z, y, x in mm: one voxel is 30 mm3 = 0.03 mL
VOXEL_ML = 10.0 * 1.5 * 2.0 / 1000.0


def _heart(
    lv: tuple[slice, slice, slice], myo_margin: int = 0, rv: tuple[slice, slice, slice] | None = None
) -> np.ndarray:
    """A (4, 20, 20) label map: an LV box, optionally a myocardial shell (``myo_margin``) and an RV box."""
    lab = np.zeros((4, 20, 20), np.uint8)
    if myo_margin:
        z, y, x = lv
        lab[z, y.start - myo_margin : y.stop + myo_margin, x.start - myo_margin : x.stop + myo_margin] = 2
    lab[lv] = 1
    if rv is not None:
        lab[rv] = 3
    return lab


def test_dice_and_voxel_counts_are_hand_computed() -> None:
    """LV: 16 vs 16 voxels sharing 8 -> 0.5; MYO identical -> 1; RV only predicted -> NaN, not 0."""
    ref = np.zeros((1, 10, 10), np.uint8)
    ref[0, 2:6, 2:6] = 1  # 16 voxels
    ref[0, 8, 0:4] = 2  # 4 voxels
    pred = np.zeros_like(ref)
    pred[0, 4:8, 2:6] = 1  # 16 voxels, rows 4-5 shared: 8 voxels
    pred[0, 8, 0:4] = 2
    pred[0, 0, 9] = 3  # a false-positive RV voxel
    c = compare_label_maps({0: pred}, {0: ref}, (8.0, 1.0, 1.0), study="hand")
    (row,) = c.metrics
    assert row["study"] == "hand" and row["phase"] == 0 and row["phase_name"] == ""
    assert row["dice_lv"] == pytest.approx(2 * 8 / (16 + 16))
    assert row["dice_myo"] == 1.0
    assert math.isnan(row["dice_rv"]) and math.isnan(row["hd95_rv_mm"]) and math.isnan(row["msd_rv_mm"])
    assert (row["lv_voxels_ref"], row["lv_voxels_pred"], row["rv_voxels_ref"], row["rv_voxels_pred"]) == (
        16,
        16,
        0,
        1,
    )
    (srow,) = c.slices  # the one slice, wide per structure
    assert srow["slice"] == 0 and srow["dice_lv"] == pytest.approx(0.5) and math.isnan(srow["dice_rv"])


def test_surface_distances_carry_their_unit() -> None:
    """One voxel vs the same voxel 3 columns away: 3 x 2.0 mm = 6 mm with spacing, 3 voxels without."""
    ref = np.zeros((2, 6, 8), np.uint8)
    pred = np.zeros_like(ref)
    ref[1, 2, 1] = pred[1, 2, 4] = 1
    mm = compare_label_maps({0: pred}, {0: ref}, SPACING).metrics[0]
    assert mm["hd95_lv_mm"] == pytest.approx(6.0) and mm["msd_lv_mm"] == pytest.approx(6.0)
    assert math.isnan(mm["hd95_lv_voxels"]) and math.isnan(mm["msd_lv_voxels"])
    vox = compare_label_maps({0: pred}, {0: ref}, None).metrics[0]
    assert vox["hd95_lv_voxels"] == pytest.approx(3.0) and math.isnan(vox["hd95_lv_mm"])
    assert vox["dice_lv"] == 0.0  # the reference has the LV: no overlap is a real 0


def test_indices_match_an_analytic_phantom() -> None:
    """Box volumes x voxel size give EDV/ESV/EF/mass; errors are prediction minus reference."""
    ref_ed = _heart(
        (slice(0, 4), slice(5, 15), slice(5, 15)), myo_margin=2, rv=(slice(0, 4), slice(0, 2), slice(0, 10))
    )
    ref_es = _heart((slice(0, 4), slice(7, 13), slice(7, 13)), rv=(slice(0, 4), slice(0, 1), slice(0, 10)))
    pred_ed = _heart(
        (slice(0, 4), slice(5, 15), slice(5, 14)), myo_margin=2, rv=(slice(0, 4), slice(0, 2), slice(0, 10))
    )
    pred_es = ref_es.copy()
    c = compare_label_maps({0: pred_ed, 1: pred_es}, {0: ref_ed, 1: ref_es}, SPACING, "phantom")
    edv, esv = 4 * 10 * 10 * VOXEL_ML, 4 * 6 * 6 * VOXEL_ML
    edv_pred = 4 * 10 * 9 * VOXEL_ML
    myo_ml = 4 * (14 * 14 - 10 * 10) * VOXEL_ML
    (idx,) = c.indices
    assert (idx["ed_phase"], idx["es_phase"], idx["ed_es_source"]) == (0, 1, "detected")
    assert idx["lv_edv_ml_ref"] == pytest.approx(edv) and idx["lv_esv_ml_ref"] == pytest.approx(esv)
    assert idx["lv_sv_ml_ref"] == pytest.approx(edv - esv)
    assert idx["lv_ef_percent_ref"] == pytest.approx(100 * (edv - esv) / edv)
    assert idx["lv_ef_percent_pred"] == pytest.approx(100 * (edv_pred - esv) / edv_pred)
    assert idx["lv_ef_percent_error"] == pytest.approx(
        100 * (edv_pred - esv) / edv_pred - 100 * (edv - esv) / edv
    )
    assert idx["lv_edv_ml_error"] == pytest.approx(edv_pred - edv)
    assert idx["lv_mass_g_ref"] == pytest.approx(1.05 * myo_ml)
    assert idx["rv_ef_percent_ref"] == pytest.approx(100 * (20 - 10) / 20)
    assert idx["rv_edv_ml_error"] == pytest.approx(0.0)
    assert [m["phase_name"] for m in c.metrics] == ["ED", "ES"]
    assert set(idx) >= {f"{q}_{side}" for q in INDEX_QUANTITIES for side in ("pred", "ref", "error")}


def test_missing_reference_structure_and_spacing_give_nan_not_zero() -> None:
    """Reference without RV (Sunnybrook-like) and without spacing: RV indices and all volumes are NaN."""
    ref_ed = _heart((slice(0, 4), slice(5, 15), slice(5, 15)))
    ref_es = _heart((slice(0, 4), slice(7, 13), slice(7, 13)))
    pred_ed = _heart((slice(0, 4), slice(5, 15), slice(5, 15)), rv=(slice(0, 4), slice(0, 2), slice(0, 10)))
    c = compare_label_maps(
        {0: pred_ed, 1: ref_es}, {0: ref_ed, 1: ref_es}, None, "no-rv", ed_phase=0, es_phase=1
    )
    (idx,) = c.indices
    assert idx["ed_es_source"] == "given"
    assert math.isnan(idx["rv_edv_ml_ref"]) and math.isnan(idx["rv_ef_percent_ref"])
    assert math.isnan(idx["rv_ef_percent_error"]) and math.isnan(idx["lv_edv_ml_pred"])
    assert math.isnan(idx["lv_mass_g_ref"])  # no myocardium and no spacing
    assert (
        idx["lv_ef_percent_ref"] == pytest.approx(100 * (1 - 36 / 100)) and idx["lv_ef_percent_error"] == 0.0
    )
    ed = c.metrics[0]
    assert math.isnan(ed["dice_rv"]) and math.isnan(ed["dice_myo"]) and ed["rv_voxels_pred"] == 80
    summary = c.summary()
    assert summary["metrics"]["ED"]["dice_rv"] == {"mean": None, "n": 0}
    assert summary["metrics"]["all"]["dice_lv"] == {"mean": 1.0, "n": 2}
    assert "rv_ef_percent" not in summary["indices"]
    assert json.loads(json.dumps(json_ready(c.indices)))[0]["rv_edv_ml_ref"] is None  # strict JSON: null


def test_single_phase_has_no_indices() -> None:
    lab = _heart((slice(0, 4), slice(5, 15), slice(5, 15)))
    c = compare_label_maps({0: lab}, {0: lab}, SPACING)
    (idx,) = c.indices
    assert idx["ed_phase"] is None and all(math.isnan(idx[f"{q}_ref"]) for q in INDEX_QUANTITIES)
    assert c.metrics[0]["dice_lv"] == 1.0


def test_phase_and_shape_mismatch_are_named() -> None:
    lab = _heart((slice(0, 4), slice(5, 15), slice(5, 15)))
    with pytest.raises(ValueError, match=r"pred.nii.gz: no phase\(s\) \[1\]"):
        compare_label_maps({0: lab}, {0: lab, 1: lab}, pred_source="pred.nii.gz")
    with pytest.raises(ValueError, match="shape"):
        compare_label_maps({0: lab[:2]}, {0: lab})


def test_compare_study_keeps_only_annotated_slices() -> None:
    """A predicted LV on an uncontoured slice does not count (Sunnybrook: contours on some slices only)."""
    ed = _heart((slice(1, 3), slice(5, 15), slice(5, 15)))
    es = _heart((slice(1, 3), slice(7, 13), slice(7, 13)))
    study = CineStudy(
        image=np.zeros((2, 4, 20, 20), np.float32),
        spacing_mm=SPACING,
        labels={0: ed, 1: es},
        annotated_slices={0: (1, 2), 1: (1, 2)},
        ed_phase=0,
        es_phase=1,
        source="synthetic",
    )
    pred = {0: ed.copy(), 1: es.copy()}
    pred[0][0, 5:15, 5:15] = 1  # slice 0 has no contour
    kept = compare_study(study, pred, restrict_to_annotated=True, name="s")
    assert kept.metrics[0]["dice_lv"] == 1.0 and kept.indices[0]["lv_edv_ml_error"] == 0.0
    everything = compare_study(study, pred)
    assert everything.metrics[0]["dice_lv"] == pytest.approx(2 * 200 / (200 + 300))
    assert everything.indices[0]["lv_edv_ml_error"] == pytest.approx(100 * VOXEL_ML)
    assert everything.indices[0]["study"] == "synthetic"


def _write_pair(root: Path, name: str, pred: np.ndarray, ref: np.ndarray) -> None:
    write_nifti(root / "pred" / f"{name}.nii.gz", pred, spacing_mm=SPACING)
    write_nifti(root / "ref" / f"{name}.nii.gz", ref, spacing_mm=SPACING)


def test_cohort_files_and_refusal_to_overwrite(tmp_path: Path) -> None:
    ed = _heart((slice(0, 4), slice(5, 15), slice(5, 15)), myo_margin=2)
    es = _heart((slice(0, 4), slice(7, 13), slice(7, 13)), myo_margin=1)
    shifted = np.roll(ed, 2, axis=2)
    _write_pair(tmp_path, "a", np.stack([ed, es]), np.stack([ed, es]))
    _write_pair(tmp_path, "b", np.stack([shifted, es]), np.stack([ed, es]))
    out = tmp_path / "eval"
    summary = compare_cohort(tmp_path / "pred", tmp_path / "ref", out)
    assert summary["n_studies"] == 2 and not summary["failed"]
    assert sorted(p.name for p in out.iterdir()) == sorted(COMPARISON_OUTPUTS)
    metrics = list(csv.DictReader((out / "metrics.csv").open()))
    row = next(r for r in metrics if r["study"] == "b" and r["phase_name"] == "ED")
    lv_ref, lv_shared = 4 * 10 * 10, 4 * 8 * 10  # rolled by 2 rows
    assert float(row["dice_lv"]) == pytest.approx(2 * lv_shared / (2 * lv_ref))
    assert math.isnan(float(row["dice_rv"])) and row["hd95_rv_mm"] == "nan"
    indices = {r["study"]: r for r in csv.DictReader((out / "indices.csv").open())}
    assert float(indices["a"]["lv_ef_percent_error"]) == 0.0
    assert float(indices["a"]["lv_edv_ml_ref"]) == pytest.approx(400 * VOXEL_ML)
    written = json.loads((out / "summary.json").read_text())
    assert written["indices"]["lv_ef_percent"]["n"] == 2
    assert written["metrics"]["ED"]["dice_rv"]["mean"] is None  # JSON null, not NaN

    before = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(FileExistsError, match=r"metrics\.csv"):
        compare_cohort(tmp_path / "pred", tmp_path / "ref", out)
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == before
    (out / "metrics.csv").unlink()  # any existing output refuses the whole run, before writing
    with pytest.raises(FileExistsError, match=r"metrics_per_slice\.csv"):
        compare_cohort(tmp_path / "pred", tmp_path / "ref", out)
    assert not (out / "metrics.csv").exists()
    assert compare_cohort(tmp_path / "pred", tmp_path / "ref", out, overwrite=True)["n_studies"] == 2
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
