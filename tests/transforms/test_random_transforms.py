"""Every random transform: seeded reproducibility; image and label share the spatial draw; inverses."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import ndimage

from cardiacseg.transforms import (
    RandLightingd,
    RandRespiratoryMotiond,
    RandSliceMisalignmentd,
    slice_to_metatensor,
)
from cardiacseg.transforms.presets import PRESETS

pytestmark = pytest.mark.realdata

RANDOM_DICT_TRANSFORMS: dict[str, Callable[[], object]] = {
    "RandLightingd": lambda: RandLightingd("image", prob=1.0),
    "RandRespiratoryMotiond": lambda: RandRespiratoryMotiond("image", prob=1.0),
    "RandSliceMisalignmentd": lambda: RandSliceMisalignmentd(("image", "label"), prob=1.0, slice_prob=1.0),
    **{f"preset:{k}": (lambda f=f: f()) for k, f in PRESETS.items()},
}


def _sample(img: np.ndarray, lab: np.ndarray, stack: bool = False) -> dict[str, torch.Tensor]:
    if stack:
        return {
            "image": torch.as_tensor(np.stack([img.T] * 4, -1)[None].astype(np.float32)),
            "label": torch.as_tensor(np.stack([lab.T] * 4, -1)[None].astype(np.float32)),
        }
    return {
        "image": slice_to_metatensor(img.astype(np.float32)),
        "label": slice_to_metatensor(lab.astype(np.float32)),
    }


@pytest.mark.parametrize("name", sorted(RANDOM_DICT_TRANSFORMS))
def test_same_seed_same_output(name: str, acdc_slice: tuple[np.ndarray, np.ndarray]) -> None:
    img, lab = acdc_slice
    stack = name == "RandSliceMisalignmentd"
    outs = []
    for _ in range(2):
        t = RANDOM_DICT_TRANSFORMS[name]()
        t.set_random_state(1234)  # type: ignore[attr-defined]
        outs.append([t(_sample(img, lab, stack)) for _ in range(6)])  # type: ignore[operator]
    changed = False
    for a, b in zip(*outs, strict=True):
        for key in ("image", "label"):
            assert torch.equal(torch.as_tensor(a[key]), torch.as_tensor(b[key])), key
        changed |= not torch.equal(torch.as_tensor(a["image"]), _sample(img, lab, stack)["image"])
    assert changed  # the transform did something in six draws


def _edge_alignment(image: np.ndarray, label: np.ndarray) -> float:
    """Mean image gradient on the boundary of the blood pools (LV and RV: bright blood against muscle)."""
    grad = ndimage.gaussian_gradient_magnitude(image.astype(np.float64), 1.0)
    pools = (label == 1) | (label == 3)
    boundary = ndimage.binary_dilation(pools) & ~ndimage.binary_erosion(pools)
    return float(grad[boundary].mean()) if boundary.any() else 0.0


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_label_boundaries_stay_on_image_edges(preset: str, acdc_slice: tuple[np.ndarray, np.ndarray]) -> None:
    """After augmentation the label boundary still lies on image edges; the same label 4 px off does not."""
    img, lab = acdc_slice
    aligned, control, moved = [], [], 0
    for seed in range(16):
        t = PRESETS[preset]()
        t.set_random_state(seed)
        out = t(_sample(img, lab))
        o_img, o_lab = out["image"][0].numpy(), np.round(out["label"][0].numpy())
        assert set(np.unique(o_lab).tolist()) <= {0, 1, 2, 3}  # nearest neighbour keeps classes
        if not np.array_equal(o_lab, lab.T):
            moved += 1
            aligned.append(_edge_alignment(o_img, o_lab))
            control.append(_edge_alignment(o_img, np.roll(o_lab, (4, 4), axis=(0, 1))))
    assert moved >= 4
    assert np.mean(aligned) > 1.3 * np.mean(control), (np.mean(aligned), np.mean(control))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_label_overlaps_its_own_copy_transformed_as_image(
    preset: str, acdc_slice: tuple[np.ndarray, np.ndarray]
) -> None:
    """The label (nearest) and a copy of it passed as the image (interpolated) receive the same draw."""
    _, lab = acdc_slice
    for seed in range(6):
        t = PRESETS[preset]()
        t.set_random_state(seed)
        probe = {
            "image": slice_to_metatensor((lab > 0).astype(np.float32)),
            "label": slice_to_metatensor(lab.astype(np.float32)),
        }
        out = t(probe)
        fg_label = out["label"][0].numpy() > 0
        im = out["image"][0].numpy()
        fg_image = im > 0.5 * (float(im.max()) + float(im.min()))
        dice = 2 * (fg_label & fg_image).sum() / (fg_label.sum() + fg_image.sum())
        assert dice > 0.85, (seed, dice)


@pytest.mark.parametrize("preset", ["s1", "s2", "lvrv", "nnunet"])
def test_spatial_part_inverts_label(preset: str, acdc_slice: tuple[np.ndarray, np.ndarray]) -> None:
    img, lab = acdc_slice
    for seed in range(4):
        t = PRESETS[preset]()
        t.set_random_state(seed)
        out = t(_sample(img, lab))
        back = t.inverse(out)["label"][0].numpy()
        assert back.shape == lab.T.shape
        fg_back, fg = back > 0, lab.T > 0
        dice = 2 * (fg_back & fg).sum() / (fg_back.sum() + fg.sum())
        assert dice > 0.9, (seed, dice)
