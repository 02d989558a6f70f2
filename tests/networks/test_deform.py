from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cardiacseg.networks import DeformConv


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("modulated", [False, True])
def test_zero_offsets_equal_regular_convolution(dims: int, stride: int, modulated: bool) -> None:
    conv = DeformConv(dims, 3, 5, 3, stride, modulated)
    x = torch.rand(2, 3, *([9, 11] if dims == 2 else [7, 9, 10]))
    ref = (F.conv2d if dims == 2 else F.conv3d)(x, conv.weight, conv.bias, stride=stride, padding=1)
    torch.testing.assert_close(conv(x), ref, rtol=1e-5, atol=1e-5)


def test_integer_offset_equals_convolution_of_shifted_input() -> None:
    conv = DeformConv(2, 2, 4, 3, 1, modulated=False)
    with torch.no_grad():
        # every sampling point moves by +1 along the last axis (x): offsets are (dy, dx) per tap
        conv.offset.bias.view(9, 2)[:, 1] = 1.0
    x = torch.rand(1, 2, 12, 12)
    # output column j is the regular convolution centred on input column j + 1 (zeros beyond the border)
    ref = F.conv2d(F.pad(x, (1, 2, 1, 1)), conv.weight, conv.bias)[..., 1:]
    torch.testing.assert_close(conv(x), ref, rtol=1e-5, atol=1e-5)


def test_offsets_are_learned() -> None:
    conv = DeformConv(2, 1, 1, 3)
    y = conv(torch.rand(1, 1, 8, 8))
    y.sum().backward()
    assert conv.offset.weight.grad is not None and conv.offset.weight.grad.abs().sum() > 0
