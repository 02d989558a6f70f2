"""One entry point for every network: ``get_network(name, spatial_dims, in_channels, out_channels, **kw)``.

MONAI networks are used where they exist (``unet``, ``dynunet``, ``basic_unet``, ``attention_unet``,
``swin_unetr``); the others live in :mod:`cardiacseg.networks.nets`. Every segmentation network gets a
``divisor`` (per spatial axis) and, by default, forward hooks that pad odd-sized inputs to it and crop the
output back (``pad_to_divisor=False`` refuses such inputs with a message naming the divisor instead).
Parameter groups (``encoder``, ``decoder``, ``head``, ...) for freezing are in ``parameter_groups``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.networks.nets import AttentionUnet, BasicUNet, DynUNet, SwinUNETR, UNet
from torch import nn

from cardiacseg.networks.nets.deform import DeformableBlock, DeformConv
from cardiacseg.networks.nets.densenet_fcn import DenseNetFCN
from cardiacseg.networks.nets.encoder_unet import EncoderUNet
from cardiacseg.networks.nets.slice_classifier import SliceClassifier
from cardiacseg.networks.nets.swin_unet import SwinUNet

__all__ = ["NETWORKS", "dynunet_kernels_strides", "get_network", "network_divisor"]


def dynunet_kernels_strides(
    patch_size: Sequence[int], spacing: Sequence[float], max_levels: int = 6, min_size: int = 8
) -> tuple[list[list[int]], list[list[int]]]:
    """nnU-Net's rule for kernel sizes and strides from the patch size and spacing.

    An axis is downsampled while its spacing is at most twice the finest and its size at least
    ``min_size``; its kernel is 1 while the spacing is more than twice the finest (thick slices).

    Args:
        patch_size: input size per spatial axis.
        spacing: spacing per axis (mm).
        max_levels: cap on the number of downsamplings.
        min_size: smallest feature-map size that is still halved.

    Returns:
        ``(kernels, strides)`` lists for :class:`monai.networks.nets.DynUNet`.

    Raises:
        ValueError: a size not divisible by its stride.

    Example:
        >>> k, s = dynunet_kernels_strides((128, 128, 16), (1.5, 1.5, 8.0))
        >>> s[:3], k[:2]
        ([[1, 1, 1], [2, 2, 1], [2, 2, 1]], [[3, 3, 1], [3, 3, 1]])

    """
    sizes, spacings = list(patch_size), [float(s) for s in spacing]
    if len(sizes) != len(spacings):
        raise ValueError(f"patch_size {patch_size} and spacing {spacing} differ in length")
    strides: list[list[int]] = []
    kernels: list[list[int]] = []
    while len(strides) < max_levels:
        ratio = [sp / min(spacings) for sp in spacings]
        stride = [2 if r <= 2 and size >= min_size else 1 for r, size in zip(ratio, sizes, strict=True)]
        kernel = [3 if r <= 2 else 1 for r in ratio]
        if all(s == 1 for s in stride):
            break
        for size, st in zip(sizes, stride, strict=True):
            if size % st:
                raise ValueError(f"patch size {patch_size} is not divisible by the strides {stride}")
        sizes = [size // st for size, st in zip(sizes, stride, strict=True)]
        spacings = [sp * st for sp, st in zip(spacings, stride, strict=True)]
        kernels.append(kernel)
        strides.append(stride)
    strides.insert(0, [1] * len(sizes))
    kernels.append([3] * len(sizes))
    return kernels, strides


def _divisor_from_strides(strides: Sequence[Sequence[int] | int], dims: int) -> tuple[int, ...]:
    div = [1] * dims
    for s in strides:
        per_axis = [s] * dims if isinstance(s, int) else list(s)
        div = [d * p for d, p in zip(div, per_axis, strict=True)]
    return tuple(div)


def _unet(spatial_dims: int, in_channels: int, out_channels: int, **kw: Any) -> nn.Module:
    if spatial_dims == 3:
        strides = kw.pop("strides", ((2, 2, 1), (2, 2, 1), (2, 2, 2), (2, 2, 1)))
    else:
        strides = kw.pop("strides", (2, 2, 2, 2))
    channels = kw.pop("channels", (32, 64, 128, 256, 512))
    net = UNet(
        spatial_dims,
        in_channels,
        out_channels,
        channels=channels,
        strides=strides,
        num_res_units=kw.pop("num_res_units", 2),
        norm=kw.pop("norm", "batch"),
        **kw,
    )
    net.divisor = _divisor_from_strides(strides, spatial_dims)  # type: ignore[assignment]
    net.parameter_groups = _unet_groups(len(channels))  # type: ignore[assignment]
    return net


def _unet_groups(n_levels: int) -> dict[str, tuple[str, ...]]:
    """Return the parameter groups of MONAI's recursive ``UNet`` (``model.0`` / ``.1.submodule`` / ``.2``)."""
    enc, dec = [], []
    prefix = "model."
    for _ in range(n_levels - 1):
        enc.append(prefix + "0.")
        dec.append(prefix + "2.")
        prefix += "1.submodule."
    enc.append(prefix.removesuffix("."))  # the bottom layer (named "...submodule.conv...")
    return {"encoder": tuple(enc), "decoder": tuple(dec[1:]), "head": ("model.2.",)}


class _DeformableDynUNet(DynUNet):
    """MONAI DynUNet whose bottleneck is a deformable-convolution block (the CMRxMotion study's nnU-Net)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for m in self.modules():  # DynUNet re-initialises every conv: restore zero offsets
            if isinstance(m, DeformConv):
                m.reset_offsets()

    def get_bottleneck(self) -> nn.Module:
        """Build the deformable bottleneck in place of the convolutional one."""
        stride = self.strides[-1]
        s = stride if isinstance(stride, int) else int(stride[0])
        return DeformableBlock(self.spatial_dims, self.filters[-2], self.filters[-1], stride=s)


def _dynunet(spatial_dims: int, in_channels: int, out_channels: int, **kw: Any) -> nn.Module:
    patch = kw.pop("patch_size", (256, 256) if spatial_dims == 2 else (192, 192, 16))
    spacing = kw.pop("spacing", (1.25, 1.25) if spatial_dims == 2 else (1.25, 1.25, 8.0))
    deformable = kw.pop("deformable_bottleneck", False)
    kernels, strides = dynunet_kernels_strides(patch, spacing, kw.pop("max_levels", 6))
    cap = 512 if spatial_dims == 2 else 320
    filters = kw.pop("filters", [min(32 * 2**i, cap) for i in range(len(strides))])
    if deformable and len(set(strides[-1])) != 1:
        raise ValueError(f"the deformable bottleneck needs an isotropic last stride, got {strides[-1]}")
    cls = _DeformableDynUNet if deformable else DynUNet
    net = cls(
        spatial_dims,
        in_channels,
        out_channels,
        kernel_size=kernels,
        strides=strides,
        upsample_kernel_size=strides[1:],
        filters=filters,
        res_block=kw.pop("res_block", True),
        **kw,
    )
    net.divisor = _divisor_from_strides(strides, spatial_dims)  # type: ignore[assignment]
    net.parameter_groups = {  # type: ignore[assignment]
        "encoder": ("input_block.", "downsamples."),
        "bottleneck": ("bottleneck.",),
        "decoder": ("upsamples.",),
        "head": ("output_block.", "deep_supervision_heads."),
    }
    return net


def _basic_unet(spatial_dims: int, in_channels: int, out_channels: int, **kw: Any) -> nn.Module:
    net = BasicUNet(
        spatial_dims, in_channels, out_channels, features=kw.pop("features", (32, 32, 64, 128, 256, 32)), **kw
    )
    net.divisor = (16,) * spatial_dims  # type: ignore[assignment]
    net.parameter_groups = {  # type: ignore[assignment]
        "encoder": ("conv_0.", "down_1.", "down_2.", "down_3.", "down_4."),
        "decoder": ("upcat_4.", "upcat_3.", "upcat_2.", "upcat_1."),
        "head": ("final_conv.",),
    }
    return net


def _attention_unet(spatial_dims: int, in_channels: int, out_channels: int, **kw: Any) -> nn.Module:
    channels = kw.pop("channels", (32, 64, 128, 256))
    strides = kw.pop("strides", (2, 2, 2))
    net = AttentionUnet(spatial_dims, in_channels, out_channels, channels=channels, strides=strides, **kw)
    net.divisor = _divisor_from_strides(strides, spatial_dims)  # type: ignore[assignment]
    return net


def _swin_unetr(spatial_dims: int, in_channels: int, out_channels: int, **kw: Any) -> nn.Module:
    net = SwinUNETR(
        in_channels=in_channels,
        out_channels=out_channels,
        spatial_dims=spatial_dims,
        feature_size=kw.pop("feature_size", 24),
        **kw,
    )
    net.divisor = (32,) * spatial_dims  # type: ignore[assignment]
    net.parameter_groups = {  # type: ignore[assignment]
        "encoder": ("swinViT.", "encoder1.", "encoder2.", "encoder3.", "encoder4.", "encoder10."),
        "decoder": ("decoder5.", "decoder4.", "decoder3.", "decoder2.", "decoder1."),
        "head": ("out.",),
    }
    return net


def _encoder_unet(backbone: str) -> Callable[..., nn.Module]:
    def build(spatial_dims: int, in_channels: int, out_channels: int, **kw: Any) -> nn.Module:
        net = EncoderUNet(spatial_dims, in_channels, out_channels, backbone=backbone, **kw)
        net.divisor = (32, 32)  # type: ignore[assignment]
        return net

    return build


def _swin_unet(spatial_dims: int, in_channels: int, out_channels: int, **kw: Any) -> nn.Module:
    net = SwinUNet(spatial_dims, in_channels, out_channels, **kw)
    net.divisor = (net.divisor, net.divisor)
    return net


def _densenet_fcn(spatial_dims: int, in_channels: int, out_channels: int, **kw: Any) -> nn.Module:
    net = DenseNetFCN(spatial_dims, in_channels, out_channels, **kw)
    net.divisor = (net.divisor, net.divisor)
    return net


def _slice_classifier(spatial_dims: int, in_channels: int, out_channels: int, **kw: Any) -> nn.Module:
    return SliceClassifier(spatial_dims, in_channels, out_channels, **kw)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "unet": _unet,
    "dynunet": _dynunet,
    "basic_unet": _basic_unet,
    "attention_unet": _attention_unet,
    "resnet34_unet": _encoder_unet("resnet34"),
    "resnet50_unet": _encoder_unet("resnet50"),
    "vgg16_unet": _encoder_unet("vgg16"),
    "swin_unetr": _swin_unetr,
    "swin_unet": _swin_unet,
    "densenet_fcn": _densenet_fcn,
    "slice_classifier": _slice_classifier,
}

#: Names accepted by :func:`get_network`.
NETWORKS = tuple(_BUILDERS)

#: Networks that are 2D only.
TWO_D_ONLY = ("resnet34_unet", "resnet50_unet", "vgg16_unet", "swin_unet", "densenet_fcn", "slice_classifier")


def network_divisor(net: nn.Module) -> tuple[int, ...] | None:
    """Return the per-axis size multiple a segmentation network needs, or ``None`` (classifiers).

    Args:
        net: a network from :func:`get_network`.

    Returns:
        The divisor tuple.

    Example:
        >>> network_divisor(get_network("basic_unet", 2, 1, 4))
        (16, 16)

    """
    div = getattr(net, "divisor", None)
    return None if div is None else tuple(int(d) for d in div)


def _pad_hook(name: str, pad: bool) -> tuple[Callable[..., Any], Callable[..., Any]]:
    last: dict[str, tuple[int, ...]] = {}

    def pre(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        x = args[0]
        div = network_divisor(module) or ()
        size = tuple(int(s) for s in x.shape[2:])
        if len(size) != len(div):
            raise ValueError(
                f"{name} expects {len(div)} spatial dimensions, got input of shape {tuple(x.shape)}"
            )
        target = tuple(math.ceil(s / d) * d for s, d in zip(size, div, strict=True))
        last["size"] = size
        if target == size:
            return None
        if not pad:
            raise ValueError(
                f"{name}: input spatial size {size} must be divisible by {div}; pad it (e.g. with "
                f"monai.transforms.DivisiblePad(k={list(div)})) or build the network with pad_to_divisor=True"
            )
        widths: list[int] = []
        for s, t in reversed(list(zip(size, target, strict=True))):
            before = (t - s) // 2
            widths += [before, t - s - before]
        return (F.pad(x, widths), *args[1:])

    def post(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        size = last["size"]
        if not isinstance(output, torch.Tensor) or tuple(output.shape[2:]) == size:
            return output
        padded = output.shape[2:]
        index: list[slice] = [slice(None), slice(None)]
        for s, t in zip(size, padded, strict=True):
            before = (t - s) // 2
            index.append(slice(before, before + s))
        return output[tuple(index)]

    return pre, post


def get_network(
    name: str,
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    pad_to_divisor: bool = True,
    **kwargs: Any,
) -> nn.Module:
    """Build a network by name.

    Args:
        name: one of :data:`NETWORKS`.
        spatial_dims: 2 or 3 (3 for ``unet``, ``dynunet``, ``basic_unet``, ``attention_unet``,
            ``swin_unetr``).
        in_channels: input channels.
        out_channels: classes (4 for BG/LV/MYO/RV; 3 for the slice classifier).
        pad_to_divisor: pad inputs whose size is not a multiple of the network's divisor and crop the output
            back; if False such inputs raise ``ValueError`` naming the divisor.
        kwargs: network options, e.g. ``pretrained="resnet34.pth"`` (encoder U-Nets, slice classifier),
            ``patch_size``/``spacing``/``deformable_bottleneck`` (``dynunet``),
            ``refine_head`` (``swin_unet``),
            ``backbone``/``mode`` (``slice_classifier``).

    Returns:
        The ``nn.Module`` with ``divisor`` and ``parameter_groups`` attributes where they apply.

    Raises:
        ValueError: unknown name, or a 2D-only network asked for 3D.

    Example:
        >>> net = get_network("densenet_fcn", 2, 1, 4)
        >>> net(torch.zeros(1, 1, 50, 50)).shape
        torch.Size([1, 4, 50, 50])

    """
    key = name.lower()
    if key not in _BUILDERS:
        raise ValueError(f"unknown network {name!r}; choose from {list(NETWORKS)}")
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if spatial_dims == 3 and key in TWO_D_ONLY:
        raise ValueError(f"{name} is 2D only; 3D networks: {[n for n in NETWORKS if n not in TWO_D_ONLY]}")
    net = _BUILDERS[key](spatial_dims, in_channels, out_channels, **kwargs)
    if getattr(net, "divisor", None) is not None:
        pre, post = _pad_hook(key, pad_to_divisor)
        net.register_forward_pre_hook(pre)
        net.register_forward_hook(post)
    net.network_name = key  # type: ignore[assignment]
    return net
