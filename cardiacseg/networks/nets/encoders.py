"""ImageNet backbones whose parameter names follow torchvision's state-dict layout exactly.

No torchvision import: the modules are re-implemented here with the same attribute names, so a
torchvision ImageNet checkpoint saved to a local file loads key for key (see
:mod:`cardiacseg.networks.weights`). Each backbone exposes ``features(x) -> list[Tensor]`` with the
feature maps a U-Net decoder needs (increasing stride), ``out_channels`` and ``strides`` describing them,
``num_features`` (channels of the last map) and ``last_block`` (attribute names of its final stage).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = ["BACKBONES", "VGG16", "DenseNet121", "MobileNetV2", "ResNet", "backbone_features", "make_backbone"]


class BasicBlock(nn.Module):
    """torchvision ResNet basic block (two 3x3 convs)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual forward pass."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision ResNet bottleneck block (1x1, 3x3, 1x1), stride on the 3x3 (v1.5)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual forward pass."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + identity)


class ResNet(nn.Module):
    """ResNet-34 / ResNet-50 with torchvision names (``conv1``, ``bn1``, ``layer1``..``layer4``, ``fc``).

    Args:
        depth: 34 or 50.
        in_channels: input channels (ImageNet weights are adapted on load).

    Example:
        >>> net = ResNet(34, in_channels=1)
        >>> [f.shape[1] for f in net.features_list(torch.zeros(1, 1, 64, 64))]
        [64, 64, 128, 256, 512]

    """

    def __init__(self, depth: int = 34, in_channels: int = 3):
        super().__init__()
        if depth not in (34, 50):
            raise ValueError(f"ResNet depth must be 34 or 50, got {depth}")
        layers = [3, 4, 6, 3]
        block: type[BasicBlock] | type[Bottleneck] = BasicBlock if depth == 34 else Bottleneck
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make(block, 64, layers[0], 1)
        self.layer2 = self._make(block, 128, layers[1], 2)
        self.layer3 = self._make(block, 256, layers[2], 2)
        self.layer4 = self._make(block, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = 512 * block.expansion
        self.fc = nn.Linear(self.num_features, 1000)
        e = block.expansion
        self.out_channels = (64, 64 * e, 128 * e, 256 * e, 512 * e)
        self.strides = (2, 4, 8, 16, 32)
        self.last_block = ("layer4",)
        self.first_conv = "conv1"
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make(
        self, block: type[BasicBlock] | type[Bottleneck], planes: int, n: int, stride: int
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers: list[nn.Module] = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def features_list(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at strides 2, 4, 8, 16, 32.

        Args:
            x: ``(B, C, H, W)``.

        Returns:
            Five feature maps.

        """
        f1 = self.relu(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer3(f3)
        f5 = self.layer4(f4)
        return [f1, f2, f3, f4, f5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet classification logits (as torchvision)."""
        return self.fc(torch.flatten(self.avgpool(self.features_list(x)[-1]), 1))


_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """VGG-16 (no batch norm) with torchvision names (``features.N``, ``classifier.N``).

    Example:
        >>> net = VGG16(in_channels=1)
        >>> [f.shape[1] for f in net.features_list(torch.zeros(1, 1, 64, 64))]
        [64, 128, 256, 512, 512, 512]

    """

    def __init__(self, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                assert isinstance(v, int)
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(4096, 1000),
        )
        self.num_features = 512
        self.out_channels = (64, 128, 256, 512, 512, 512)
        self.strides = (1, 2, 4, 8, 16, 32)
        self.last_block = ("features.24", "features.26", "features.28")
        self.first_conv = "features.0"

    def features_list(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps before each max-pool (strides 1..16) and after the last one (stride 32).

        Args:
            x: ``(B, C, H, W)``.

        Returns:
            Six feature maps.

        """
        out = []
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                out.append(x)
            x = layer(x)
        out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet classification logits (as torchvision)."""
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class _DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int, bn_size: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(c_in, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))
        return torch.cat([x, new], 1)


class _Transition(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


class DenseNet121(nn.Module):
    """DenseNet-121 with torchvision names (``features.conv0``, ``features.denseblockN.denselayerM``...).

    Example:
        >>> [f.shape[1] for f in DenseNet121(in_channels=1).features_list(torch.zeros(1, 1, 64, 64))]
        [64, 256, 512, 1024, 1024]

    """

    def __init__(self, in_channels: int = 3, growth: int = 32, blocks: tuple[int, ...] = (6, 12, 24, 16)):
        super().__init__()
        f = OrderedDict(
            [
                ("conv0", nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)),
                ("norm0", nn.BatchNorm2d(64)),
                ("relu0", nn.ReLU(inplace=True)),
                ("pool0", nn.MaxPool2d(3, 2, 1)),
            ]
        )
        c = 64
        outs = [64]
        for i, n in enumerate(blocks):
            block = nn.Sequential(
                OrderedDict((f"denselayer{j + 1}", _DenseLayer(c + j * growth, growth, 4)) for j in range(n))
            )
            f[f"denseblock{i + 1}"] = block
            c += n * growth
            if i != len(blocks) - 1:
                f[f"transition{i + 1}"] = _Transition(c, c // 2)
                outs.append(c)
                c //= 2
        f["norm5"] = nn.BatchNorm2d(c)
        outs.append(c)
        self.features = nn.Sequential(f)
        self.classifier = nn.Linear(c, 1000)
        self.num_features = c
        self.out_channels = tuple(outs)
        self.strides = (2, 4, 8, 16, 32)
        self.last_block = ("features.denseblock4", "features.norm5")
        self.first_conv = "features.conv0"

    def features_list(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at strides 2 (stem), 4, 8, 16 (dense block outputs, before each transition) and 32.

        Args:
            x: ``(B, C, H, W)``.

        Returns:
            Five feature maps.

        """
        out = []
        for name, layer in self.features.named_children():
            if name == "pool0":
                out.append(x)
            if isinstance(layer, _Transition):
                out.append(x)
            x = layer(x)
        out.append(torch.relu(x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet classification logits (as torchvision)."""
        y = torch.relu(self.features(x))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


class _ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU6(inplace=True),
        )


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        self.use_res = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_ConvBNReLU(c_in, hidden, 1))
        layers += [
            _ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNet-V2 with torchvision names (``features.N``, ``classifier.1``).

    Example:
        >>> [f.shape[1] for f in MobileNetV2(in_channels=1).features_list(torch.zeros(1, 1, 64, 64))]
        [16, 24, 32, 96, 1280]

    """

    _CFG = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [_ConvBNReLU(in_channels, 32, 3, 2)]
        c = 32
        for t, out, n, s in self._CFG:
            for i in range(n):
                layers.append(_InvertedResidual(c, out, s if i == 0 else 1, t))
                c = out
        layers.append(_ConvBNReLU(c, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))
        self.num_features = 1280
        self.out_channels = (16, 24, 32, 96, 1280)
        self.strides = (2, 4, 8, 16, 32)
        self._taps = (1, 3, 6, 13, 18)
        self.last_block = ("features.17", "features.18")
        self.first_conv = "features.0.0"

    def features_list(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at strides 2, 4, 8, 16, 32.

        Args:
            x: ``(B, C, H, W)``.

        Returns:
            Five feature maps.

        """
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._taps:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet classification logits (as torchvision)."""
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


#: Backbone names accepted by :func:`make_backbone`.
BACKBONES = ("resnet34", "resnet50", "vgg16", "densenet121", "mobilenet_v2")


def make_backbone(name: str, in_channels: int = 1) -> nn.Module:
    """Build a torchvision-layout backbone by name.

    Args:
        name: one of :data:`BACKBONES` (``"mobilenet"`` is accepted for ``"mobilenet_v2"``).
        in_channels: input channels.

    Returns:
        The backbone module.

    Raises:
        ValueError: unknown name.

    Example:
        >>> make_backbone("resnet50").num_features
        2048

    """
    name = "mobilenet_v2" if name == "mobilenet" else name
    if name == "resnet34":
        return ResNet(34, in_channels)
    if name == "resnet50":
        return ResNet(50, in_channels)
    if name == "vgg16":
        return VGG16(in_channels)
    if name == "densenet121":
        return DenseNet121(in_channels)
    if name == "mobilenet_v2":
        return MobileNetV2(in_channels)
    raise ValueError(f"unknown backbone {name!r}; choose from {BACKBONES}")


def backbone_features(backbone: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Multi-scale features of any backbone from :func:`make_backbone`.

    Args:
        backbone: the backbone.
        x: input batch.

    Returns:
        Feature maps of increasing stride.

    Example:
        >>> len(backbone_features(make_backbone("vgg16"), torch.zeros(1, 1, 32, 32)))
        6

    """
    result: list[torch.Tensor] = backbone.features_list(x)  # type: ignore[operator]
    return result
