"""U-Nets on ImageNet backbones: the 7T transfer study's ResNet34/50 and VGG16 U-Nets.

The slice-range classifier on the same backbones is in :mod:`.slice_classifier`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cardiacseg.networks.nets.encoders import backbone_features, make_backbone
from cardiacseg.networks.weights import LoadReport, load_torchvision_backbone
from cardiacseg.typing import PathLike

__all__ = ["EncoderUNet"]


class _DecoderBlock(nn.Module):
    def __init__(self, c_in: int, c_skip: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(c_in + c_skip, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


def _drop_classifier(backbone: nn.Module) -> None:
    for name in ("fc", "classifier"):
        if hasattr(backbone, name):
            setattr(backbone, name, nn.Identity())


class EncoderUNet(nn.Module):
    """2D U-Net with a torchvision-layout ImageNet encoder (ResNet-34/50, VGG-16, DenseNet-121, MobileNet-V2).

    The decoder upsamples the stride-32 features step by step (nearest + two 3x3 conv-BN-ReLU), joining
    the encoder map of each stride, up to full resolution. Input sides must be multiples of 32.

    Args:
        spatial_dims: must be 2.
        in_channels: input channels (ImageNet first conv is adapted on load).
        out_channels: classes.
        backbone: ``"resnet34"``, ``"resnet50"``, ``"vgg16"``, ``"densenet121"`` or ``"mobilenet_v2"``.
        decoder_channels: channels of the five decoder stages (stride 16 to 1).
        pretrained: local file with torchvision ImageNet weights to load into the encoder.

    Example:
        >>> net = EncoderUNet(2, 1, 4, backbone="resnet34")
        >>> net(torch.zeros(1, 1, 64, 64)).shape
        torch.Size([1, 4, 64, 64])

    """

    divisor = 32

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        backbone: str = "resnet34",
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
        pretrained: PathLike | None = None,
    ):
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(
                f"{backbone} U-Net is 2D only (ImageNet encoder), got spatial_dims={spatial_dims}"
            )
        self.encoder = make_backbone(backbone, in_channels)
        _drop_classifier(self.encoder)
        enc_ch = list(self.encoder.out_channels)  # type: ignore[arg-type]
        strides = list(self.encoder.strides)  # type: ignore[arg-type]
        # skips for strides 16, 8, 4, 2, 1 (None where the encoder has no map at that stride)
        by_stride = {s: c for s, c in zip(strides, enc_ch, strict=True)}
        self._skip_strides = (16, 8, 4, 2, 1)
        blocks = []
        c = enc_ch[-1]
        for s, out in zip(self._skip_strides, decoder_channels, strict=True):
            blocks.append(_DecoderBlock(c, by_stride.get(s, 0), out))
            c = out
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Conv2d(c, out_channels, 3, padding=1)
        self._strides = strides
        self.parameter_groups = {"encoder": ("encoder.",), "decoder": ("decoder.",), "head": ("head.",)}
        self.load_report: LoadReport | None = None
        if pretrained is not None:
            self.load_report = load_torchvision_backbone(self, pretrained, prefix="encoder.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment a batch ``(B, C, H, W)`` (sides multiple of 32).

        Args:
            x: input batch.

        Returns:
            Logits ``(B, out_channels, H, W)``.

        """
        feats = dict(zip(self._strides, backbone_features(self.encoder, x), strict=True))
        y = feats[32]
        for s, block in zip(self._skip_strides, self.decoder, strict=True):
            y = block(y, feats.get(s))
        out: torch.Tensor = self.head(y)
        return out
