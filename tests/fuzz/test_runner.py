"""The fuzz oracle itself: a hang, a runaway allocation, a crash, an unnamed error and a changed input are
each classified as such (the child inherits a patched ``cardiacseg.cli.main``)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from cardiacseg import cli
from tests.conftest import SHARED_DATA
from tests.fuzz.generators import Sources, make_cases
from tests.fuzz.runner import run_case

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def sources() -> Sources:
    src = Sources(SHARED_DATA)
    if src.missing():
        pytest.skip(f"real data not available: {[str(p) for p in src.missing()]}")
    return src


def _dicom_control(sources: Sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, main: object) -> str:
    case = make_cases(1, 0)[0]
    assert (case.family, case.kind) == ("dicom", "control")
    monkeypatch.setattr(cli, "main", main)
    r = run_case(case, tmp_path / "w", sources, None, timeout_s=3.0)
    return f"{r.outcome}: {r.message}"


def test_unpatched_control_is_ok(sources: Sources, tmp_path: Path) -> None:
    r = run_case(make_cases(1, 0)[0], tmp_path / "w", sources, None)
    assert r.outcome == "ok", r.message
    assert r.rss_mb > 0 and r.seconds > 0


def test_hang(sources: Sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t0 = time.perf_counter()
    assert _dicom_control(sources, tmp_path, monkeypatch, lambda argv: time.sleep(30)).startswith("hang")
    assert time.perf_counter() - t0 < 15


def test_runaway_allocation(sources: Sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def grab(argv: Sequence[str]) -> int:
        np.ones(8 << 30, np.uint8)  # over the 6 GB address-space cap
        return 0

    assert _dicom_control(sources, tmp_path, monkeypatch, grab).startswith("oom")


def test_crash_and_unexpected_exception(
    sources: Sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _dicom_control(
        sources, tmp_path / "a", monkeypatch, lambda argv: os.kill(os.getpid(), signal.SIGKILL)
    ).startswith("traceback: child died with signal")

    def key_error(argv: Sequence[str]) -> int:
        raise KeyError("Rows")

    assert _dicom_control(sources, tmp_path / "b", monkeypatch, key_error).startswith("traceback: KeyError")


def test_error_must_name_the_input(sources: Sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unnamed(argv: Sequence[str]) -> int:
        raise ValueError("could not convert string to float: 'abc'")

    def named(argv: Sequence[str]) -> int:
        raise ValueError(f"{argv[1]}: PixelSpacing 'abc' is not a number")

    assert _dicom_control(sources, tmp_path / "a", monkeypatch, unnamed).startswith("traceback")
    assert _dicom_control(sources, tmp_path / "b", monkeypatch, named).startswith("refused")


def test_changed_input(sources: Sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def touch(argv: Sequence[str]) -> int:
        f = sorted(Path(argv[1]).glob("*.dcm"))[0]
        f.write_bytes(f.read_bytes()[:-1])
        return 1

    assert _dicom_control(sources, tmp_path, monkeypatch, touch).startswith("input changed")
