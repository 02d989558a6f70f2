"""`evaluate --structures/--annotated-slices-only` on the real, partly contoured Sunnybrook reference."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cardiacseg.enums import CardiacLabel
from cardiacseg.io.nifti import write_nifti
from cardiacseg.io.sunnybrook import read_sunnybrook_study
from cardiacseg.workflows.evaluate import compare_cohort

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def files(
    sunnybrook_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, dict[str, int]]:
    """The expert LV/MYO contours as the reference; as prediction the same labels plus an RV and LV blobs
    on every slice the expert did not contour (what a model predicts where nobody drew)."""
    study = read_sunnybrook_study(
        sunnybrook_dir / "dicoms" / "SCD0000101", sunnybrook_dir / "contourfiles" / "SC-HF-I-1"
    )
    assert study.ed_phase is not None and study.es_phase is not None
    ref = np.zeros((study.n_phases, study.n_slices, *study.image.shape[2:]), np.uint8)
    for t, lab in study.labels.items():
        ref[t] = lab
    pred = ref.copy()
    ed, es = study.ed_phase, study.es_phase
    for t in (ed, es):
        contoured = set(study.annotated_slices[t])
        for z in range(study.n_slices):
            if z not in contoured:
                pred[t, z, 10:30, 10:30] = CardiacLabel.LV  # counted only when all slices are scored
        pred[t, :, 200:220, 200:220] = CardiacLabel.RV  # the expert drew no RV
    root = tmp_path_factory.mktemp("partial")
    ref_file = write_nifti(root / "ref" / "SCD0000101.nii.gz", ref, study.affine, study.spacing_mm)
    pred_file = write_nifti(root / "pred" / "SCD0000101.nii.gz", pred, study.affine, study.spacing_mm)
    return pred_file, ref_file, {"ed": ed, "es": es}


def test_partial_scoring_counts_only_what_the_expert_labelled(
    files: tuple[Path, Path, dict[str, int]], tmp_path: Path
) -> None:
    pred, ref, _ = files
    summary = compare_cohort(pred, ref, tmp_path / "partial", structures=["lv", "myo"], annotated_only=True)
    assert summary["scored_structures"] == ["lv", "myo"] and summary["annotated_slices_only"] is True
    ed = summary["metrics"]["ED"]
    assert ed["dice_lv"]["mean"] == pytest.approx(1.0) and ed["dice_myo"]["mean"] == pytest.approx(1.0)
    assert ed["dice_rv"]["n"] == 0  # not scored: NaN, never 0
    assert summary["indices"]["lv_ef_percent"]["mean_abs_error"] == pytest.approx(0.0, abs=1e-9)
    assert "rv_edv_ml" not in summary["indices"]
    rows = (tmp_path / "partial" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    first = dict(zip(header, rows[1].split(","), strict=True))
    assert first["dice_rv"] == "nan"
    saved = json.loads((tmp_path / "partial" / "summary.json").read_text())
    assert saved["scored_structures"] == ["lv", "myo"]


def test_without_the_options_the_unlabelled_slices_count(
    files: tuple[Path, Path, dict[str, int]], tmp_path: Path
) -> None:
    pred, ref, _ = files
    summary = compare_cohort(pred, ref, tmp_path / "all")
    assert summary["metrics"]["ED"]["dice_lv"]["mean"] < 0.99  # the blobs on uncontoured slices count
    # the RV: the reference has none, so its Dice is NaN even when scored (never 0)
    assert summary["metrics"]["ED"]["dice_rv"]["n"] == 0
    assert not math.isclose(summary["indices"]["lv_ef_percent"]["mean_abs_error"], 0.0)


def test_unknown_structure_is_refused_before_any_work(
    files: tuple[Path, Path, dict[str, int]], tmp_path: Path
) -> None:
    pred, ref, _ = files
    with pytest.raises(ValueError, match="unknown structure"):
        compare_cohort(pred, ref, tmp_path / "x", structures=["lv", "la"])
    assert not (tmp_path / "x").exists()
