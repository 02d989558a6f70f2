from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from skimage.exposure import equalize_adapthist

from cardiacseg.transforms import (
    CLAHE,
    N4BiasFieldCorrection,
    PercentileNormalize,
    RandLighting,
    SliceZScore,
    SliceZScored,
    slice_to_metatensor,
)

pytestmark = pytest.mark.realdata


def test_clahe_matches_scikit_image_per_slice_and_keeps_meta(
    acdc_slice: tuple[np.ndarray, np.ndarray],
) -> None:
    img, _ = acdc_slice
    raw = img * 700.0 + 20.0  # arbitrary scanner units
    t = slice_to_metatensor(raw, (1.5, 1.5))
    out = CLAHE(clip_limit=0.02, kernel_size=32)(t)
    assert isinstance(out, MetaTensor) and torch.equal(out.affine, t.affine)
    ref = equalize_adapthist((raw - raw.min()) / (raw.max() - raw.min()), kernel_size=32, clip_limit=0.02)
    np.testing.assert_allclose(out[0].numpy(), ref.T, atol=1e-5)
    # 3D+t: every (phase, slice) handled on its own
    stack = np.stack([raw.T, raw.T[::-1]], axis=-1)[None].repeat(2, axis=0)  # (2, X, Y, 2)
    out3 = CLAHE(clip_limit=0.02, kernel_size=32)(stack)
    np.testing.assert_allclose(out3[1, :, :, 0], ref.T, atol=1e-5)
    flipped = raw.T[::-1]
    ref_flipped = equalize_adapthist(
        (flipped - flipped.min()) / (flipped.max() - flipped.min()), kernel_size=32, clip_limit=0.02
    )
    np.testing.assert_allclose(out3[0, :, :, 1], ref_flipped, atol=1e-5)


def test_percentile_normalize_against_numpy(acdc_slice: tuple[np.ndarray, np.ndarray]) -> None:
    img, _ = acdc_slice
    x = (img * 900.0).T[None].astype(np.float32)
    lo, hi = np.percentile(x, [0.5, 99.5])
    mm = np.asarray(PercentileNormalize(mode="minmax")(x))
    np.testing.assert_allclose(mm, (np.clip(x, lo, hi) - lo) / (hi - lo), atol=1e-5)
    z = np.asarray(PercentileNormalize(mode="zscore")(x))
    clipped = np.clip(x, lo, hi)
    np.testing.assert_allclose(z, (clipped - clipped.mean()) / clipped.std(), atol=1e-4)
    with pytest.raises(ValueError, match="mode"):
        PercentileNormalize(mode="max")  # type: ignore[arg-type]


# N4 on the real slice takes ~50 s on 2 cores: that variant runs in `make test-slow`
@pytest.mark.parametrize(
    "acdc_slice", ["phantom", pytest.param("acdc", marks=pytest.mark.slow)], indirect=True
)
def test_n4_removes_a_known_bias_field(acdc_slice: tuple[np.ndarray, np.ndarray]) -> None:
    img, _ = acdc_slice
    sl = (img.T * 500.0).astype(np.float32)  # background exactly 0, as in magnitude images
    xx, yy = np.meshgrid(
        np.linspace(-0.5, 0.5, sl.shape[0]), np.linspace(-0.5, 0.5, sl.shape[1]), indexing="ij"
    )
    bias = np.exp(0.5 * xx + 0.3 * yy).astype(np.float32)
    corrupted = sl * bias
    out = np.asarray(N4BiasFieldCorrection()(corrupted[None]))[0]
    m = sl > 0.1 * sl.max()

    def residual_bias(a: np.ndarray) -> float:
        return float(np.corrcoef(np.log(a[m]) - np.log(sl[m]), np.log(bias[m]))[0, 1])

    assert residual_bias(corrupted) > 0.99
    assert np.isfinite(out).all() and float(out[m].min()) > 0  # a real image, not a truncated one
    assert residual_bias(out) < 0.3
    # the corrected image still looks like the original: high correlation inside the body
    assert np.corrcoef(out[m], sl[m])[0, 1] > 0.85


def test_lighting_zero_is_identity_and_seeded() -> None:
    x = np.linspace(0.01, 0.99, 64, dtype=np.float32).reshape(1, 8, 8)
    t = RandLighting(0.0, prob=1.0)
    np.testing.assert_allclose(np.asarray(t(x)), x, atol=1e-5)
    a = RandLighting(0.4, prob=1.0)
    a.set_random_state(5)
    b = RandLighting(0.4, prob=1.0)
    b.set_random_state(5)
    np.testing.assert_array_equal(np.asarray(a(x)), np.asarray(b(x)))
    assert 0.3 <= a.brightness <= 0.7 and 0.6 <= a.contrast <= 1 / 0.6


def test_lighting_on_raw_dicom_intensities_keeps_their_range(sunnybrook_dir: Path) -> None:
    """Preset s1 on raw Sunnybrook intensities (0-1248) used to turn the image white (logit of clipped x)."""
    import pydicom

    raw = pydicom.dcmread(sunnybrook_dir / "dicoms" / "SCD0000101" / "8.dcm").pixel_array.astype(np.float32)
    x = raw[None]
    same = RandLighting(0.0, prob=1.0)(x)  # no lighting: the image comes back (up to the 1e-4 clip)
    np.testing.assert_allclose(np.asarray(same), x, atol=1e-3 * float(raw.max()))
    t = RandLighting(0.4, prob=1.0)
    t.set_random_state(3)
    out = np.asarray(t(x))
    assert raw.min() <= out.min() and out.max() <= raw.max()  # the raw range is kept
    assert (out >= 0.99 * raw.max()).mean() < 0.01  # not white
    # the lighting is monotonic: the ranking of pixels (anatomy) is kept
    assert np.corrcoef(np.argsort(np.argsort(out.ravel())), np.argsort(np.argsort(raw.ravel())))[0, 1] > 0.99


def test_slice_zscore_normalises_every_slice_on_its_own(acdc_slice: tuple[np.ndarray, np.ndarray]) -> None:
    """(C, X, Y, Z): each (channel, slice) clipped to its 0.5-99.5 percentiles and z-scored (numpy)."""
    img, _ = acdc_slice
    base = (img * 900.0).T.astype(np.float32)
    constant = np.full_like(base, 7.0)
    stack = np.stack([base, base[::-1] * 0.5 + 30.0, constant], axis=-1)
    x = np.stack([stack, stack[..., ::-1] * 2.0])  # (2, X, Y, 3)
    out = SliceZScore()(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == x.shape
    for c in range(2):
        for z in range(3):
            s = x[c, :, :, z].astype(np.float64)
            lo, hi = np.percentile(s, [0.5, 99.5])
            clipped = np.clip(s, lo, hi)
            std = clipped.std()
            ref = (clipped - clipped.mean()) / (std if std > 0 else 1.0)
            np.testing.assert_allclose(out[c, :, :, z], ref, atol=1e-4)
    t = slice_to_metatensor(base, (1.5, 1.5))  # MetaTensor in, MetaTensor out with its affine
    mt = SliceZScore()(t)
    assert isinstance(mt, MetaTensor) and torch.equal(mt.affine, t.affine)
    np.testing.assert_allclose(mt.numpy(), SliceZScored("image")({"image": t.numpy()})["image"], atol=1e-6)
    with pytest.raises(ValueError, match="channel-first"):
        SliceZScore()(base)
    with pytest.raises(ValueError, match="lower"):
        SliceZScore(lower=50, upper=10)
