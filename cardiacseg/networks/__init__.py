"""Network factories (`get_network(name, spatial_dims, in_channels, out_channels)`) and weight helpers."""

from __future__ import annotations

from cardiacseg.networks.factory import NETWORKS, dynunet_kernels_strides, get_network, network_divisor
from cardiacseg.networks.nets.deform import DeformableBlock, DeformConv
from cardiacseg.networks.nets.densenet_fcn import DenseNetFCN
from cardiacseg.networks.nets.encoder_unet import EncoderUNet
from cardiacseg.networks.nets.encoders import BACKBONES, make_backbone
from cardiacseg.networks.nets.slice_classifier import SliceClassifier
from cardiacseg.networks.nets.swin_unet import SwinUNet
from cardiacseg.networks.weights import (
    LoadReport,
    WeightLoadError,
    count_parameters,
    freeze,
    load_partial,
    load_state_dict_file,
    load_torchvision_backbone,
    unfreeze,
)

__all__ = [
    "BACKBONES",
    "NETWORKS",
    "DeformConv",
    "DeformableBlock",
    "DenseNetFCN",
    "EncoderUNet",
    "LoadReport",
    "SliceClassifier",
    "SwinUNet",
    "WeightLoadError",
    "count_parameters",
    "dynunet_kernels_strides",
    "freeze",
    "get_network",
    "load_partial",
    "load_state_dict_file",
    "load_torchvision_backbone",
    "make_backbone",
    "network_divisor",
    "unfreeze",
]
