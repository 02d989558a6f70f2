"""Every network: shapes (2D 256x256, 3D where supported), odd sizes, gradients, export, freezing."""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cardiacseg.io import read_ssl4mis_study
from cardiacseg.networks import NETWORKS, count_parameters, freeze, get_network, network_divisor, unfreeze
from cardiacseg.networks.factory import TWO_D_ONLY, dynunet_kernels_strides

torch.set_num_threads(2)

SMALL: dict[str, dict[str, Any]] = {"dynunet": {"patch_size": (64, 64)}}


def _out(name: str) -> int:
    return 3 if name == "slice_classifier" else 4


#: The transformer networks cost ~15-20 s per test (shapes, gradients, export, real slices) on 2 cores:
#: those run in make test-slow.
_HEAVY = {"swin_unet", "swin_unetr"}
_NETWORKS_FAST_FIRST = [pytest.param(n, marks=pytest.mark.slow) if n in _HEAVY else n for n in NETWORKS]


@pytest.mark.parametrize("name", _NETWORKS_FAST_FIRST)
def test_2d_shape_256_and_odd_size(name: str) -> None:
    net = get_network(name, 2, 1, _out(name)).eval()
    with torch.no_grad():
        y = net(torch.rand(1, 1, 256, 256))
        odd = net(torch.rand(1, 1, 203, 171))
    if name == "slice_classifier":
        assert y.shape == odd.shape == (1, 3)
        return
    assert y.shape == (1, 4, 256, 256)
    assert odd.shape == (1, 4, 203, 171)  # padded internally and cropped back
    strict = get_network(name, 2, 1, 4, pad_to_divisor=False).eval()
    div = network_divisor(strict)
    assert div is not None
    with pytest.raises(ValueError, match=rf"divisible by \({div[0]}, {div[1]}\)"):
        strict(torch.rand(1, 1, 203, 171))


@pytest.mark.parametrize("name", [n for n in NETWORKS if n not in TWO_D_ONLY])
def test_3d_shapes(name: str) -> None:
    net = get_network(
        name,
        3,
        1,
        4,
        **({"patch_size": (64, 64, 8), "spacing": (1.5, 1.5, 8.0)} if name == "dynunet" else {}),
    )
    with torch.no_grad():
        y = net.eval()(torch.rand(1, 1, 64, 64, 10))
    assert y.shape == (1, 4, 64, 64, 10)


@pytest.mark.parametrize("name", sorted(TWO_D_ONLY))
def test_2d_only_networks_refuse_3d(name: str) -> None:
    with pytest.raises(ValueError, match="2D only"):
        get_network(name, 3, 1, 4)


@pytest.mark.parametrize("name", _NETWORKS_FAST_FIRST)
def test_gradient_reaches_every_trainable_parameter(name: str) -> None:
    # seeded: stochastic depth (Swin) may drop a whole residual branch for a small batch
    torch.manual_seed(0)
    net = get_network(name, 2, 1, _out(name), **SMALL.get(name, {})).train()
    size = 224 if name == "swin_unet" else 64
    y = net(torch.rand(2, 1, size, size))
    (y.float() ** 2).mean().backward()
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    missing = [n for n, p in params if p.grad is None]
    assert not missing, missing[:5]
    zero = {n for n, p in params if float(p.grad.abs().sum()) == 0.0}  # type: ignore[union-attr]
    # a bias right before a batch norm has an analytically zero gradient; nothing else may
    assert zero <= _biases_before_batch_norm(net), sorted(zero)[:5]


def _biases_before_batch_norm(net: torch.nn.Module) -> set[str]:
    """Names of conv/linear biases whose next leaf module (definition order) is a batch norm."""
    leaves = [(n, m) for n, m in net.named_modules() if not list(m.children())]
    exempt = set()
    for (name, mod), (_, nxt) in itertools.pairwise(leaves):
        bias = getattr(mod, "bias", None)
        if isinstance(bias, torch.Tensor) and isinstance(nxt, torch.nn.modules.batchnorm._BatchNorm):
            exempt.add(f"{name}.bias")
    return exempt


@pytest.mark.parametrize("name", _NETWORKS_FAST_FIRST)
def test_export_roundtrip_same_output(name: str) -> None:
    net = get_network(name, 2, 1, _out(name), **SMALL.get(name, {})).eval()
    x = torch.rand(1, 1, *((224, 224) if name == "swin_unet" else (70, 70)))
    with torch.no_grad():
        program = torch.export.export(net, (x,))
        buf = io.BytesIO()
        torch.export.save(program, buf)
        buf.seek(0)
        loaded = torch.export.load(buf)
        torch.testing.assert_close(loaded.module()(x), net(x), rtol=1e-5, atol=1e-5)


def test_parameter_counts_of_reference_designs() -> None:
    # LV/RV pipeline report: Khened DenseNet "651,316 parameters"
    assert count_parameters(get_network("densenet_fcn", 2, 1, 4)) == pytest.approx(651_316, rel=0.05)


@pytest.mark.parametrize(
    "name", ["resnet34_unet", "densenet_fcn", "dynunet", "swin_unet", "slice_classifier"]
)
def test_freeze_stops_updates_and_unfreeze_resumes(name: str) -> None:
    torch.manual_seed(0)
    net = get_network(name, 2, 1, _out(name), **SMALL.get(name, {})).train()
    size = 224 if name == "swin_unet" else 64
    x = torch.rand(2, 1, size, size)
    groups = net.parameter_groups  # type: ignore[union-attr]
    enc = tuple(groups["encoder"])
    n_frozen = freeze(net, ["encoder"])
    assert n_frozen > 0
    assert count_parameters(net, trainable_only=True) == count_parameters(net) - n_frozen
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    opt.zero_grad()
    (net(x).float() ** 2).mean().backward()
    opt.step()
    for n, p in net.named_parameters():
        if n.startswith(enc):
            assert torch.equal(p, before[n]), n
    assert any(not torch.equal(p, before[n]) for n, p in net.named_parameters() if not n.startswith(enc))
    unfreeze(net, ["encoder"])
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    opt.zero_grad()
    (net(x).float() ** 2).mean().backward()
    opt.step()
    assert any(not torch.equal(p, before[n]) for n, p in net.named_parameters() if n.startswith(enc))
    with pytest.raises(ValueError, match="available"):
        freeze(net, ["nonexistent"])


def test_dynunet_rule_by_hand() -> None:
    # 2D, 256 x 256 at 1.25 mm: halve while >= 8 -> 256..8 -> six downsamplings
    kernels, strides = dynunet_kernels_strides((256, 256), (1.25, 1.25))
    assert strides == [[1, 1]] + [[2, 2]] * 6 and kernels == [[3, 3]] * 7
    # thick slices: 8 mm vs 1.5 mm -> no pooling and 1-kernels along z until the in-plane spacing catches up
    kernels, strides = dynunet_kernels_strides((128, 128, 16), (1.5, 1.5, 8.0))
    # z: 8 mm is > 2 x 1.5 and > 2 x 3 mm, so two in-plane-only levels (kernel 1 along z), then isotropic
    # pooling while z >= 8 voxels
    assert strides == [[1, 1, 1], [2, 2, 1], [2, 2, 1], [2, 2, 2], [2, 2, 2], [2, 2, 1]]
    assert kernels == [[3, 3, 1], [3, 3, 1], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]


def test_deformable_bottleneck_is_used() -> None:
    net = get_network("dynunet", 2, 1, 4, patch_size=(64, 64), deformable_bottleneck=True)
    assert type(net.bottleneck).__name__ == "DeformableBlock"
    y = net(torch.rand(2, 1, 64, 64))
    y.mean().backward()
    assert net.bottleneck.conv1.offset.weight.grad is not None


@pytest.mark.realdata
@pytest.mark.parametrize("name", _NETWORKS_FAST_FIRST)
def test_forward_on_real_slices(name: str, acdc_dir: Path) -> None:
    study = read_ssl4mis_study(acdc_dir, "patient002")
    slices = study.image[0, 3:5]  # two real (Y, X) slices
    x = torch.as_tensor(np.ascontiguousarray(slices.transpose(0, 2, 1)))[:, None]  # (B, 1, X, Y)
    net = get_network(name, 2, 1, _out(name)).eval()
    with torch.no_grad():
        y = net(x)
    assert torch.isfinite(y).all()
    if name != "slice_classifier":
        assert y.shape == (2, 4, *x.shape[2:])
