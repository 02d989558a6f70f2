"""Short-axis slice-range classifier (out-of-apical / in / out-of-basal) on ImageNet or U-Net encoders.

Source: the slice-range paper (transfer learning for cardiac short-axis slice-range classification,
``../shared/papers/slice-range.txt``): a pretrained convolutional base, global pooling to the
"penultimate features", a dense 256 + ReLU + dropout 0.5 + dense 3 head; trained with the base frozen
("fixed feature extraction", depth 0) or with the last convolutional block unfrozen ("fine-tuning",
depth 1).

Backbones:

* ImageNet layouts of :mod:`.encoders` (``vgg16``, ``resnet34``, ``resnet50``, ``densenet121``,
  ``mobilenet_v2``), weights from a local torchvision file.
* ``unet_encoder``: the down path of cardiacseg's segmentation U-Net (MONAI ``UNet`` as built by
  ``get_network("unet", 2, 1, 4)``) down to the bottom of the U, so that a classifier can start from the
  shipped cardiac segmentation model (domain transfer instead of ImageNet).

Grayscale and 2.5D input (``in_channels`` 1 or 3):

* ImageNet backbones take ``in_channels`` directly. Loading a 3-channel ImageNet file into a 1-channel
  net sums the first convolution's RGB kernels (:func:`~cardiacseg.networks.weights.adapt_first_conv`,
  ``"sum"``): a grey image then gives exactly the response of the same image repeated over RGB, which is
  what the paper did (it duplicated the grey channel). Into a 3-channel (2.5D) net the RGB kernels load
  unchanged (apex-side neighbour, slice, base-side neighbour take the R, G, B kernels); three copies of
  one slice then give the summed-kernel response, i.e. the 1-channel net's.
* ``unet_encoder`` weights are 1-channel; for ``in_channels=3`` every stage-0 kernel that reads the input
  (the residual unit's first convolution and its residual projection) is repeated over the 3 channels and
  divided by 3, so three copies of the same slice give exactly the 2D net's features.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from monai.networks.layers.simplelayers import SkipConnection
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from cardiacseg.networks.nets.encoders import BACKBONES, backbone_features, make_backbone
from cardiacseg.networks.weights import (
    LoadReport,
    WeightLoadError,
    adapt_first_conv,
    freeze,
    load_partial,
    load_state_dict_file,
    load_torchvision_backbone,
)
from cardiacseg.typing import PathLike

__all__ = ["SLICE_CLASSIFIER_BACKBONES", "SliceClassifier", "TrainMode", "UNetEncoder"]

#: Training modes: everything, the head only, or the head and the backbone's last stage.
TrainMode = Literal["finetune", "feature_extraction", "last_block"]

#: Backbones accepted by :class:`SliceClassifier`.
SLICE_CLASSIFIER_BACKBONES = (*BACKBONES, "unet_encoder")


def _drop_classifier(backbone: nn.Module) -> None:
    for name in ("fc", "classifier"):
        if hasattr(backbone, name):
            setattr(backbone, name, nn.Identity())


class UNetEncoder(nn.Module):
    """The down path of MONAI's recursive ``UNet``, as a backbone with ``features_list``.

    MONAI builds ``UNet.model`` recursively as ``Sequential(down, SkipConnection(sub), up)``; ``sub`` is the
    next such block, and at the bottom of the U a stride-1 down layer (the bottleneck, ``channels[-1]``
    outputs). The stages here are the ``down`` layers from the top and that bottom layer, in order
    (``stages.i``); their segmentation-checkpoint names are in :attr:`source_prefixes`
    (``model.0.``, ``model.1.submodule.0.``, ..., ``model.1.submodule.1.submodule.1.submodule.1.submodule.``).

    With cardiacseg's default U-Net (channels 32..512, strides 2, 2, 2, 2) the five maps have 32, 64, 128,
    256 and 512 channels at strides 2, 4, 8, 16 and 16; ``num_features`` is 512.

    Args:
        in_channels: input channels (1: a slice; 3: a slice and its two neighbours).
        unet_kwargs: options of the segmentation ``get_network("unet", ...)`` (defaults: the shipped model).

    Example:
        >>> enc = UNetEncoder(1)
        >>> [f.shape[1:] for f in enc.features_list(torch.zeros(1, 1, 32, 32))][-1]
        torch.Size([512, 2, 2])

    """

    def __init__(self, in_channels: int = 1, unet_kwargs: dict[str, Any] | None = None):
        super().__init__()
        from cardiacseg.networks.factory import get_network  # the factory imports this module

        unet = get_network("unet", 2, in_channels, 4, **(unet_kwargs or {}))
        stages: list[nn.Module] = []
        prefixes: list[str] = []
        block: nn.Module = unet.get_submodule("model")
        prefix = "model."
        while True:
            if not (
                isinstance(block, nn.Sequential) and len(block) == 3 and isinstance(block[1], SkipConnection)
            ):
                raise TypeError(f"unexpected MONAI UNet structure at {prefix!r}: {type(block).__name__}")
            stages.append(block[0])
            prefixes.append(prefix + "0.")
            sub = block[1].submodule
            prefix += "1.submodule."
            if isinstance(sub, nn.Sequential) and len(sub) == 3 and isinstance(sub[1], SkipConnection):
                block = sub
                continue
            stages.append(sub)  # the bottom of the U
            prefixes.append(prefix)
            break
        self.stages = nn.ModuleList(stages)
        #: checkpoint-key prefix of each stage in the segmentation U-Net's state dict
        self.source_prefixes: tuple[str, ...] = tuple(prefixes)
        channels = tuple(int(c) for c in unet.channels)  # type: ignore[union-attr]
        strides = [int(s) for s in unet.strides]  # type: ignore[union-attr]
        cum, acc = [], 1
        for s in [*strides[: len(channels) - 1], 1]:
            acc *= s
            cum.append(acc)
        self.out_channels = channels
        self.strides = tuple(cum)
        self.num_features = channels[-1]
        self.last_block = (f"stages.{len(stages) - 1}",)
        self.in_channels = in_channels

    def features_list(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of every stage, top to bottom.

        Args:
            x: ``(B, C, H, W)``.

        Returns:
            One map per stage (the last is the bottom of the U).

        """
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the bottom-of-the-U feature map ``(B, num_features, H/16, W/16)``."""
        return self.features_list(x)[-1]

    def load_segmentation_weights(
        self, weights: PathLike | dict[str, torch.Tensor], prefix: str = ""
    ) -> LoadReport:
        """Load the encoder part of a segmentation U-Net state dict (decoder keys are skipped).

        Stage-0 kernels that read the input are adapted from 1 to ``in_channels`` channels (repeated and
        divided by ``in_channels``: :func:`~cardiacseg.networks.weights.adapt_first_conv`).

        Args:
            weights: a segmentation ``model.pt`` (e.g. the shipped ``cardiac_cine_seg/models/model.pt``) or
                its state dict.
            prefix: where this encoder sits in the model whose state dict is loaded into (set by
                :class:`SliceClassifier`: ``"backbone."``); the encoder itself when empty.

        Returns:
            A :class:`~cardiacseg.networks.weights.LoadReport` (model keys, the adapted ones named).

        Raises:
            WeightLoadError: an encoder tensor is missing from the file, or a shape does not fit.
            FileNotFoundError: missing file.

        """
        sd = dict(weights) if isinstance(weights, dict) else load_state_dict_file(weights)
        own = self.state_dict()
        renamed: dict[str, torch.Tensor] = {}
        adapted: dict[str, str] = {}
        for i, src in enumerate(self.source_prefixes):
            for key, value in sd.items():
                if not key.startswith(src):
                    continue
                name = f"stages.{i}.{key[len(src) :]}"
                reads_input = i == 0 and value.ndim == 4 and value.shape[1] == 1 and name in own
                if reads_input and own[name].shape[1] == self.in_channels != 1:
                    value = adapt_first_conv(value.float(), self.in_channels)  # not in float16
                    adapted[prefix + name] = (
                        f"1-channel kernel repeated over {self.in_channels} channels / {self.in_channels}"
                    )
                renamed[name] = value
        report = load_partial(self, renamed, strict_shapes=True)
        absent = [k for k in self.state_dict() if k not in report.loaded]
        if absent:
            raise WeightLoadError(
                f"segmentation weights lack {len(absent)} encoder tensors, e.g. {absent[:5]}"
            )
        report.loaded = [prefix + k for k in report.loaded]
        report.missing = [prefix + k for k in report.missing]
        report.skipped = {
            k: "decoder (not part of the encoder)" for k in sd if not k.startswith(self.source_prefixes)
        }
        report.adapted = adapted
        return report


class SliceClassifier(nn.Module):
    """Short-axis slice-range classifier: out-of-apical (0), in (1), out-of-basal (2).

    A backbone, global average pooling to the penultimate features (:meth:`features`, ``(B, F)``) and the
    paper's head (dense 256 + ReLU, dropout 0.5, dense ``out_channels``; softmax is left to the loss /
    predictor). ``mode`` selects what trains: ``"finetune"`` (everything), ``"feature_extraction"``
    (backbone frozen, head only; the paper's depth 0) or ``"last_block"`` (head and the backbone's last
    stage; depth 1). Batch-norm layers whose parameters are frozen stay in eval mode when the network is
    put in training mode (their running statistics are part of the fixed features, as Keras does with
    frozen batch norm).

    ``F`` is 512 (``vgg16``, ``resnet34``, ``unet_encoder``), 2048 (``resnet50``), 1024 (``densenet121``),
    1280 (``mobilenet_v2``).

    Args:
        spatial_dims: must be 2.
        in_channels: 1 (a slice) or 3 (2.5D: apex-side neighbour, slice, base-side neighbour).
        out_channels: classes (3).
        backbone: one of :data:`SLICE_CLASSIFIER_BACKBONES`.
        mode: which parameters train.
        dropout: head dropout.
        pretrained: local weights for the backbone: a torchvision ImageNet state dict for the ImageNet
            backbones, a segmentation U-Net state dict (e.g. ``cardiac_cine_seg/models/model.pt``) for
            ``unet_encoder`` (only its encoder keys are used). A path or a state dict.

    Raises:
        ValueError: ``spatial_dims`` not 2, unknown backbone or mode.

    Example:
        >>> net = SliceClassifier(2, 1, 3, backbone="unet_encoder", mode="feature_extraction")
        >>> x = torch.zeros(2, 1, 64, 64)
        >>> net(x).shape, net.features(x).shape
        (torch.Size([2, 3]), torch.Size([2, 512]))

    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int = 3,
        backbone: str = "resnet34",
        mode: TrainMode = "finetune",
        dropout: float = 0.5,
        pretrained: PathLike | dict[str, torch.Tensor] | None = None,
    ):
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(f"the slice classifier is 2D, got spatial_dims={spatial_dims}")
        if backbone not in SLICE_CLASSIFIER_BACKBONES and backbone != "mobilenet":
            raise ValueError(f"unknown backbone {backbone!r}; choose from {SLICE_CLASSIFIER_BACKBONES}")
        self.backbone_name = backbone
        self.in_channels = in_channels
        self.backbone: nn.Module
        if backbone == "unet_encoder":
            self.backbone = UNetEncoder(in_channels)
        else:
            self.backbone = make_backbone(backbone, in_channels)
            _drop_classifier(self.backbone)
        n = int(self.backbone.num_features)  # type: ignore[arg-type]
        self.num_features = n
        self.head = nn.Sequential(
            nn.Linear(n, 256), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(256, out_channels)
        )
        last = tuple(f"backbone.{p}." for p in self.backbone.last_block)  # type: ignore[union-attr]
        self.parameter_groups = {"encoder": ("backbone.",), "last_block": last, "head": ("head.",)}
        self.load_report: LoadReport | None = None
        if pretrained is not None:
            if isinstance(self.backbone, UNetEncoder):
                self.load_report = self.backbone.load_segmentation_weights(
                    pretrained if not isinstance(pretrained, dict) else dict(pretrained), prefix="backbone."
                )
            else:
                self.load_report = load_torchvision_backbone(self, pretrained, prefix="backbone.")
        self.set_mode(mode)

    def set_mode(self, mode: TrainMode) -> None:
        """Choose which parameters train (``requires_grad``).

        Args:
            mode: ``"finetune"``, ``"feature_extraction"`` or ``"last_block"``.

        Raises:
            ValueError: unknown mode.

        """
        if mode not in ("finetune", "feature_extraction", "last_block"):
            raise ValueError(f"mode must be finetune, feature_extraction or last_block, got {mode!r}")
        for p in self.parameters():
            p.requires_grad_(True)
        if mode != "finetune":
            freeze(self, ["encoder"])
        if mode == "last_block":
            for name, p in self.named_parameters():
                if name.startswith(self.parameter_groups["last_block"]):
                    p.requires_grad_(True)
        self.mode = mode
        self.train(self.training)

    def train(self, mode: bool = True) -> SliceClassifier:
        """Set training mode; batch-norm layers with frozen parameters stay in eval mode.

        Args:
            mode: training (True) or evaluation (False).

        Returns:
            ``self``.

        """
        super().train(mode)
        if mode:
            for m in self.backbone.modules():
                if isinstance(m, _BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                    m.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features: the backbone's last map, globally average-pooled (the head's input).

        Args:
            x: ``(B, C, H, W)``.

        Returns:
            ``(B, F)`` with ``F = num_features`` (for t-SNE and fixed-feature classifiers).

        """
        f = backbone_features(self.backbone, x)[-1]
        return torch.flatten(F.adaptive_avg_pool2d(f, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify a batch of slices.

        Args:
            x: ``(B, C, H, W)``.

        Returns:
            Logits ``(B, out_channels)``.

        """
        out: torch.Tensor = self.head(self.features(x))
        return out
