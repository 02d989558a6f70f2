from __future__ import annotations

from pathlib import Path

import pytest

from cardiacseg.io import DsbFormatError, read_dsb_dimensions, read_dsb_volumes

pytestmark = pytest.mark.realdata


def test_dsb_volume_formats(shared_data: Path) -> None:
    root = shared_data / "kaggle_dsb_truth"
    train = read_dsb_volumes(root / "train.csv")
    assert len(train) == 500
    assert (train[1].systole_ml, train[1].diastole_ml) == (108.3, 246.7)  # first data row, read by eye
    assert train[1].ef_percent == pytest.approx(100 * (246.7 - 108.3) / 246.7)
    solution = read_dsb_volumes(root / "solution.csv")
    assert len(solution) == 440
    assert (solution[1000].systole_ml, solution[1000].diastole_ml) == (38.1, 113.1)
    assert len(read_dsb_volumes(root / "validate.csv")) == 200
    dims = read_dsb_dimensions(root / "patient_dimensions.tsv")
    assert dims["983"].pixel_spacing_x_mm == 1.40625 and dims["853"].slice_spacing_mm == 10.02
    assert dims["721_a"].scale_factor == pytest.approx(0.6153846153846154) and dims["721_b"].x == 192


def test_bad_csv(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DsbFormatError, match=r"x\.csv"):
        read_dsb_volumes(bad)
