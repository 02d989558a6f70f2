from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cardiacseg.data.synthetic import make_cine_phantom
from cardiacseg.enums import CardiacLabel
from cardiacseg.inferers import SlicePredictor
from cardiacseg.metrics import dice_score


class _BrightIsLV(nn.Module):
    """A fixed 'network': LV wherever a slice is brighter than halfway between its mean and maximum.

    In the phantom that is exactly the blood pools (LV and RV), whatever the per-slice normalisation.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bg = torch.zeros_like(x)
        threshold = (x.amax(dim=(2, 3), keepdim=True) + x.mean(dim=(2, 3), keepdim=True)) / 2
        return torch.cat([bg, x - threshold, bg - 100, bg - 100], dim=1)


def test_prediction_lands_on_the_input_grid() -> None:
    """Resampling 1.0 -> 1.5 mm, the heart crop and their inverses put predictions back on the anatomy."""
    study, _ = make_cine_phantom(
        n_phases=6, n_slices=4, shape=(200, 180), spacing_mm=(8.0, 1.0, 1.0), noise=0.02
    )
    predictor = SlicePredictor(_BrightIsLV(), target_spacing_mm=1.5, crop_size=128, batch_size=8)
    labels = predictor.predict(study, [0, 3])
    for t in (0, 3):
        assert labels[t].shape == study.labels[t].shape
        truth = (study.labels[t] == CardiacLabel.LV) | (study.labels[t] == CardiacLabel.RV)
        assert dice_score(labels[t] == CardiacLabel.LV, truth) > 0.95


class _Ramp(nn.Module):
    """A fixed, orientation-dependent 'network': logits depend on the column index (not mirror-invariant)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        col = torch.linspace(-1, 1, x.shape[-1]).expand_as(x)
        row = torch.linspace(-1, 1, x.shape[-2])[:, None].expand_as(x)
        return torch.cat([x, self.scale * col, row, col * row], dim=1)


def test_tta_averages_exactly_the_mirrored_and_rotated_views() -> None:
    x = torch.randn(3, 1, 16, 16)
    net = _Ramp()
    for mode, views in (
        ("flip", [(False, ()), (False, (-1,)), (False, (-2,)), (False, (-1, -2))]),
        ("flip_rot90", [(t, f) for t in (False, True) for f in ((), (-1,), (-2,), (-1, -2))]),
    ):
        expected = torch.zeros(3, 4, 16, 16)
        for transpose, dims in views:
            v = x.transpose(-1, -2) if transpose else x
            v = v.flip(dims) if dims else v
            p = torch.softmax(net(v), dim=1)
            p = p.flip(dims) if dims else p
            expected += p.transpose(-1, -2) if transpose else p
        expected /= len(views)
        got = SlicePredictor(net, tta=mode, batch_size=2)._forward(x)
        torch.testing.assert_close(got, expected)
    # an equivariant network gives the same answer with and without TTA
    study, _ = make_cine_phantom(n_phases=2, n_slices=2, shape=(128, 128), spacing_mm=(8.0, 1.5, 1.5))
    plain = SlicePredictor(_BrightIsLV(), crop_size=96).predict_probabilities(study)
    tta = SlicePredictor(_BrightIsLV(), crop_size=96, tta="flip_rot90").predict_probabilities(study)
    for t in plain:
        assert abs(plain[t] - tta[t]).max() < 1e-5


def test_ensemble_is_the_mean_of_member_softmax() -> None:
    x = torch.randn(2, 1, 8, 8)
    a, b = _Ramp(1.0), _Ramp(-3.0)
    expected = (torch.softmax(a(x), 1) + torch.softmax(b(x), 1)) / 2
    torch.testing.assert_close(SlicePredictor([a, b])._forward(x), expected)


def test_unknown_spacing_large_matrix_is_read_as_a_field_of_view() -> None:
    """A 512-pixel phantom at 0.75 mm, spacing unknown, is read as ~0.78 mm pixels: the crop holds it."""
    from dataclasses import replace

    study, _ = make_cine_phantom(
        n_phases=4, n_slices=2, shape=(512, 512), spacing_mm=(8.0, 0.75, 0.75), noise=0.02
    )
    blind = replace(study, spacing_mm=None, affine=None)
    predictor = SlicePredictor(_BrightIsLV(), target_spacing_mm=1.5, crop_size=96, batch_size=8)
    labels = predictor.predict(blind, [0])
    truth = (study.labels[0] == CardiacLabel.LV) | (study.labels[0] == CardiacLabel.RV)
    assert dice_score(labels[0] == CardiacLabel.LV, truth) > 0.9


def test_vectorised_normalisation_equals_the_training_transform(sunnybrook_dir: Path) -> None:
    """The predictor's batched percentile z-score equals MONAI's clip + normalise used in training."""
    from cardiacseg.inferers.predictor import percentile_zscore
    from cardiacseg.io.readers import read_study
    from cardiacseg.transforms.intensity.array import PercentileNormalize

    study = read_study(sunnybrook_dir / "dicoms" / "SCD0000101")
    x = torch.from_numpy(study.image[:2]).reshape(-1, 1, *study.image.shape[2:]).float()
    x = torch.cat([x, torch.full((1, 1, *study.image.shape[2:]), 7.0)])  # a constant slice too
    ref = torch.stack([torch.as_tensor(PercentileNormalize(mode="zscore")(s)) for s in x])
    torch.testing.assert_close(percentile_zscore(x), ref.float(), atol=1e-5, rtol=1e-5)


def test_bf16_precision_agrees_with_fp32_on_a_real_study(sunnybrook_dir: Path) -> None:
    from cardiacseg.io.readers import read_study

    weights = Path(__file__).resolve().parents[2] / "bundles" / "cardiac_cine_seg" / "models" / "model.pt"
    if not weights.exists():
        pytest.skip("no shipped weights")
    study = read_study(sunnybrook_dir / "dicoms" / "SCD0000101")
    fp32 = SlicePredictor.from_checkpoint(weights).predict(study, [0])[0]
    bf16 = SlicePredictor.from_checkpoint(weights, precision="bf16").predict(study, [0])[0]
    for value in (1, 2, 3):
        assert dice_score(bf16 == value, fp32 == value) > 0.97
    with pytest.raises(ValueError, match="precision"):
        SlicePredictor(_BrightIsLV(), precision="fp16")


def test_separable_inversion_equals_monai_inverse_on_a_real_study(sunnybrook_dir: Path) -> None:
    """The fast inversion (two interpolation matrices) equals MONAI's inverse crop + resampling."""
    from unittest import mock

    import numpy as np

    import cardiacseg.inferers.predictor as module
    from cardiacseg.io.readers import read_study

    weights = Path(__file__).resolve().parents[2] / "bundles" / "cardiac_cine_seg" / "models" / "model.pt"
    if not weights.exists():
        pytest.skip("no shipped weights")
    study = read_study(sunnybrook_dir / "dicoms" / "SCD0000101")  # 1.37 mm pixels -> 1.5 mm and back
    predictor = SlicePredictor.from_checkpoint(weights)
    fast = predictor.predict_probabilities(study, [0, 8])
    with mock.patch.object(module, "_inplane_map", lambda *a, **k: None):
        reference = predictor.predict_probabilities(study, [0, 8])
    for t in (0, 8):
        assert fast[t].shape == reference[t].shape == (4, *study.image.shape[1:])
        covered = reference[t].sum(0) > 0.999  # MONAI pads the outside of the crop with zeros
        assert covered.mean() > 0.3
        np.testing.assert_allclose(fast[t][:, covered], reference[t][:, covered], atol=1e-4)
        np.testing.assert_allclose(fast[t].sum(0), 1.0, atol=1e-5)  # background = 1 outside the crop
        assert np.array_equal(fast[t].argmax(0), reference[t].argmax(0))


@pytest.mark.parametrize("study_id", ["SCD0000101", "SCD0000201"])
def test_matmul_resampling_equals_monai_spacing_on_real_studies(sunnybrook_dir: Path, study_id: str) -> None:
    """The predictor's in-plane resampling (two matrix products) equals MONAI Spacing on oblique studies."""
    from cardiacseg.io.readers import read_study
    from cardiacseg.transforms.spatial.array import InPlaneSpacing
    from cardiacseg.transforms.utils import study_to_metatensor

    study = read_study(sunnybrook_dir / "dicoms" / study_id)  # 1.37 mm pixels, oblique affine
    img, _, monai_resampler = SlicePredictor(_BrightIsLV(), target_spacing_mm=1.5)._resampled_image(study)
    ref = InPlaneSpacing(1.5, mode="bilinear")(study_to_metatensor(study))
    assert monai_resampler is None  # the fast path was taken
    assert img.shape == ref.shape
    torch.testing.assert_close(torch.as_tensor(img.affine), torch.as_tensor(ref.affine))
    scale = float(ref.abs().max())
    torch.testing.assert_close(img.as_tensor() / scale, ref.as_tensor() / scale, atol=1e-4, rtol=0)


def test_crop_fallback_when_the_heart_reaches_the_crop_border(sunnybrook_dir: Path) -> None:
    """A crop too small for the heart (96 mm) is detected and redone larger; a fitting crop is kept."""
    from cardiacseg.io.sunnybrook import read_sunnybrook_study

    weights = Path(__file__).resolve().parents[2] / "bundles" / "cardiac_cine_seg" / "models" / "model.pt"
    if not weights.exists():
        pytest.skip("no shipped weights")
    expert = read_sunnybrook_study(
        sunnybrook_dir / "dicoms" / "SCD0000101", sunnybrook_dir / "contourfiles" / "SC-HF-I-1"
    )
    ed = expert.ed_phase
    assert ed is not None
    z = list(expert.annotated_slices[ed])
    small = SlicePredictor.from_checkpoint(weights, crop_size=64, crop_fallback_size=160)
    fitting = SlicePredictor.from_checkpoint(weights, crop_size=160, crop_fallback_size=192)
    no_fallback = SlicePredictor.from_checkpoint(weights, crop_size=64)
    redone, kept, cut = (p.predict(expert, [ed])[ed] for p in (small, fitting, no_fallback))
    assert (small.last_crop_size, fitting.last_crop_size, no_fallback.last_crop_size) == (160, 160, 64)
    truth = expert.labels[ed][z] == CardiacLabel.LV
    assert dice_score(redone[z] == CardiacLabel.LV, truth) > 0.9
    assert dice_score(redone == CardiacLabel.LV, kept == CardiacLabel.LV) > 0.95  # another centre
    assert dice_score(cut[z] > 0, expert.labels[ed][z] > 0) < dice_score(redone[z] > 0, kept[z] > 0)


def _peak_rss_bytes() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def test_memory_estimate_matches_the_real_arrays_and_passes_a_realistic_study() -> None:
    """Sunnybrook geometry (12 slices x 256 x 256, 1.367 mm): the estimate is what predict allocates."""
    study, _ = make_cine_phantom(
        n_phases=8, n_slices=12, shape=(256, 256), spacing_mm=(10.0, 1.367188, 1.367188)
    )
    predictor = SlicePredictor(_BrightIsLV(), target_spacing_mm=1.5, crop_size=160)
    predictor.check_memory(study)  # does not raise
    allocs = {a.what.split(" = ")[0]: a for a in predictor.memory_estimate(study)}
    img, _, _ = predictor._resampled_image(study)  # the real resampled array: (T, X', Y', Z)
    t, rx, ry, z = img.shape
    assert allocs["resampled image (T, Z, Y', X')"].n_bytes == img.numel() * 4 == t * z * ry * rx * 4
    assert (rx, ry) == (233, 233)  # 256 x 1.367 mm / 1.5 mm, MONAI's grid
    captured: list[torch.Tensor] = []
    forward = predictor._forward
    predictor._forward = lambda x: captured.append(forward(x)) or captured[-1]  # type: ignore[method-assign]
    predictor.predict(study, [0, 5])
    probs = captured[0]  # the real probability maps of the selected phases: (S*Z, 4, s, s)
    assert tuple(probs.shape) == (2 * 12, 4, 160, 160)
    est = {a.what.split(" = ")[0]: a for a in predictor.memory_estimate(study, [0, 5])}
    assert est["network probabilities (S*Z, 4, s, s)"].n_bytes == probs.numel() * probs.element_size()


def test_absurd_pixel_size_is_refused_before_allocating() -> None:
    """256 x 256 pixels of 50 mm resampled to 1.5 mm: 8501 x 8501 per slice (69 GB), refused at once."""
    from cardiacseg.io.limits import InputTooLargeError
    from cardiacseg.io.study import CineStudy

    image = np.random.default_rng(0).random((20, 12, 256, 256), dtype=np.float32)
    huge = CineStudy(image=image, spacing_mm=(10.0, 50.0, 50.0), source="NIfTI /data/huge_pixels.nii.gz")
    predictor = SlicePredictor(_BrightIsLV(), target_spacing_mm=1.5, crop_size=160)
    before = _peak_rss_bytes()
    t0 = time.perf_counter()
    with pytest.raises(InputTooLargeError) as err:
        predictor.predict(huge)
    assert time.perf_counter() - t0 < 2.0
    assert _peak_rss_bytes() - before < 100e6  # nothing of the 69 GB was allocated
    msg = str(err.value)
    assert msg.startswith(
        "NIfTI /data/huge_pixels.nii.gz: prediction: resampled image (T, Z, Y', X') = (20, 12, 8501, 8501)"
    )
    assert "from 50 x 50 mm to 1.5 mm pixels" in msg
    # the same study with a (T, Z, Y, X) mix-up built in code: 65,536 slices of 20 x 12 pixels
    mixed = CineStudy(
        image=np.zeros((256, 256, 20, 12), np.float32), spacing_mm=(1.0, 1.0, 1.0), source="mixed"
    )
    with pytest.raises(
        InputTooLargeError, match=r"^mixed: prediction: network probabilities .* \(65536, 4, 160, 160\)"
    ):
        predictor.predict(mixed)
    assert _peak_rss_bytes() - before < 100e6


class _Echo(nn.Module):
    """Four copies of the input as logits: the network input passes through unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x] * 4, dim=1)


@pytest.mark.parametrize("region", ["slice", "crop"])
def test_slice_region_gives_the_network_the_training_preprocessing(acdc_dir: Path, region: str) -> None:
    """With ``zscore_region="slice"`` the network sees at inference what ``val_transforms`` gave it.

    ACDC (SSL4MIS: no spacing, so no resampling, as in training): the slices fed to the network equal
    ``val_transforms`` (z-score of the whole slice, then the heart crop, with the predictor's crop centre).
    The default statistics inside the crop (``"crop"``) give another distribution.
    """
    from cardiacseg.data.datalist import ssl4mis_slice_items
    from cardiacseg.engines.pipelines import val_transforms
    from cardiacseg.io.ssl4mis import read_ssl4mis_study
    from cardiacseg.transforms import HeartCrop

    study = read_ssl4mis_study(acdc_dir, "patient001")
    kwargs = {} if region == "crop" else {"zscore_region": region}  # the default is "crop"
    predictor = SlicePredictor(_Echo(), crop_size=160, **kwargs)  # type: ignore[arg-type]
    assert predictor.zscore_region == region
    captured: list[torch.Tensor] = []
    forward = predictor._forward
    predictor._forward = lambda x: captured.append(x) or forward(x)  # type: ignore[method-assign]
    assert study.ed_phase == 0
    predictor.predict(study, [study.ed_phase])
    img, _, _ = predictor._resampled_image(study)
    centre, _ = HeartCrop((160, 160)).find_centre(img)
    pipeline = val_transforms(160)
    worst = 0.0
    for item in ssl4mis_slice_items(acdc_dir, ["patient001"], phases=("ED",)):
        expected = pipeline({**item, "centre": centre})["image"]
        worst = max(worst, float((captured[0][item["slice"]] - expected).abs().max()))
    if region == "slice":
        assert worst < 1e-4
    else:
        assert worst > 0.1


def test_unknown_zscore_region_is_refused() -> None:
    with pytest.raises(ValueError, match="zscore_region"):
        SlicePredictor(_Echo(), zscore_region="volume")


def test_network_kwargs_build_the_trained_architecture(tmp_path: Path) -> None:
    """A half-width U-Net saved by training loads through ``network_kwargs``; the default width refuses it."""
    from cardiacseg.networks import get_network

    slim = {"channels": [16, 32, 64, 128, 256]}
    trained = get_network("unet", 2, 1, 4, **slim)
    torch.save(trained.state_dict(), tmp_path / "model.pt")
    predictor = SlicePredictor.from_checkpoint(tmp_path / "model.pt", network_kwargs=slim)
    n_params = sum(p.numel() for p in predictor.network.parameters())
    assert n_params == sum(p.numel() for p in trained.parameters())
    for name, value in trained.state_dict().items():
        assert torch.equal(predictor.network.state_dict()[name], value), name
    with pytest.raises(ValueError, match="do not fit network"):
        SlicePredictor.from_checkpoint(tmp_path / "model.pt")


class _OnChannel(nn.Module):
    """:class:`_BrightIsLV` applied to one input channel: which slice of a 2.5D input it sees is the test."""

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.channel = channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _BrightIsLV()(x[:, self.channel : self.channel + 1])


def test_context_slices_give_each_slice_its_neighbours_as_channels() -> None:
    """2.5D input (context 1): channel 0 is the slice below, 2 the slice above, ends repeated.

    The reference is the 2D path: looking at channel 0 of slice z must give the 2D labels of slice z - 1.
    """
    study, _ = make_cine_phantom(n_phases=4, n_slices=5, shape=(160, 160), spacing_mm=(8.0, 1.5, 1.5))
    flat = SlicePredictor(_BrightIsLV(), crop_size=128).predict(study, [0, 2])
    below = SlicePredictor(_OnChannel(0), crop_size=128, context_slices=1).predict(study, [0, 2])
    above = SlicePredictor(_OnChannel(2), crop_size=128, context_slices=1).predict(study, [0, 2])
    centre = SlicePredictor(_OnChannel(1), crop_size=128, context_slices=1).predict(study, [0, 2])
    n = study.n_slices
    for t in (0, 2):
        assert not all(np.array_equal(flat[t][z], flat[t][z + 1]) for z in range(n - 1))  # slices differ
        for z in range(n):
            assert np.array_equal(below[t][z], flat[t][max(z - 1, 0)]), (t, z)
            assert np.array_equal(above[t][z], flat[t][min(z + 1, n - 1)]), (t, z)
            assert np.array_equal(centre[t][z], flat[t][z]), (t, z)
    with pytest.raises(ValueError, match="context_slices"):
        SlicePredictor(_BrightIsLV(), context_slices=-1)


def test_memory_estimate_counts_the_2p5d_input_the_network_receives() -> None:
    """With context 2 the network input has 5 channels: the estimate's entry is that tensor's size."""
    study, _ = make_cine_phantom(n_phases=4, n_slices=5, shape=(160, 160), spacing_mm=(8.0, 1.5, 1.5))
    predictor = SlicePredictor(_OnChannel(2), crop_size=128, context_slices=2)
    seen: list[torch.Tensor] = []
    forward = predictor._forward
    predictor._forward = lambda x: seen.append(x) or forward(x)  # type: ignore[method-assign]
    predictor.predict(study, [1, 3])
    est = {a.what.split(" = ")[0]: a for a in predictor.memory_estimate(study, [1, 3])}
    assert tuple(seen[0].shape) == (2 * 5, 5, 128, 128)
    assert est["2.5D network input (S*Z, C, s, s)"].n_bytes == seen[0].numel() * seen[0].element_size()
    assert "2.5D network input (S*Z, C, s, s)" not in {
        a.what.split(" = ")[0] for a in SlicePredictor(_BrightIsLV(), crop_size=128).memory_estimate(study)
    }


def test_context_slices_build_a_network_with_that_many_input_channels(tmp_path: Path) -> None:
    from cardiacseg.networks import get_network

    torch.save(get_network("unet", 2, 3, 4).state_dict(), tmp_path / "model.pt")
    predictor = SlicePredictor.from_checkpoint(tmp_path / "model.pt", context_slices=1)
    first = next(m for m in predictor.network.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 3
    with pytest.raises(ValueError, match=r"model\.pt: the weights do not fit network 'unet' with 1 input"):
        SlicePredictor.from_checkpoint(tmp_path / "model.pt")
