"""The shipped slice-range classifier bundle (cardiacseg/slice_range_classifier, issue 16).

* ``metadata.json`` passes ``python -m monai.bundle verify_metadata`` against the local schema;
* ``inference.json``'s ``predictor`` is what :meth:`SliceRangeClassifier.from_bundle` builds, with the
  shipped float16 weights; ``train.json`` and ``evaluate.json`` parse with MONAI's ``ConfigParser``;
* on real ACDC patients the shipped model separates the classes derived from the expert segmentations.
  The shipped model was trained on all 75 patients, so these are *seen* patients: a regression check of
  the weights and the input path, not a generalisation claim (that is the cross-validation of
  ``docs/benchmarks/slice_range_cv.md``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from cardiacseg.inferers.slice_range import SliceRangeClassifier

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "cardiacseg" / "slice_range_classifier"
SCHEMA = REPO / "cardiacseg" / "schemas" / "bundle_metadata.json"
META = BUNDLE / "configs" / "metadata.json"
INFERENCE = BUNDLE / "configs" / "inference.json"


def test_metadata_passes_verify_metadata_offline() -> None:
    pytest.importorskip("jsonschema", reason="jsonschema (test extra) is needed by verify_metadata")
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "verify_metadata",
            "--meta_file",
            str(META),
            "--filepath",
            str(SCHEMA),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "metadata is verified with no error" in ok.stdout + ok.stderr


def test_bundle_layout_and_symlink() -> None:
    for name in (
        "LICENSE",
        "docs/README.md",
        "configs/train.json",
        "configs/evaluate.json",
        "models/model.pt",
    ):
        assert (BUNDLE / name).is_file(), name
    assert (REPO / "bundles" / "slice_range_classifier").resolve() == BUNDLE.resolve()
    assert (BUNDLE / "models" / "model.pt").stat().st_size <= 30 * 2**20
    state = torch.load(BUNDLE / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())


def test_from_bundle_builds_the_configured_predictor() -> None:
    config = json.loads(INFERENCE.read_text())
    p = SliceRangeClassifier.from_bundle(BUNDLE)
    assert isinstance(p, SliceRangeClassifier) and p.bundle_dir == BUNDLE
    assert (p.crop_size, p.context, p.enforce_order) == (
        config["crop_size"],
        config["context"],
        config["enforce_order"],
    )
    assert (
        p.weights_file is not None and p.weights_file.resolve() == (BUNDLE / "models" / "model.pt").resolve()
    )
    state = torch.load(BUNDLE / "models" / "model.pt", map_location="cpu", weights_only=True)
    key = "head.3.weight"
    assert torch.equal(p.network.state_dict()[key].half(), state[key])
    q = SliceRangeClassifier.from_bundle(BUNDLE, enforce_order=False, batch_size=8)
    assert (q.enforce_order, q.batch_size) == (False, 8)


@pytest.mark.parametrize("name", ["train.json", "evaluate.json"])
def test_train_and_evaluate_configs_parse(name: str) -> None:
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / name))
    parser["bundle_root"] = str(BUNDLE)
    parser.parse()
    assert parser["network_def"]["name"] == "slice_classifier"
    assert parser["network_def"]["_target_"] == "cardiacseg.networks.get_network"
    assert parser["backbone"] == json.loads(INFERENCE.read_text())["backbone"]
    if name == "train.json":
        assert parser["oversample"] == 6.0 and parser["rotate_degrees"] == 45.0
        assert parser["mode"] == "feature_extraction"


def test_shipped_classifier_separates_expert_classes_on_acdc(acdc_dir: Path) -> None:
    """Three ACDC patients with OAP and OBS slices (ES); truth from the expert segmentations."""
    from cardiacseg.data.slice_range import slice_range_items
    from cardiacseg.io.ssl4mis import read_ssl4mis_study
    from cardiacseg.metrics.classification import classification_metrics

    clf = SliceRangeClassifier.from_bundle(BUNDLE)
    patients = ["patient001", "patient034", "patient061"]
    probs, pred, truth, stacks, zs = [], [], [], [], []
    for pid in patients:
        items = slice_range_items(acdc_dir, [pid])
        result = clf.predict_study(read_ssl4mis_study(acdc_dir, pid))
        for t, phase in enumerate(("ED", "ES")):
            phase_items = sorted((it for it in items if it["phase"] == phase), key=lambda it: it["slice"])
            assert len(phase_items) == len(result[t].classes)
            for it in phase_items:
                z = int(it["slice"])
                probs.append(result[t].probabilities[z])
                pred.append(int(result[t].classes[z]))
                truth.append(int(it["label"]))
                stacks.append(f"{pid}{phase}")
                zs.append(z)
    y = np.array(truth)
    assert {0, 1, 2} <= set(y.tolist())
    m = classification_metrics(np.array(probs), y, stacks, zs, pred=np.array(pred))
    majority = float((y == 1).mean())
    # the probabilities rank the classes (always-IN has AUC 0.5), IN slices are kept, and the ordered
    # labels are at most one slice off almost everywhere
    assert m.auc_weighted > 0.85
    assert m.recall[1] > 0.85
    assert m.soft_accuracy >= majority
    assert m.accuracy > majority  # 0.98 vs 0.90 when written (patients seen in training)
