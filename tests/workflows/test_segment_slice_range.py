"""`segment_study(slice_range="classifier")`: the classifier's IN slices are the ones counted.

The classifier here is an oracle that returns the classes derived from the expert labels by the data rule
(:func:`cardiacseg.data.slice_range.slice_range_labels`), so the expected numbers are computed by hand
from the written label maps and those classes, independently of the workflow's code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cardiacseg.data.slice_range import slice_range_labels, stack_direction
from cardiacseg.demo import shipped_bundle_path
from cardiacseg.inferers import SlicePredictor
from cardiacseg.inferers.slice_range import SliceRangeClassifier, SliceRangePrediction
from cardiacseg.io.ssl4mis import read_ssl4mis_study
from cardiacseg.io.study import CineStudy
from cardiacseg.workflows.segment import segment_study, slice_range_mode

NAMES = ("OAP", "IN", "OBS")


class _Oracle(SliceRangeClassifier):
    """Returns fixed classes per phase (no network)."""

    def __init__(self, classes: dict[int, np.ndarray]) -> None:
        self.classes = classes
        self.bundle_dir = None
        self.weights_file = None

    def predict_study(
        self, study: CineStudy, phases: Sequence[int] | None = None
    ) -> dict[int, SliceRangePrediction]:
        out = {}
        for t, cls in self.classes.items():
            probs = np.eye(3, dtype=np.float32)[cls]
            out[t] = SliceRangePrediction(cls, probs, cls, -1, (0.0, 0.0))
        return out


def test_slice_range_mode() -> None:
    assert [slice_range_mode(v) for v in (False, True, "all", "classifier")] == [
        "all",
        "segmentation",
        "all",
        "classifier",
    ]
    with pytest.raises(ValueError, match="slice_range must be one of"):
        slice_range_mode("apex")


def test_classifier_needs_a_classifier(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a slice_classifier"):
        segment_study(tmp_path / "none", tmp_path / "out", None, slice_range="classifier")  # type: ignore[arg-type]


def test_classifier_in_slices_are_counted(acdc_dir: Path, tmp_path: Path) -> None:
    study = read_ssl4mis_study(acdc_dir, "patient024")
    assert study.ed_phase is not None and study.es_phase is not None
    direction = stack_direction([study.labels[study.ed_phase], study.labels[study.es_phase]])
    classes = {
        t: slice_range_labels(study.labels[t], apex_to_base=direction.apex_to_base).classes.astype(np.int64)
        for t in range(study.n_phases)
    }
    assert any((c != 1).any() for c in classes.values()), "patient024 has no OAP/OBS slice to drop"
    predictor = SlicePredictor.from_bundle(shipped_bundle_path(), tta="none")
    report = segment_study(
        study,
        tmp_path / "out",
        predictor,
        slice_range="classifier",
        slice_classifier=_Oracle(classes),
        figures=False,
    )
    labels = np.asarray(nib.load(tmp_path / "out" / "labels.nii.gz").dataobj)  # (X, Y, Z, T) as written
    labels = np.transpose(labels, (3, 2, 1, 0))  # (T, Z, Y, X)
    ed, es = report["indices"]["ed_phase"], report["indices"]["es_phase"]

    def lv_in(t: int) -> int:  # LV voxels on the oracle's IN slices, by hand
        keep = classes[t] == 1
        return int((labels[t][keep] == 1).sum())

    ef = 100.0 * (lv_in(ed) - lv_in(es)) / lv_in(ed)
    assert report["indices"]["lv_ef_percent"] == pytest.approx(ef, abs=1e-6)
    assert report["slice_range_mode"] == "classifier"
    for t, cls in classes.items():
        dropped = report["slices_excluded"][str(t)]
        assert [d["slice"] for d in dropped] == [int(z) for z in np.flatnonzero(cls != 1)]
        for d in dropped:
            assert d["reason"].startswith(f"classifier: {NAMES[cls[d['slice']]]}")
        assert report["slice_classes"][str(t)] == [NAMES[c] for c in cls]
    assert json.loads((tmp_path / "out" / "report.json").read_text())["model"]["slice_range"].startswith(
        "slice-range classifier"
    )
