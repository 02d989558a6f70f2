"""Slice-range targets: hand-built stacks with known classes, both stack orders, and ACDC checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardiacseg.data.datalist import acdc_group
from cardiacseg.data.slice_range import (
    UNDETERMINED,
    patient_folds,
    slice_context,
    slice_range_items,
    slice_range_labels,
    stack_direction,
)
from cardiacseg.enums import SliceRange
from cardiacseg.io import list_ssl4mis_patients, read_ssl4mis_study

OAP, IN, OBS = int(SliceRange.OAP), int(SliceRange.IN), int(SliceRange.OBS)
N = 40


def _disc(r: float, cy: float = 20.0, cx: float = 20.0) -> np.ndarray:
    yy, xx = np.mgrid[:N, :N]
    return np.hypot(yy - cy, xx - cx) <= r


def _slice(lv_r: float = 0.0, myo_r: float = 0.0, rv_r: float = 0.0, open_ring: bool = False) -> np.ndarray:
    """LV disc (radius ``lv_r``) in a myocardial ring (out to ``myo_r``); RV disc (``rv_r``) on the left.

    ``open_ring`` keeps only the top quarter of the ring (blood pool opening into the atrium).
    """
    lab = np.zeros((N, N), np.uint8)
    if rv_r:
        lab[_disc(rv_r, cx=20 - myo_r - rv_r)] = 3
    ring = _disc(myo_r) & ~_disc(lv_r)
    if open_ring:
        ring &= np.mgrid[:N, :N][0] < 20 - lv_r / 2
    lab[ring] = 2
    if lv_r:
        lab[_disc(lv_r)] = 1
    return lab


def _crescent() -> np.ndarray:
    lab = np.zeros((N, N), np.uint8)
    lab[(_disc(9) & ~_disc(6)) & (np.mgrid[:N, :N][1] > 24)] = 2  # lateral basal crescent, no blood pool
    return lab


# base first: atrium crescent, basal ring with a large RV, mid slices, apical ring, cap, beyond the apex
BASE_FIRST = np.stack(
    [
        _crescent(),
        _slice(7, 10, 8),
        _slice(7, 10, 6),
        _slice(6, 9, 4),
        _slice(4, 8, 2),
        _slice(2, 7),
        _slice(0, 5),
        np.zeros((N, N), np.uint8),
    ]
)
EXPECTED_BASE_FIRST = [OBS, IN, IN, IN, IN, IN, OAP, OAP]


def test_synthetic_stack_both_orders_give_mirrored_classes() -> None:
    out = slice_range_labels(BASE_FIRST)
    assert out.classes.tolist() == EXPECTED_BASE_FIRST
    assert (out.apex_to_base, out.ambiguous, out.gaps) == (-1, False, ())
    flipped = slice_range_labels(BASE_FIRST[::-1])
    assert flipped.classes.tolist() == EXPECTED_BASE_FIRST[::-1]
    assert (flipped.apex_to_base, flipped.ambiguous) == (1, False)
    direction = stack_direction(BASE_FIRST)
    assert all(v < 0 for v in direction.cues.values()), direction.cues


def test_open_ring_at_the_base_is_obs_not_in() -> None:
    stack = BASE_FIRST.copy()
    stack[0] = _slice(7, 10, 8, open_ring=True)  # blood pool with a quarter ring: < half surrounded
    assert slice_range_labels(stack, -1).classes.tolist() == EXPECTED_BASE_FIRST
    assert slice_range_labels(stack, -1, min_coverage=0.0).classes[0] == IN


def test_stack_without_oap_or_obs_slices_is_all_in() -> None:
    stack = np.stack([_slice(7, 10, 8), _slice(7, 10, 6), _slice(5, 8, 4), _slice(3, 6, 2)])
    out = slice_range_labels(stack)
    assert out.classes.tolist() == [IN] * 4 and out.apex_to_base == -1


def test_es_apex_vanishes_with_the_direction_pooled_over_phases() -> None:
    ed = BASE_FIRST.copy()
    ed[6] = _slice(2, 6)  # at ED the cavity still shows one slice further down
    es = BASE_FIRST.copy()
    es[1] = _slice(0, 0, 8)  # at ES the base has moved down: no LV in the first ring slice
    direction = stack_direction([ed, es])
    assert direction.apex_to_base == -1 and not direction.ambiguous
    assert slice_range_labels(ed, direction).classes.tolist() == [OBS, IN, IN, IN, IN, IN, IN, OAP]
    assert slice_range_labels(es, direction).classes.tolist() == [OBS, OBS, IN, IN, IN, IN, OAP, OAP]


def test_missing_lv_inside_the_range_stays_in_and_is_reported() -> None:
    stack = BASE_FIRST.copy()
    stack[3] = _slice(0, 0, 4)  # RV only: an annotation gap between LV slices
    out = slice_range_labels(stack, -1)
    assert out.classes.tolist() == EXPECTED_BASE_FIRST and out.gaps == (3,)


def test_rv_outweighs_an_lv_that_widens_to_the_apex_and_is_flagged() -> None:
    # apical aneurysm: the LV cavity grows towards the apex while the RV is basal (ACDC patient047)
    stack = np.stack([_slice(4, 9, 9), _slice(5, 9, 8), _slice(6, 9, 5), _slice(7, 9, 2), _slice(8, 10)])
    d = stack_direction(stack)
    assert d.apex_to_base == -1 and d.ambiguous and "disagree" in d.reason


def test_without_evidence_the_fallback_is_used_and_flagged() -> None:
    stack = np.zeros((5, N, N), np.uint8)
    stack[2] = _slice(5, 8)
    d = stack_direction(stack, fallback=1)
    assert (d.apex_to_base, d.ambiguous) == (1, True)
    out = slice_range_labels(stack)
    assert out.classes.tolist() == [OBS, OBS, IN, OAP, OAP] and out.ambiguous


def test_stack_without_valid_lv_is_undetermined() -> None:
    stack = np.stack([_slice(0, 6, 6), _slice(0, 5, 4), _slice(0, 4, 2)])
    out = slice_range_labels(stack)
    assert (out.classes == UNDETERMINED).all() and out.ambiguous


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="Z, Y, X"):
        slice_range_labels(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="apex_to_base"):
        slice_range_labels(BASE_FIRST, 0)
    with pytest.raises(ValueError, match="slice counts"):
        stack_direction([BASE_FIRST, BASE_FIRST[:3]])
    with pytest.raises(ValueError):
        slice_context(np.zeros((3, 2)), 3, 1, -1)


def test_context_is_ordered_apex_to_base_with_edges_replicated() -> None:
    stack = np.arange(5)[:, None] * np.ones((5, 2))
    assert slice_context(stack, 2, 1, 1)[:, 0].tolist() == [1, 2, 3]  # slice 0 apical
    assert slice_context(stack, 2, 1, -1)[:, 0].tolist() == [3, 2, 1]  # slice 0 basal
    assert slice_context(stack, 0, 2, -1)[:, 0].tolist() == [2, 1, 0, 0, 0]
    assert slice_context(stack, 4, 1, 1)[:, 0].tolist() == [3, 4, 4]
    assert slice_context(stack, 4, 0, 1).shape == (1, 2)


def test_patient_folds_partition_stratified_by_group() -> None:
    ids = [f"patient{i:03d}" for i in range(1, 101) if i % 4]  # 75 ids, as in the ACDC copy
    folds = patient_folds(ids, n_folds=5, seed=1)
    vals = [set(v) for _, v in folds]
    assert set().union(*vals) == set(ids) and sum(map(len, vals)) == len(ids)
    for train, val in folds:
        assert not set(train) & set(val)
        counts = [sum(acdc_group(p) == g for p in val) for g in ("DCM", "HCM", "MINF", "NOR", "RV")]
        assert min(counts) >= 2 and max(counts) <= 4, counts


def test_acdc_every_stack_has_a_direction_and_one_contiguous_in_range(acdc_dir: Path) -> None:
    counts = {"ED": np.zeros(3, int), "ES": np.zeros(3, int)}
    ambiguous = []
    for pid in list_ssl4mis_patients(acdc_dir):
        study = read_ssl4mis_study(acdc_dir, pid)
        direction = stack_direction([study.labels[0], study.labels[1]])
        # ACDC stacks are stored base first (slice 0 basal), which the anatomy must recover
        assert direction.apex_to_base == -1, (pid, direction)
        ambiguous += [pid] if direction.ambiguous else []
        for t, ph in ((study.ed_phase, "ED"), (study.es_phase, "ES")):
            assert t is not None
            out = slice_range_labels(study.labels[t], direction)
            seq = out.classes.tolist()
            assert UNDETERMINED not in seq and IN in seq, (pid, ph, seq)
            # base first: OBS* IN+ OAP*, i.e. non-increasing class along the stack and one IN run
            assert seq == sorted(seq, reverse=True), (pid, ph, seq)
            counts[ph] += np.bincount(out.classes, minlength=3)
    assert len(ambiguous) <= 3, ambiguous
    ed, es = counts["ED"], counts["ES"]
    # IN dominates (ACDC stacks cover the LV); at ES the base descends and the apical cavity closes, so
    # more slices fall outside the range than at ED
    assert ed[IN] / ed.sum() > 0.9 and es[IN] / es.sum() > 0.8
    assert ed[OAP] + ed[OBS] < es[OAP] + es[OBS] and es[OAP] > 0 and es[OBS] > 0


def test_acdc_items_crop_the_heart_without_labels(acdc_dir: Path) -> None:
    pids = ["patient001", "patient047"]
    items = slice_range_items(acdc_dir, pids, crop_size=160, context=1)
    for pid in pids:
        study = read_ssl4mis_study(acdc_dir, pid)
        mine = [d for d in items if d["patient"] == pid]
        assert len(mine) == 2 * study.n_slices
        cx, cy = mine[0]["centre"]
        lab_rows, lab_cols = np.nonzero((study.labels[0] > 0).any(axis=0) | (study.labels[1] > 0).any(axis=0))
        # the label-free crop holds every labelled pixel
        assert lab_cols.min() >= cx - 80 and lab_cols.max() < cx + 80, (pid, cx)
        assert lab_rows.min() >= cy - 80 and lab_rows.max() < cy + 80, (pid, cy)
        for d in mine:
            t = study.ed_phase if d["phase"] == "ED" else study.es_phase
            assert d["image"].shape == (3, 160, 160) and d["image"].dtype == np.float32
            expected = slice_range_labels(study.labels[t], -1).classes[d["slice"]]
            assert d["label"] == expected
        # channel 0 is the apical neighbour: ACDC is base first, so it is the next slice's centre channel
        ed = [d for d in mine if d["phase"] == "ED"]
        assert np.array_equal(ed[3]["image"][0], ed[4]["image"][1])
        assert np.array_equal(ed[3]["image"][2], ed[2]["image"][1])
        assert np.array_equal(ed[0]["image"][2], ed[0]["image"][1])  # basal edge replicated
