"""Khened-style fully convolutional multi-scale residual DenseNet (the LV/RV pipeline study's DenseNet).

Khened et al., "Fully convolutional multi-scale residual DenseNets for cardiac segmentation and automated
cardiac diagnosis using ensemble of classifiers", Medical Image Analysis 51 (2019), as configured in the
LV/RV pipeline report: 3 poolings, growth rate 16, 3 x 16 initial feature maps from a multi-scale first
layer (3x3, 5x5, 7x7 convolutions), dropout 0.2; up-sampling by transposed convolutions, dense blocks and
skip connections from the down-sampling path added element-wise; 1x1 convolution to the classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["DenseNetFCN"]


class _DenseLayer(nn.Sequential):
    def __init__(self, c_in: int, growth: int, dropout: float):
        super().__init__(
            nn.BatchNorm2d(c_in),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_in, growth, 3, padding=1, bias=False),
            nn.Dropout2d(dropout),
        )


class _DenseBlock(nn.Module):
    """Dense block returning the concatenation of its new feature maps (input excluded)."""

    def __init__(self, c_in: int, n_layers: int, growth: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(_DenseLayer(c_in + i * growth, growth, dropout) for i in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = []
        for layer in self.layers:
            y = layer(x)
            new.append(y)
            x = torch.cat([x, y], 1)
        return torch.cat(new, 1)


class DenseNetFCN(nn.Module):
    """Multi-scale residual DenseNet for 2D segmentation (0.63 M parameters by default; the report: 0.65 M).

    Down path: dense block (its new maps concatenated to its input, the residual path), then BN-ReLU-1x1
    conv-dropout-max-pool. Bottleneck dense block. Up path: transposed 3x3 convolution of the previous
    block's new maps, *added* to a 1x1 projection of the skip, then a dense block.

    Args:
        spatial_dims: must be 2.
        in_channels: input channels.
        out_channels: classes.
        growth_rate: feature maps added per dense layer (16).
        n_pool: number of poolings (3).
        layers_per_block: dense layers in each down block, the bottleneck and each up block
            (``2 * n_pool + 1`` numbers).
        dropout: dropout after every dense layer (0.2).

    Example:
        >>> net = DenseNetFCN(2, 1, 4)
        >>> net(torch.zeros(1, 1, 64, 64)).shape
        torch.Size([1, 4, 64, 64])

    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        growth_rate: int = 16,
        n_pool: int = 3,
        layers_per_block: Sequence[int] = (2, 3, 4, 5, 4, 3, 2),
        dropout: float = 0.2,
    ):
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(f"DenseNetFCN is 2D, got spatial_dims={spatial_dims}")
        if len(layers_per_block) != 2 * n_pool + 1:
            raise ValueError(f"layers_per_block needs {2 * n_pool + 1} entries, got {len(layers_per_block)}")
        g = growth_rate
        self.divisor = 2**n_pool
        self.stem = nn.ModuleList(nn.Conv2d(in_channels, g, k, padding=k // 2) for k in (3, 5, 7))
        c = 3 * g
        self.down_blocks = nn.ModuleList()
        self.transitions = nn.ModuleList()
        skip_channels = []
        for i in range(n_pool):
            self.down_blocks.append(_DenseBlock(c, layers_per_block[i], g, dropout))
            c += layers_per_block[i] * g
            skip_channels.append(c)
            self.transitions.append(
                nn.Sequential(
                    nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(c, c, 1, bias=False),
                    nn.Dropout2d(dropout),
                    nn.MaxPool2d(2),
                )
            )
        self.bottleneck = _DenseBlock(c, layers_per_block[n_pool], g, dropout)
        up_in = layers_per_block[n_pool] * g
        self.ups = nn.ModuleList()
        self.skip_proj = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for j in range(n_pool):
            n_layers = layers_per_block[n_pool + 1 + j]
            skip_c = skip_channels[n_pool - 1 - j]
            self.ups.append(nn.ConvTranspose2d(up_in, up_in, 3, stride=2, padding=1, output_padding=1))
            self.skip_proj.append(nn.Conv2d(skip_c, up_in, 1, bias=False))
            self.up_blocks.append(_DenseBlock(up_in, n_layers, g, dropout))
            last_c = up_in + n_layers * g
            up_in = n_layers * g
        self.head = nn.Conv2d(last_c, out_channels, 1)
        self.parameter_groups = {
            "encoder": ("stem.", "down_blocks.", "transitions.", "bottleneck."),
            "decoder": ("ups.", "skip_proj.", "up_blocks."),
            "head": ("head.",),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment ``(B, C, H, W)`` with sides divisible by ``2 ** n_pool``.

        Args:
            x: input batch.

        Returns:
            Logits ``(B, out_channels, H, W)``.

        """
        y = torch.cat([conv(x) for conv in self.stem], 1)
        skips = []
        for block, trans in zip(self.down_blocks, self.transitions, strict=True):
            y = torch.cat([y, block(y)], 1)
            skips.append(y)
            y = trans(y)
        new = self.bottleneck(y)
        for up, proj, block, skip in zip(
            self.ups, self.skip_proj, self.up_blocks, reversed(skips), strict=True
        ):
            y = up(new) + proj(skip)
            new = block(y)
            y = torch.cat([y, new], 1)
        out: torch.Tensor = self.head(y)
        return out
