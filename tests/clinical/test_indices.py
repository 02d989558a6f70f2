from __future__ import annotations

import numpy as np
import pytest

from cardiacseg.clinical import compute_cardiac_indices, compute_label_volumes, detect_ed_es, per_slice_table
from cardiacseg.data.synthetic import make_cine_phantom


@pytest.mark.parametrize("spacing", [(8.0, 1.0, 1.0), (10.0, 1.25, 1.4)])
def test_phantom_volumes_within_one_percent(spacing: tuple[float, float, float]) -> None:
    study, truth = make_cine_phantom(n_phases=12, n_slices=9, shape=(200, 180), spacing_mm=spacing, seed=3)
    idx = compute_cardiac_indices(study)
    assert (idx.ed_phase, idx.es_phase, idx.ed_es_source) == (truth.ed_phase, truth.es_phase, "detected")
    for p in idx.per_phase:
        assert p.lv_ml == pytest.approx(truth.lv_ml[p.phase], rel=0.01)
        assert p.myo_ml == pytest.approx(truth.myo_ml[p.phase], rel=0.01)
        assert p.rv_ml == pytest.approx(truth.rv_ml[p.phase], rel=0.01)
    assert idx.lv_edv_ml == pytest.approx(truth.lv_ml[truth.ed_phase], rel=0.01)
    assert idx.lv_esv_ml == pytest.approx(truth.lv_ml[truth.es_phase], rel=0.01)
    assert idx.lv_ef_percent == pytest.approx(truth.lv_ef_percent, abs=0.5)
    assert idx.rv_ef_percent == pytest.approx(truth.rv_ef_percent, abs=0.5)
    assert idx.lv_mass_g == pytest.approx(truth.lv_mass_g, rel=0.01)
    assert idx.lv_sv_ml == pytest.approx(idx.lv_edv_ml - idx.lv_esv_ml)


def test_unknown_spacing_reports_volumes_unavailable_but_ef() -> None:
    study, truth = make_cine_phantom(n_phases=8, n_slices=6)
    with_spacing = compute_cardiac_indices(study)
    labels = dict(study.labels)
    idx = compute_cardiac_indices(labels, spacing_mm=None)
    assert idx.volumes_available is False
    for key in ("lv_edv_ml", "lv_esv_ml", "lv_sv_ml", "lv_mass_g", "rv_edv_ml", "rv_esv_ml", "rv_sv_ml"):
        assert getattr(idx, key) is None and "spacing" in idx.unavailable[key]
    assert idx.lv_ef_percent == pytest.approx(with_spacing.lv_ef_percent)
    assert idx.lv_ef_percent == pytest.approx(truth.lv_ef_percent, abs=0.5)
    assert all(p.lv_ml is None and p.lv_voxels > 0 for p in idx.per_phase)


def test_hand_computed_example() -> None:
    ed = np.zeros((2, 10, 10), np.uint8)
    ed[:, 0:4, 0:5] = 1  # 20 px per slice LV
    ed[:, 5:7, 0:5] = 2  # 10 px MYO
    ed[0, 8:10, 0:3] = 3  # 6 px RV
    es = np.zeros_like(ed)
    es[:, 0:2, 0:5] = 1  # 10 px LV
    es[0, 8, 0:3] = 3  # 3 px RV
    idx = compute_cardiac_indices({4: ed, 9: es}, spacing_mm=(10.0, 2.0, 1.0), ed_phase=4, es_phase=9)
    # voxel = 20 mm^3 = 0.02 mL; EDV = 40 vox = 0.8 mL; ESV = 20 vox = 0.4 mL
    assert idx.lv_edv_ml == pytest.approx(0.8) and idx.lv_esv_ml == pytest.approx(0.4)
    assert idx.lv_ef_percent == pytest.approx(50.0)
    assert idx.lv_mass_g == pytest.approx(20 * 0.02 * 1.05)
    assert idx.rv_edv_ml == pytest.approx(0.12) and idx.rv_ef_percent == pytest.approx(50.0)
    assert compute_label_volumes(ed, None)["lv_ml"] is None


def test_detection_and_errors() -> None:
    a = np.ones((1, 3, 3), np.uint8)
    b = a.copy()
    b[0, 0] = 0
    assert detect_ed_es({2: b, 5: a, 7: b * 0 + (np.arange(9).reshape(1, 3, 3) < 2)}) == (5, 7)
    with pytest.raises(ValueError, match="at least two"):
        detect_ed_es({0: a})
    with pytest.raises(ValueError, match="no label map"):
        compute_cardiac_indices({0: a, 1: b}, ed_phase=0, es_phase=3)
    with pytest.raises(ValueError, match="no label maps"):
        compute_cardiac_indices({})


def test_per_slice_table_sums_to_volume() -> None:
    study, _ = make_cine_phantom(n_phases=4, n_slices=5)
    idx = compute_cardiac_indices(study)
    from dataclasses import replace

    study = replace(study, ed_phase=idx.ed_phase, es_phase=idx.es_phase)
    rows = per_slice_table(study)
    assert len(rows) == 2 * study.n_slices
    ed_rows = [r for r in rows if r["phase_name"] == "ED"]
    assert sum(r["lv_ml"] for r in ed_rows) == pytest.approx(idx.lv_edv_ml)  # type: ignore[misc]
    assert [r["slice"] for r in ed_rows] == list(range(study.n_slices))


def test_rv_end_systole_is_the_rvs_own_smallest_volume() -> None:
    """Three phases: LV smallest at phase 2, RV smallest at phase 1; volumes counted by hand."""
    import numpy as np

    from cardiacseg.clinical.indices import compute_cardiac_indices

    def phase(lv: int, rv: int) -> np.ndarray:
        lab = np.zeros((1, 10, 10), np.uint8)
        lab.reshape(-1)[:lv] = 1
        lab.reshape(-1)[50 : 50 + rv] = 3
        return lab

    labels = {0: phase(40, 30), 1: phase(30, 10), 2: phase(20, 15)}
    idx = compute_cardiac_indices(labels, spacing_mm=(10.0, 1.0, 1.0))  # 10 mm^3 = 0.01 mL per voxel
    assert (idx.ed_phase, idx.es_phase, idx.rv_es_phase) == (0, 2, 1)
    assert idx.lv_ef_percent == 50.0
    assert idx.rv_esv_ml == 0.1 and idx.rv_edv_ml == 0.3
    assert idx.rv_ef_percent == 100 * (30 - 10) / 30
    # only ED and ES labelled (ACDC): the RV's ES is the LV's
    two = compute_cardiac_indices({0: phase(40, 30), 2: phase(20, 15)}, spacing_mm=(10.0, 1.0, 1.0))
    assert two.rv_es_phase == 2 and two.rv_ef_percent == 50.0
