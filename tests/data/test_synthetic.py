from __future__ import annotations

import math

import pytest

from cardiacseg.data.synthetic import make_cine_phantom


def test_truth_is_analytic() -> None:
    _, truth = make_cine_phantom(
        n_phases=4, n_slices=1, spacing_mm=(10.0, 1.0, 1.0), lv_radius_mm=20.0, lv_contraction=0.5
    )
    # single basal slice: LV ellipse 20 x 17 mm at ED, radii halved at ES (phase 2)
    assert truth.lv_ml[0] == pytest.approx(math.pi * 20 * 17 * 10 / 1000)
    assert truth.lv_ml[2] == pytest.approx(math.pi * 10 * 8.5 * 10 / 1000)
    assert truth.lv_ef_percent == pytest.approx(75.0)
    assert truth.myo_ml[0] == pytest.approx(truth.myo_ml[2])


def test_reproducible_and_validated() -> None:
    a, _ = make_cine_phantom(n_phases=2, n_slices=2, seed=4)
    b, _ = make_cine_phantom(n_phases=2, n_slices=2, seed=4)
    assert (a.image == b.image).all()
    with pytest.raises(ValueError, match="even"):
        make_cine_phantom(n_phases=3)
    with pytest.raises(ValueError, match="field of view"):
        make_cine_phantom(shape=(40, 40))
