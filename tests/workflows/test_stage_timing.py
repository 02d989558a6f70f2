"""Per-stage timing of a study's segmentation (issue 21's per-stage table): every stage of a real study is
timed, the stages never overlap (their sum stays below the wall time measured outside), and nothing is
recorded unless asked."""

from __future__ import annotations

import time
from pathlib import Path

from cardiacseg.utils.timing import _ACTIVE, record_stages, stage

STAGES = {"read", "resample/crop", "network", "inverse", "post-processing", "write"}


def test_every_stage_of_a_real_study_is_timed_once(tmp_path: Path) -> None:
    from cardiacseg.demo import demo_study_path, shipped_bundle_path
    from cardiacseg.inferers import SlicePredictor
    from cardiacseg.workflows import segment_study

    predictor = SlicePredictor.from_bundle(shipped_bundle_path(), tta="none")
    with record_stages() as times:
        start = time.perf_counter()
        segment_study(demo_study_path(), tmp_path / "out", predictor, figures=False)
        wall = time.perf_counter() - start
    assert set(times.seconds) == STAGES
    assert all(s > 0 for s in times.seconds.values())
    assert sum(times.seconds.values()) <= wall  # no stage is counted twice
    assert _ACTIVE.get() is None  # recording ends with the block


def test_stage_records_nothing_unless_asked() -> None:
    with stage("read"):
        pass
    with record_stages() as outer:
        with stage("network"):
            time.sleep(0.01)
    assert list(outer.seconds) == ["network"] and outer.seconds["network"] >= 0.01
