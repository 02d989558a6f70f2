"""Post-processing steps on constructed masks with known answers, and the data-driven step choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardiacseg.enums import CardiacLabel
from cardiacseg.postprocess import (
    STEPS,
    PostProcessor,
    fill_holes,
    keep_largest_component_slice,
    keep_largest_component_volume,
    remove_rv_far_from_lv,
    remove_rv_without_lv,
    select_postprocessing,
)

LV, MYO, RV = int(CardiacLabel.LV), int(CardiacLabel.MYO), int(CardiacLabel.RV)


def _heart(z: int = 5, n: int = 64) -> np.ndarray:
    """A stack of ring-shaped hearts: LV disc r=8, MYO ring to r=12, RV crescent-like box beside."""
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - 32, xx - 32)
    sl = np.zeros((n, n), np.uint8)
    sl[r < 12] = MYO
    sl[r < 8] = LV
    sl[(yy > 24) & (yy < 40) & (xx > 10) & (xx < 19)] = RV
    return np.repeat(sl[None], z, axis=0)


def test_volume_lcc_removes_a_disconnected_blob_and_keeps_the_heart() -> None:
    lab = _heart()
    noisy = lab.copy()
    noisy[2, 2:5, 2:5] = LV  # not connected to the LV in 3D
    out = keep_largest_component_volume(noisy)
    np.testing.assert_array_equal(out, lab)
    assert (noisy[2, 2:5, 2:5] == LV).all(), "input modified"


def test_slice_lcc_removes_per_slice_blobs_that_3d_lcc_keeps() -> None:
    lab = _heart()
    noisy = lab.copy()
    # a blob that touches the heart's LV in 3D through slice 3 but is separate on slice 2
    noisy[1:4, 40:44, 28:32] = 0
    noisy[2, 50:54, 50:54] = MYO
    noisy[3, 50:54, 50:54] = MYO
    out = keep_largest_component_slice(noisy)
    assert not (out[2, 50:54, 50:54] == MYO).any()
    assert (out == MYO).sum() == (noisy == MYO).sum() - 32


def test_rv_without_lv_and_far_from_lv() -> None:
    lab = _heart(z=3)
    lab[0][(lab[0] == LV) | (lab[0] == MYO)] = 0  # slice 0: RV only (beyond the apex)
    lab[1, 55:60, 55:60] = RV  # far from the LV: nearest gap ~ 25 px
    out = remove_rv_without_lv(lab)
    assert not (out[0] == RV).any() and (out[1:] == RV).sum() == (lab[1:] == RV).sum()
    far = remove_rv_far_from_lv(lab, spacing_mm=(10.0, 1.0, 1.0), max_distance_mm=15.0)
    assert not (far[1, 55:60, 55:60] == RV).any()
    # the crescent next to the myocardium stays (gap 1 px); the RV-only slice is left alone
    assert (far[1] == RV).sum() == (lab[1] == RV).sum() - 25
    np.testing.assert_array_equal(far[0], lab[0])
    # with 0.5 mm pixels the far blob is 12.5 mm away and stays
    near = remove_rv_far_from_lv(lab, spacing_mm=(10.0, 0.5, 0.5), max_distance_mm=15.0)
    assert (near[1, 55:60, 55:60] == RV).all()


def test_fill_holes_fills_lv_and_rv_holes_only_inside() -> None:
    lab = _heart(z=1)
    holey = lab.copy()
    holey[0, 30:33, 30:33] = 0  # hole in the LV
    holey[0, 31, 14] = 0  # hole in the RV
    holey[0, 0, 0] = 0  # background outside stays
    out = fill_holes(holey)
    np.testing.assert_array_equal(out, lab)


def test_postprocessor_order_and_unknown_step() -> None:
    pp = PostProcessor(["rv_far_from_lv", "fill_holes"])
    assert pp.steps == ("fill_holes", "rv_far_from_lv")
    assert next(iter(STEPS)) == "fill_holes"
    with pytest.raises(ValueError, match="unknown post-processing"):
        PostProcessor(["largest"])


def test_selection_keeps_helpful_and_rejects_harmful_steps() -> None:
    ref = _heart()
    pred = ref.copy()
    pred[2, 2:6, 2:6] = RV  # a false RV blob far from the heart: removed by lcc_* and rv_far
    # a missed slice: volume-wise LCC would cut LV and MYO in two and drop one part
    gap = ref.copy()
    gap[2][(gap[2] == LV) | (gap[2] == MYO)] = 0
    choice = select_postprocessing([pred, gap], [ref, ref], [(10.0, 1.0, 1.0)] * 2)
    # fill_holes changes nothing (not kept), lcc_volume hurts, lcc_slice removes the blob, after which
    # rv_far_from_lv has nothing left to gain
    assert choice.steps == ["lcc_slice"]
    by_step = {t["step"]: t for t in choice.trials}
    assert by_step["lcc_volume"]["dice"]["lv"] < choice.baseline["lv"]  # type: ignore[index]
    assert choice.baseline["rv"] < 1.0


def test_largest_component_equals_monai_on_real_predictions(sunnybrook_dir: Path) -> None:
    """Our scipy-based steps equal MONAI's KeepLargestConnectedComponent (the reference) on real masks."""
    from monai.transforms import KeepLargestConnectedComponent

    from cardiacseg.inferers import SlicePredictor
    from cardiacseg.io.readers import read_study

    repo = Path(__file__).resolve().parents[2]
    weights = repo / "bundles" / "cardiac_cine_seg" / "models" / "model.pt"
    if not weights.exists():
        pytest.skip("no shipped weights")
    study = read_study(sunnybrook_dir / "dicoms" / "SCD0000201")
    labels = SlicePredictor.from_checkpoint(weights).predict(study, [12, 19])
    klcc = KeepLargestConnectedComponent(applied_labels=[1, 2, 3], is_onehot=False, independent=True)
    for lab in labels.values():  # (MONAI's transform edits numpy input in place: give it copies)
        np.testing.assert_array_equal(
            keep_largest_component_volume(lab), np.asarray(klcc(lab[None].copy()))[0]
        )
        ref = np.stack([np.asarray(klcc(sl[None].copy()))[0] for sl in lab])
        np.testing.assert_array_equal(keep_largest_component_slice(lab), ref)
    # the masks really had extra components
    assert any((keep_largest_component_slice(lab) != lab).any() for lab in labels.values())


def test_postprocessor_box_equals_steps_on_the_whole_matrix() -> None:
    """PostProcessor works on the foreground's bounding box; the result equals the steps on the full map."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        lab = np.zeros((4, 64, 72), np.uint8)
        for value in (1, 2, 3):  # random blobs of each class, some touching the matrix border
            for _ in range(rng.integers(1, 5)):
                z, y, x = rng.integers(0, 4), rng.integers(0, 64), rng.integers(0, 72)
                lab[z, max(y - 6, 0) : y + 6, max(x - 6, 0) : x + 6] = value
        lab[1, 30:34, 30:34] = 0  # a hole
        pp = PostProcessor(list(STEPS))
        direct = lab.copy()
        for name in pp.steps:
            direct = STEPS[name](direct, (8.0, 1.5, 1.5))
        np.testing.assert_array_equal(pp(lab, (8.0, 1.5, 1.5)), direct)
    assert not PostProcessor(list(STEPS))(np.zeros((2, 8, 8), np.uint8)).any()


def test_per_structure_lcc_is_chosen_where_the_all_structures_step_would_cut_a_true_rv() -> None:
    """nnU-Net v2 decides largest-component removal per class too: here lcc_volume would remove half of a
    reference RV that is split in 3D (slice 2 has none), so only the LV's own step removes the false LV."""
    ref = _heart()
    ref[0][(ref[0] == LV) | (ref[0] == MYO)] = 0  # slice 0: beyond the apex, RV only
    ref[2][ref[2] == RV] = 0  # the RV in two 3D components: slices 0-1 and 3-4
    pred = ref.copy()
    pred[0, 50:56, 50:56] = LV  # a false LV, the only LV on its slice, far from the heart in 3D
    out = STEPS["lcc_volume_lv"](pred, None)
    np.testing.assert_array_equal(out, ref)  # exactly the reference: the blob and nothing else removed
    assert (STEPS["lcc_volume"](pred, None) == RV).sum() == (ref == RV).sum() // 2  # half the true RV lost
    rv_only, every = STEPS["lcc_volume_rv"](ref, None), STEPS["lcc_volume"](ref, None)
    np.testing.assert_array_equal(rv_only == RV, every == RV)  # the RV step is lcc_volume's RV part
    np.testing.assert_array_equal(rv_only[ref != RV], ref[ref != RV])  # and touches nothing else
    choice = select_postprocessing([pred], [ref], [(10.0, 1.0, 1.0)])
    assert choice.steps == ["lcc_volume_lv"]
    assert choice.baseline["lv"] < 1.0
    kept = next(t for t in choice.trials if t["step"] == "lcc_volume_lv")
    assert kept["dice"] == {"lv": 1.0, "myo": 1.0, "rv": 1.0}
