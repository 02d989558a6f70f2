"""Swin-UNet (Cao et al. 2021): a U-shaped pure transformer for 2D segmentation.

Built from MONAI's Swin transformer blocks (:class:`monai.networks.nets.swin_unetr.BasicLayer`,
``PatchMerging``); patch expanding layers, skip fusion and the x4 final expansion are implemented here.
Optional refinement head of the CMRxMotion study: two 3x3 convolutions with layer normalisation and
leaky ReLU after the final expansion, which smooths the patch-wise "zigzag" margins.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets.swin_unetr import BasicLayer, PatchMerging
from torch import nn

__all__ = ["SwinUNet"]


def _cl(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


def _cf(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


class _PatchExpand(nn.Module):
    """Double the resolution, halve the channels (channels-last)."""

    def __init__(self, dim: int, scale: int = 2, out_dim: int | None = None):
        super().__init__()
        self.scale = scale
        self.out_dim = out_dim if out_dim is not None else dim // 2
        self.expand = nn.Linear(dim, self.out_dim * scale * scale, bias=False)
        self.norm = nn.LayerNorm(self.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        s = self.scale
        x = self.expand(x).view(b, h, w, s, s, self.out_dim).permute(0, 1, 3, 2, 4, 5)
        return self.norm(x.reshape(b, h * s, w * s, self.out_dim))


class SwinUNet(nn.Module):
    """Pure-transformer U-Net for 2D images (sides divisible by ``4 * 2**3 * window_size`` after padding).

    Args:
        spatial_dims: must be 2.
        in_channels: input channels.
        out_channels: classes.
        embed_dim: channels after patch embedding (96 in the paper).
        depths: Swin blocks per encoder stage (the decoder mirrors them).
        num_heads: attention heads per stage.
        window_size: attention window.
        drop_path_rate: stochastic depth.
        refine_head: add the CMRxMotion two-convolution refinement head.

    Example:
        >>> net = SwinUNet(2, 1, 4, embed_dim=24, window_size=4)
        >>> net(torch.zeros(1, 1, 128, 128)).shape
        torch.Size([1, 4, 128, 128])

    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 2, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        drop_path_rate: float = 0.1,
        refine_head: bool = False,
    ):
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(f"Swin-UNet is 2D only, got spatial_dims={spatial_dims}")
        n = len(depths)
        self.divisor = 4 * 2 ** (n - 1) * window_size
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, 4, 4)
        self.embed_norm = nn.LayerNorm(embed_dim)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        win = (window_size, window_size)
        self.encoder = nn.ModuleList()
        self.merges = nn.ModuleList()
        for i in range(n):
            dim = embed_dim * 2**i
            self.encoder.append(
                BasicLayer(
                    dim=dim,
                    depth=depths[i],
                    num_heads=num_heads[i],
                    window_size=win,
                    drop_path=dpr[sum(depths[:i]) : sum(depths[: i + 1])],
                    qkv_bias=True,
                )
            )
            if i < n - 1:
                self.merges.append(PatchMerging(dim, spatial_dims=2))
        self.expands = nn.ModuleList()
        self.fuse = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for i in range(n - 2, -1, -1):
            dim = embed_dim * 2**i
            self.expands.append(_PatchExpand(dim * 2))
            self.fuse.append(nn.Linear(2 * dim, dim))
            self.decoder.append(
                BasicLayer(
                    dim=dim,
                    depth=depths[i],
                    num_heads=num_heads[i],
                    window_size=win,
                    drop_path=dpr[sum(depths[:i]) : sum(depths[: i + 1])],
                    qkv_bias=True,
                )
            )
        self.norm_up = nn.LayerNorm(embed_dim)
        self.final_expand = _PatchExpand(embed_dim, scale=4, out_dim=embed_dim)
        self.refine: nn.Module | None = None
        if refine_head:
            self.refine = nn.Sequential(
                nn.Conv2d(embed_dim, embed_dim, 3, padding=1),
                nn.GroupNorm(1, embed_dim),
                nn.LeakyReLU(0.01, True),
                nn.Conv2d(embed_dim, embed_dim, 3, padding=1),
                nn.GroupNorm(1, embed_dim),
                nn.LeakyReLU(0.01, True),
            )
        self.head = nn.Conv2d(embed_dim, out_channels, 1)
        self.parameter_groups = {
            "encoder": ("patch_embed.", "embed_norm.", "encoder.", "merges."),
            "decoder": ("expands.", "fuse.", "decoder.", "norm_up.", "final_expand.", "refine."),
            "head": ("head.",),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment ``(B, C, H, W)`` with ``H`` and ``W`` divisible by :attr:`divisor`.

        Args:
            x: input batch.

        Returns:
            Logits ``(B, out_channels, H, W)``.

        """
        y = _cf(self.embed_norm(_cl(self.patch_embed(x))))
        skips = []
        for i, stage in enumerate(self.encoder):
            y = stage(y)
            if i < len(self.merges):
                skips.append(y)
                y = _cf(self.merges[i](_cl(y)))
        for expand, fuse, stage, skip in zip(
            self.expands, self.fuse, self.decoder, reversed(skips), strict=True
        ):
            up = expand(_cl(y))
            y = _cf(fuse(torch.cat([up, _cl(skip)], dim=-1)))
            y = stage(y)
        y = _cf(self.final_expand(self.norm_up(_cl(y))))
        if self.refine is not None:
            y = self.refine(y)
        out: torch.Tensor = self.head(y)
        return out
