"""Deformable convolution (DCNv2, modulated) in plain PyTorch, 2D and 3D, with no torchvision.

Sampling uses :func:`torch.nn.functional.grid_sample` (bilinear/trilinear, zero padding) at the kernel
positions shifted by learned offsets. Offsets start at zero and the modulation at one (``2 sigmoid(0)``),
so a fresh layer is exactly the regular convolution with the same weights.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DeformConv", "DeformableBlock"]


class DeformConv(nn.Module):
    """Deformable convolution with learned offsets (and optional modulation), 2D or 3D.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size.
        stride: stride (same on every axis).
        modulated: learn a sigmoid modulation per sampling point (DCNv2).
        bias: add a bias.

    Example:
        >>> conv = DeformConv(2, 4, 8)
        >>> conv(torch.rand(1, 4, 10, 12)).shape
        torch.Size([1, 8, 10, 12])

    """

    taps: torch.Tensor

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        modulated: bool = False,
        bias: bool = True,
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.spatial_dims = spatial_dims
        self.kernel_size = kernel_size
        self.stride = stride
        self.modulated = modulated
        k = kernel_size**spatial_dims
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.offset = conv(in_channels, spatial_dims * k, kernel_size, stride, kernel_size // 2)
        self.mask: nn.Module | None = None
        if modulated:
            self.mask = conv(in_channels, k, kernel_size, stride, kernel_size // 2)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *([kernel_size] * spatial_dims)))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.reset_offsets()
        r = kernel_size // 2
        taps = list(itertools.product(range(-r, r + 1), repeat=spatial_dims))
        self.register_buffer("taps", torch.tensor(taps, dtype=torch.float32), persistent=False)

    def reset_offsets(self) -> None:
        """Zero the offset and modulation predictors: the layer becomes the regular convolution."""
        for m in (self.offset, self.mask):
            if m is not None:
                nn.init.zeros_(m.weight)  # type: ignore[arg-type]
                nn.init.zeros_(m.bias)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` at offset positions.

        Args:
            x: ``(B, C, *spatial)``.

        Returns:
            ``(B, out_channels, *spatial / stride)``.

        """
        d = self.spatial_dims
        b, c = x.shape[:2]
        size = x.shape[2:]
        offsets = self.offset(x)  # (B, d*K, *out)
        out_size = offsets.shape[2:]
        k = int(self.taps.shape[0])
        offsets = offsets.view(b, k, d, *out_size)
        axes = [torch.arange(n, device=x.device, dtype=x.dtype) * self.stride for n in out_size]
        base = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)  # (d, *out)
        taps = self.taps.to(x.dtype).view(k, d, *([1] * d))
        pos = base.unsqueeze(0).unsqueeze(0) + taps.unsqueeze(0) + offsets  # (B, K, d, *out)
        scale = torch.tensor([2.0 / max(n - 1, 1) for n in size], device=x.device, dtype=x.dtype)
        norm = pos * scale.view(1, 1, d, *([1] * d)) - 1.0
        grid = norm.flip(2).movedim(2, -1)  # grid_sample wants (x, y[, z]) = reversed axis order
        grid = grid.reshape(b, k * out_size[0], *out_size[1:], d)
        sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        sampled = sampled.view(b, c, k, *out_size)
        if self.mask is not None:
            sampled = sampled * torch.sigmoid(self.mask(x)).unsqueeze(1) * 2.0
        w = self.weight.reshape(self.weight.shape[0], c, k)
        out = torch.einsum("bck...,ock->bo...", sampled, w)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, *([1] * d))
        return out


class DeformableBlock(nn.Module):
    """Two deformable convolutions with instance norm and leaky ReLU: a drop-in DynUNet bottleneck.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of the first convolution.
        modulated: DCNv2 modulation.

    Example:
        >>> DeformableBlock(2, 8, 16, stride=2)(torch.rand(1, 8, 16, 16)).shape
        torch.Size([1, 16, 8, 8])

    """

    def __init__(
        self, spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1, modulated: bool = True
    ):
        super().__init__()
        norm = nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d
        self.conv1 = DeformConv(spatial_dims, in_channels, out_channels, 3, stride, modulated)
        self.norm1 = norm(out_channels, affine=True)
        self.conv2 = DeformConv(spatial_dims, out_channels, out_channels, 3, 1, modulated)
        self.norm2 = norm(out_channels, affine=True)
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        out: torch.Tensor = self.act(self.norm2(self.conv2(self.act(self.norm1(self.conv1(x))))))
        return out
