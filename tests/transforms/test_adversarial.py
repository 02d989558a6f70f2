"""Adversarial perturbations (AdvChain) and the adversarial iteration: analytic truths and real data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cardiacseg.engines.adversarial import AdversarialIteration, inconsistency
from cardiacseg.transforms.adversarial import (
    AdvAffine,
    AdvBias,
    AdversarialChain,
    AdvMorph,
    AdvNoise,
    default_chain,
)

PERTURBATIONS = [AdvNoise, AdvBias, AdvAffine, AdvMorph]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kind", PERTURBATIONS)
def test_identity_at_zero_strength_and_at_zero_parameters(kind: type) -> None:
    x = torch.rand(2, 1, 24, 24, generator=_gen(0))
    zero = kind(strength=0.0)
    zero.reset(x, _gen(1), init_fraction=1.0)  # random parameters, but no strength
    assert torch.allclose(zero(x), x, atol=1e-5)
    still = kind()
    still.reset(x, _gen(1), init_fraction=0.0)  # full strength, parameters at zero
    assert torch.allclose(still(x), x, atol=1e-5)


@pytest.mark.parametrize("kind", PERTURBATIONS)
def test_seeded_reproducible(kind: type) -> None:
    x = torch.rand(2, 1, 24, 24, generator=_gen(0))
    a, b, c = kind(), kind(), kind()
    a.reset(x, _gen(7))
    b.reset(x, _gen(7))
    c.reset(x, _gen(8))
    assert torch.equal(a(x), b(x)) and not torch.allclose(a(x), c(x))


@pytest.mark.parametrize("kind", PERTURBATIONS)
def test_differentiable_in_parameters_and_image(kind: type) -> None:
    x = torch.rand(2, 1, 16, 16, generator=_gen(0), requires_grad=True)
    p = kind()
    p.reset(x.detach(), _gen(3))
    out = p(x)
    gp, gx = torch.autograd.grad((out * torch.linspace(0, 1, 16)).sum(), [p.params, x])
    assert torch.isfinite(gp).all() and gp.abs().sum() > 0 and gx.abs().sum() > 0


def test_bounds_hold_after_projection_for_any_parameters() -> None:
    x = torch.randn(3, 1, 32, 32, generator=_gen(0))
    noise = AdvNoise(epsilon=0.1)
    noise.reset(x, _gen(1))
    with torch.no_grad():
        noise.params.mul_(50.0)  # a wild ascent step
    noise.project()
    rms = (noise(x) - x).pow(2).mean(dim=(1, 2, 3)).sqrt()
    assert float(rms.max()) <= 0.1 + 1e-6
    bias = AdvBias(magnitude=0.3)
    bias.reset(x, _gen(2))
    with torch.no_grad():
        bias.params.mul_(50.0)
    bias.project()
    gain = bias(torch.ones_like(x))
    assert float(gain.min()) >= math.exp(-0.3) - 1e-5 and float(gain.max()) <= math.exp(0.3) + 1e-5
    morph = AdvMorph(max_displacement=2.0)
    morph.reset(x, _gen(3), init_fraction=1.0)
    ddf = morph.ddf((32, 32))
    # integrating a stationary velocity of speed <= 2 px over unit time moves no point more than 2 px
    assert float(ddf.norm(dim=1).max()) <= 2.0 * math.sqrt(2) + 1e-3
    # and the deformation stays invertible: positive Jacobian determinant everywhere
    d_rows, d_cols = torch.gradient(ddf[:, 0], dim=(1, 2)), torch.gradient(ddf[:, 1], dim=(1, 2))
    det = (1 + d_rows[0]) * (1 + d_cols[1]) - d_rows[1] * d_cols[0]
    assert float(det.min()) > 0


def test_affine_rotation_by_90_degrees_equals_numpy_rot90() -> None:
    """At its bound, a rotation of 90 degrees about the centre of an odd-sized image moves pixels onto
    pixels: bilinear resampling must reproduce numpy's exact rotation (independent truth)."""
    x = torch.rand(1, 1, 17, 17, generator=_gen(0))
    aff = AdvAffine(max_rotation_deg=90.0, max_scale=0.1, max_translation=0.05)
    aff.reset(x, init_fraction=0.0)
    with torch.no_grad():
        aff.params[0, 0] = 1.0  # +90 degrees, no scale, no shift
    out = aff(x)[0, 0].detach().numpy()
    img = x[0, 0].numpy()
    assert any(np.allclose(out, np.rot90(img, k), atol=1e-5) for k in (1, 3))
    # a translation by its bound of 2 pixels (0.125 x 16) shifts the content by exactly 2 pixels
    y = torch.rand(1, 1, 16, 16, generator=_gen(1))
    shift = AdvAffine(max_translation=0.125)
    shift.reset(y, init_fraction=0.0)
    with torch.no_grad():
        shift.params[0, 3] = 1.0  # columns
    moved = shift(y)[0, 0].detach().numpy()
    np.testing.assert_allclose(moved[:, :14], y[0, 0].numpy()[:, 2:], atol=1e-5)


def test_chain_warps_predictions_with_its_spatial_part_only() -> None:
    x = torch.rand(2, 1, 24, 24, generator=_gen(0))
    chain = default_chain()
    chain.reset(x, _gen(5))
    spatial_only = AdversarialChain([p for p in chain.perturbations if p.spatial])  # type: ignore[misc]
    y = torch.rand(2, 4, 24, 24, generator=_gen(1))
    assert torch.allclose(chain.warp(y), spatial_only(y), atol=1e-6)
    assert not torch.allclose(chain(x), spatial_only(x))  # the intensity part acts on images


@pytest.fixture(scope="module")
def real_batch(acdc_dir: Path) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The shipped network and 8 real ACDC slices around the heart (z-scored, 128 x 128) with labels."""
    from cardiacseg.demo import shipped_bundle_path
    from cardiacseg.io import read_ssl4mis_study
    from cardiacseg.networks import get_network, load_state_dict_file

    net = get_network("unet", 2, 1, 4)
    net.load_state_dict(load_state_dict_file(shipped_bundle_path() / "models" / "model.pt"))
    images, labels = [], []
    for pid in ("patient004", "patient027"):
        study = read_ssl4mis_study(acdc_dir, pid)
        lab = study.labels[0]
        cy, cx = (int(np.mean(a)) for a in np.nonzero(lab > 0)[1:])
        z_mid = study.n_slices // 2
        for z in range(z_mid - 2, z_mid + 2):
            img = study.image[0, z]
            pad = np.pad(img, 64, mode="constant")
            crop = pad[cy : cy + 128, cx : cx + 128]
            images.append((crop - crop.mean()) / (crop.std() + 1e-6))
            labels.append(np.pad(lab[z], 64)[cy : cy + 128, cx : cx + 128])
    x = torch.tensor(np.stack(images)[:, None], dtype=torch.float32)
    y = torch.tensor(np.stack(labels)[:, None], dtype=torch.float32)
    return net, x, y


@pytest.mark.realdata
def test_ascent_increases_the_inconsistency_on_a_real_batch(
    real_batch: tuple[torch.nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    net, x, _ = real_batch
    net.eval()
    random_chain = AdversarialIteration(steps=0).attack(net, x, _gen(0))
    ascent = AdversarialIteration(steps=3, step_size=0.5)
    chain = ascent.attack(net, x, _gen(0))  # the same initial chain, then three ascent steps
    start, end = ascent.last_gain
    assert end > 1.2 * start, (start, end)
    with torch.no_grad():
        clean = torch.softmax(net(x), dim=1)
        rand_value = inconsistency(torch.softmax(net(random_chain(x)), dim=1), random_chain.warp(clean))
    assert float(rand_value) == pytest.approx(start, rel=1e-4)
    # the network was left as found: no gradient flags changed, nothing trained
    assert all(p.requires_grad for p in net.parameters()) and not net.training
    for p in chain.adversarial_parameters():
        assert float(p.abs().max()) <= 1.0 + 1e-6  # projected into the bounds


@pytest.mark.realdata
def test_adversarial_iteration_trains_a_supervised_trainer(
    real_batch: tuple[torch.nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    from monai.engines import SupervisedTrainer
    from monai.losses import DiceCELoss

    net, x, y = real_batch
    before = {k: v.clone() for k, v in net.state_dict().items()}
    update = AdversarialIteration(steps=1, seed=3)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=[{"image": x[:4], "label": y[:4]}],
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=1e-3),
        loss_function=DiceCELoss(to_onehot_y=True, softmax=True),
        iteration_update=update,
    )
    trainer.run()
    out = trainer.state.output
    assert out["loss_consistency"] > 0 and out["adversarial_gain"] > 0
    assert float(out["loss"]) == pytest.approx(out["loss_supervised"] + out["loss_consistency"], rel=1e-5)
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())
    net.load_state_dict(before)  # the module-scoped network stays the shipped one
