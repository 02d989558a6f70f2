"""The shipped model on held-out real data: ACDC validation patients and Sunnybrook end to end from DICOM.

Targets (issue): ACDC validation, 3D Dice LV >= 0.93, MYO >= 0.87, RV >= 0.88, mean |EF error| <= 4 points;
Sunnybrook (another scanner, heart failure, never used for training): LV Dice >= 0.90 on the contoured slices
and |EF error| <= 5 points. The references are the expert labels and contours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardiacseg.data.datalist import split_patients
from cardiacseg.inferers import SlicePredictor
from cardiacseg.io import list_ssl4mis_patients
from cardiacseg.io.ssl4mis import read_ssl4mis_study
from cardiacseg.io.study import CineStudy
from cardiacseg.metrics import dice_score
from cardiacseg.postprocess import PostprocessingChoice, PostProcessor
from cardiacseg.workflows.bundle_evaluation import evaluate_sunnybrook
from cardiacseg.workflows.evaluate import Comparison, compare_study

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "cardiac_cine_seg"
WEIGHTS = BUNDLE / "models" / "model.pt"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not WEIGHTS.exists(), reason="no shipped weights in this checkout"),
]


@pytest.fixture(scope="module")
def predictor() -> SlicePredictor:
    return SlicePredictor.from_bundle(BUNDLE)  # the bundle's TTA and post-processing


@pytest.fixture(scope="module")
def acdc_raw(predictor: SlicePredictor, acdc_dir: Path) -> list[tuple[CineStudy, dict[int, np.ndarray]]]:
    """Validation patients with the model's ED/ES labels before post-processing (predicted once)."""
    _, val = split_patients(list_ssl4mis_patients(acdc_dir), 0.2, seed=0)  # the bundle's validation split
    raw = SlicePredictor(predictor.networks, crop_size=predictor.crop_size, tta=predictor.tta)
    out = []
    for pid in val:
        study = read_ssl4mis_study(acdc_dir, pid)
        assert study.ed_phase is not None and study.es_phase is not None
        out.append((study, raw.predict(study, [study.ed_phase, study.es_phase])))
    return out


@pytest.fixture(scope="module")
def acdc_rows(
    predictor: SlicePredictor, acdc_raw: list[tuple[CineStudy, dict[int, np.ndarray]]]
) -> Comparison:
    pp = predictor.postprocess or PostProcessor()
    rows = Comparison()
    for study, pred in acdc_raw:
        rows.extend(compare_study(study, {t: pp(lab) for t, lab in pred.items()}))
    return rows


@pytest.fixture(scope="module")
def sunnybrook_rows(predictor: SlicePredictor, sunnybrook_dir: Path) -> Comparison:
    return evaluate_sunnybrook(
        predictor, sunnybrook_dir, {"SCD0000101": "SC-HF-I-1", "SCD0000201": "SC-HF-I-2"}
    )


def _mean(rows: Comparison, key: str, *phases: str) -> float:
    """Mean of a metric key over the rows of the given phases (``ED``, ``ES``)."""
    return float(np.mean([r[key] for r in rows.metrics if r["phase_name"] in phases]))


def _ef_abs_error(rows: Comparison) -> float:
    return float(rows.summary()["indices"]["lv_ef_percent"]["mean_abs_error"])


def _lv_dice(rows: Comparison, study: str) -> dict[str, float]:
    return {r["phase_name"]: r["dice_lv"] for r in rows.metrics if r["study"] == study}


def test_acdc_validation_is_sane(acdc_rows: Comparison) -> None:
    """Floors well below the targets: the shipped model segments the held-out ACDC patients."""
    assert len(acdc_rows.indices) == 15
    assert _mean(acdc_rows, "dice_lv", "ED") > 0.90
    assert _mean(acdc_rows, "dice_lv", "ED", "ES") > 0.85
    assert _mean(acdc_rows, "dice_myo", "ED", "ES") > 0.75
    assert _mean(acdc_rows, "dice_rv", "ED", "ES") > 0.70
    assert _ef_abs_error(acdc_rows) < 8.0


def test_shipped_postprocessing_does_not_lower_dice(
    predictor: SlicePredictor, acdc_raw: list[tuple[CineStudy, dict[int, np.ndarray]]]
) -> None:
    """The recorded steps, applied to the validation predictions, lower no structure's mean Dice."""
    steps = PostprocessingChoice.load_steps(BUNDLE / "configs" / "postprocessing.json")
    assert predictor.postprocess is not None and list(predictor.postprocess.steps) == steps
    for value in (1, 2, 3):
        before, after = [], []
        for study, pred in acdc_raw:
            for t, lab in pred.items():
                ref = study.labels[t] == value
                before.append(dice_score(lab == value, ref))
                after.append(dice_score(predictor.postprocess(lab) == value, ref))
        assert np.mean(after) >= np.mean(before) - 1e-9, (value, np.mean(before), np.mean(after))


def test_sunnybrook_is_sane(sunnybrook_rows: Comparison) -> None:
    assert len(sunnybrook_rows.indices) == 2
    for row in sunnybrook_rows.indices:
        dice = _lv_dice(sunnybrook_rows, row["study"])
        assert dice["ED"] > 0.85 and dice["ES"] > 0.80
        assert abs(row["lv_ef_percent_error"]) < 8.0


def test_acdc_targets(acdc_rows: Comparison) -> None:
    """Measured at release: LV 0.942, MYO 0.894, RV 0.881 (the tightest margin), |EF error| 3.20."""
    assert _mean(acdc_rows, "dice_lv", "ED", "ES") >= 0.93
    assert _mean(acdc_rows, "dice_myo", "ED", "ES") >= 0.87
    assert _mean(acdc_rows, "dice_rv", "ED", "ES") >= 0.88
    assert _ef_abs_error(acdc_rows) <= 4.0


def test_sunnybrook_targets(sunnybrook_rows: Comparison) -> None:
    """Measured at release: LV Dice 0.932/0.907 and 0.946/0.939 (ED/ES), EF error +0.4 and -1.9 points."""
    for row in sunnybrook_rows.indices:
        dice = _lv_dice(sunnybrook_rows, row["study"])
        assert dice["ED"] >= 0.90 and dice["ES"] >= 0.90
        assert abs(row["lv_ef_percent_error"]) <= 5.0


@pytest.mark.parametrize(
    "change", ["rot90", "transpose", "pixels_2.3mm", "pixels_0.85mm"], ids=lambda c: str(c)
)
def test_robust_to_orientation_and_pixel_size(sunnybrook_dir: Path, change: str) -> None:
    """Sunnybrook SC-HF-I-1 turned in plane or resampled (another protocol): LV Dice vs expert holds.

    The study is given without its affine (no geometry to undo the change), so the model sees rotated or
    transposed hearts, or 2.3 / 0.85 mm pixels; the expert contours get the same change.
    """
    from dataclasses import replace

    from scipy import ndimage

    from cardiacseg.io.sunnybrook import read_sunnybrook_study

    expert = read_sunnybrook_study(
        sunnybrook_dir / "dicoms" / "SCD0000101", sunnybrook_dir / "contourfiles" / "SC-HF-I-1"
    )
    assert expert.spacing_mm is not None and expert.ed_phase is not None and expert.es_phase is not None
    phases = [expert.ed_phase, expert.es_phase]
    if change in ("rot90", "transpose"):

        def turn(a: np.ndarray) -> np.ndarray:
            return np.rot90(a, 1, axes=(-2, -1)) if change == "rot90" else np.swapaxes(a, -1, -2)

        image, spacing = turn(expert.image), expert.spacing_mm
        labels = {t: turn(expert.labels[t]) for t in phases}
    else:
        zoom = expert.spacing_mm[1] / float(change.split("_")[1].removesuffix("mm"))
        image = ndimage.zoom(expert.image, (1, 1, zoom, zoom), order=1)
        labels = {t: ndimage.zoom(expert.labels[t], (1, zoom, zoom), order=0) for t in phases}
        spacing = (expert.spacing_mm[0], expert.spacing_mm[1] / zoom, expert.spacing_mm[2] / zoom)
    study = replace(
        expert,
        image=np.ascontiguousarray(image, dtype=np.float32),
        spacing_mm=spacing,
        affine=None,
        labels={},
        annotated_slices={},
    )
    predicted = SlicePredictor.from_bundle(BUNDLE, tta="none").predict(study, phases)
    for t in phases:
        z = list(expert.annotated_slices[t])
        assert dice_score(predicted[t][z] == 1, np.asarray(labels[t])[z] == 1) > 0.88, (change, t)
