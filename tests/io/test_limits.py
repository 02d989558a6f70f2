from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardiacseg.io import read_nifti_study, write_nifti
from cardiacseg.io.limits import (
    DEFAULT_MAX_ARRAY_BYTES,
    InputTooLargeError,
    check_allocation,
    max_array_bytes,
)


def test_budget_from_environment_capped_by_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDIACSEG_MAX_ARRAY_GB", "0.5")
    assert max_array_bytes() == min(512 * 1024**2, max_array_bytes())  # never above what was asked
    assert max_array_bytes() <= 512 * 1024**2
    monkeypatch.delenv("CARDIACSEG_MAX_ARRAY_GB")
    assert max_array_bytes() <= DEFAULT_MAX_ARRAY_BYTES
    for bad in ("0", "-1", "lots"):
        monkeypatch.setenv("CARDIACSEG_MAX_ARRAY_GB", bad)
        with pytest.raises(ValueError, match="CARDIACSEG_MAX_ARRAY_GB"):
            max_array_bytes()


def test_check_allocation_names_the_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDIACSEG_MAX_ARRAY_GB", "0.001")  # int(0.001 * 1024**3) = 1,073,741 bytes
    check_allocation(1_073_741, "cine array", "study/")
    with pytest.raises(InputTooLargeError, match=r"^study/: cine array needs 0\.0 GiB"):
        check_allocation(1_073_742, "cine array", "study/")
    with pytest.raises(InputTooLargeError, match="study/"):
        check_allocation(-1, "cine array", "study/")
    assert issubclass(InputTooLargeError, ValueError)


def test_nifti_reader_respects_the_budget(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A (20, 12, 64, 64) cine is 3.75 MiB as float32: read under a 4 MiB budget, refused under 2 MiB."""
    p = write_nifti(tmp_path / "cine.nii", np.ones((20, 12, 64, 64), np.int16), spacing_mm=(8.0, 1.5, 1.5))
    assert 20 * 12 * 64 * 64 * 4 == 3932160
    monkeypatch.setenv("CARDIACSEG_MAX_ARRAY_GB", str(4 / 1024))
    assert read_nifti_study(p).image.shape == (20, 12, 64, 64)
    monkeypatch.setenv("CARDIACSEG_MAX_ARRAY_GB", str(2 / 1024))
    with pytest.raises(InputTooLargeError, match=r"cine\.nii: image of NIfTI shape \(64, 64, 12, 20\)"):
        read_nifti_study(p)
