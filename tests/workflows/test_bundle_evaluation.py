"""Predictor evaluation (cardiacseg.workflows.bundle_evaluation) and the bundle's evaluate.json wiring."""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from cardiacseg.io.study import CineStudy
from cardiacseg.typing import LabelArray
from cardiacseg.workflows import bundle_evaluation
from cardiacseg.workflows.bundle_evaluation import evaluation_outputs, write_evaluation
from tests.conftest import independent_sunnybrook_volumes

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "cardiacseg" / "cardiac_cine_seg"
CONFIGS = BUNDLE / "configs"


class OraclePredictor:
    """Predicts each study's own expert labels: every score is known without the code under test."""

    postprocess = None

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, study: CineStudy, phases: Sequence[int] | None = None) -> dict[int, LabelArray]:
        self.calls += 1
        return {t: study.labels[t].copy() for t in (phases or sorted(study.labels))}


def test_evaluate_json_resolves_to_the_workflow(tmp_path: Path) -> None:
    """train.json + evaluate.json parse; `run` names functions that exist and accept the wired arguments."""
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")])
    parser["bundle_root"] = str(BUNDLE)
    parser["output_dir"] = str(tmp_path / "eval")
    parser.parse()
    assert parser.get_parsed_content("overwrite") is False
    assert parser.get_parsed_content("output_dir") == str(tmp_path / "eval")
    assert parser.get_parsed_content("sunnybrook_patients") == {
        "SCD0000101": "SC-HF-I-1",
        "SCD0000201": "SC-HF-I-2",
    }
    run = parser["run"]
    assert not any("engines.evaluation" in line for line in [*parser["imports"], *run])
    assert parser.get_parsed_content("run#0") is None  # the early output check, on an empty folder
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "evaluation.json").write_text("{}")
    with pytest.raises(RuntimeError) as refused:  # MONAI wraps what an expression raises
        parser.get_parsed_content("run#0", lazy=False)
    assert isinstance(refused.value.__cause__, FileExistsError)
    assert "evaluation.json" in str(refused.value.__cause__)
    call = re.fullmatch(r"\$cardiacseg\.workflows\.bundle_evaluation\.(\w+)\((.*)\)", run[-1])
    assert call is not None
    args = [a.strip() for a in call.group(2).split(",")]
    inspect.signature(getattr(bundle_evaluation, call.group(1))).bind(*args)
    for ref in args:
        assert ref.startswith("@") and ref[1:] in parser  # every wired id exists in the merged config


def test_oracle_predictor_scores_perfectly_on_real_data(
    acdc_dir: Path, sunnybrook_dir: Path, tmp_path: Path
) -> None:
    """Expert labels as predictions: Dice 1, EF error 0, NaN for the RV Sunnybrook does not contour."""
    oracle = OraclePredictor()
    out = tmp_path / "eval"
    result = write_evaluation(  # type: ignore[arg-type]
        oracle, acdc_dir, ["patient004"], sunnybrook_dir, {"SCD0000101": "SC-HF-I-1"}, out
    )
    assert all(p.exists() for p in evaluation_outputs(out) if p.name != "bland_altman.png")
    acdc, sb = result["acdc"], result["sunnybrook"]
    assert [r["study"] for r in acdc["indices"]] == ["patient004"]
    assert [r["phase_name"] for r in acdc["metrics"]] == ["ED", "ES"]
    for row in acdc["metrics"]:
        assert row["dice_lv"] == row["dice_myo"] == row["dice_rv"] == 1.0
        assert row["hd95_lv_voxels"] == 0.0 and row["hd95_lv_mm"] is None  # SSL4MIS: no spacing
    assert acdc["indices"][0]["lv_ef_percent_error"] == 0.0 and acdc["indices"][0]["lv_edv_ml_ref"] is None

    (idx,) = sb["indices"]
    assert idx["study"] == "SC-HF-I-1" and idx["lv_ef_percent_error"] == 0.0
    truth = independent_sunnybrook_volumes(
        sunnybrook_dir / "dicoms" / "SCD0000101", sunnybrook_dir / "contourfiles" / "SC-HF-I-1"
    )
    assert idx["lv_ef_percent_ref"] == pytest.approx(truth["ef"], abs=0.01)
    assert idx["lv_edv_ml_ref"] == pytest.approx(truth["edv"], rel=1e-3)
    assert idx["rv_edv_ml_ref"] is None and idx["rv_ef_percent_error"] is None
    by_phase = {r["phase_name"]: r for r in sb["metrics"]}
    ed, es = by_phase["ED"], by_phase["ES"]
    assert ed["dice_lv"] == 1.0 and ed["dice_myo"] == 1.0 and ed["dice_rv"] is None
    assert es["dice_myo"] is None  # Sunnybrook has no epicardial contour at ES
    on_disk = json.loads((out / "evaluation.json").read_text())
    assert on_disk == result
    assert "| SC-HF-I-1 |" in (out / "evaluation.md").read_text()

    calls = oracle.calls
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_evaluation(oracle, acdc_dir, ["patient004"], None, None, out)  # type: ignore[arg-type]
    assert oracle.calls == calls  # refused before predicting anything
    again = write_evaluation(oracle, acdc_dir, ["patient004"], None, None, out, overwrite="true")  # type: ignore[arg-type]
    assert "sunnybrook" not in again


def test_shipped_model_through_the_bundle_evaluation(
    acdc_dir: Path, sunnybrook_dir: Path, tmp_path: Path
) -> None:
    """The real path end to end: shipped weights, one held-out ACDC patient and one Sunnybrook study."""
    from cardiacseg.inferers import SlicePredictor

    if not (BUNDLE / "models" / "model.pt").exists():
        pytest.skip("no shipped weights in this checkout")
    predictor = SlicePredictor.from_bundle(BUNDLE, tta="none")
    result = write_evaluation(
        predictor, acdc_dir, ["patient004"], sunnybrook_dir, {"SCD0000101": "SC-HF-I-1"}, tmp_path
    )
    for dataset in ("acdc", "sunnybrook"):
        dice = [r["dice_lv"] for r in result[dataset]["metrics"]]
        assert len(dice) == 2 and min(dice) > 0.85, (dataset, dice)
        assert abs(result[dataset]["indices"][0]["lv_ef_percent_error"]) < 8.0
    assert result["sunnybrook"]["indices"][0]["lv_edv_ml_pred"] > 0
    assert math.isfinite(result["acdc"]["summary"]["metrics"]["all"]["dice_rv"]["mean"])
