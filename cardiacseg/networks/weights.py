"""Pretrained weights from local files, partial loading, freezing by named groups.

Nothing is downloaded: ImageNet weights are read from a local file in torchvision's state-dict format
(``torch.save(torchvision.models.resnet34(weights=...).state_dict(), "resnet34.pth")`` on any machine
with torchvision).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from cardiacseg.typing import PathLike

__all__ = [
    "LoadReport",
    "WeightLoadError",
    "adapt_first_conv",
    "count_parameters",
    "export_half_precision",
    "freeze",
    "load_partial",
    "load_state_dict_file",
    "load_torchvision_backbone",
    "parameter_groups",
    "save_half_precision",
    "unfreeze",
]


class WeightLoadError(ValueError):
    """Weights that do not fit a model; the message names the keys and shapes."""


@dataclass
class LoadReport:
    """What a partial load did.

    Attributes:
        loaded: model keys that received a tensor.
        skipped: checkpoint keys not loaded, with the reason (absent from the model, shape mismatch).
        missing: model keys the checkpoint did not provide (left as initialised).
        adapted: keys whose tensor was adapted (e.g. first conv summed over RGB).

    Example:
        >>> LoadReport(loaded=["a"], skipped={"fc.weight": "shape (1000, 512) vs model (3, 512)"}).summary()
        'loaded 1 tensors; skipped 1 (fc.weight: shape (1000, 512) vs model (3, 512)); 0 left as initialised'

    """

    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    adapted: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for a log.

        Returns:
            Counts and the first few skipped keys with reasons.

        """
        skipped = "; ".join(f"{k}: {v}" for k, v in list(self.skipped.items())[:5])
        more = "" if len(self.skipped) <= 5 else f"; ... {len(self.skipped) - 5} more"
        return (
            f"loaded {len(self.loaded)} tensors; skipped {len(self.skipped)}"
            f"{f' ({skipped}{more})' if skipped else ''}; {len(self.missing)} left as initialised"
        )


def load_state_dict_file(path: PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict saved with ``torch.save`` (plain, or under a ``"state_dict"``/``"model"`` key).

    Args:
        path: a ``.pt``/``.pth`` file.

    Returns:
        The state dict (tensors on CPU).

    Raises:
        FileNotFoundError: the file does not exist.
        WeightLoadError: the file holds no state dict.

    Example:
        >>> sd = load_state_dict_file("resnet34-imagenet.pth")  # doctest: +SKIP

    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(
            f"{p}: weights file not found (nothing is downloaded; save the weights locally)"
        )
    obj = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "network"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightLoadError(f"{p}: does not hold a state dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def adapt_first_conv(
    weight: torch.Tensor, in_channels: int, mode: Literal["sum", "mean"] = "sum"
) -> torch.Tensor:
    """Adapt an RGB first-convolution kernel ``(out, 3, k, k)`` to ``in_channels``.

    For one channel the RGB kernels are summed (a grey image repeated over RGB gives the same response)
    or averaged; for more channels the summed kernel is repeated and scaled by ``1 / in_channels``.

    Args:
        weight: the pretrained kernel.
        in_channels: target input channels.
        mode: ``"sum"`` or ``"mean"``.

    Returns:
        The adapted kernel.

    Example:
        >>> adapt_first_conv(torch.ones(8, 3, 3, 3), 1).shape
        torch.Size([8, 1, 3, 3])

    """
    if weight.shape[1] == in_channels:
        return weight
    combined = weight.sum(dim=1, keepdim=True) if mode == "sum" else weight.mean(dim=1, keepdim=True)
    if in_channels == 1:
        return combined
    return combined.repeat(1, in_channels, *([1] * (weight.ndim - 2))) / in_channels


def load_partial(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], prefix: str = "", strict_shapes: bool = False
) -> LoadReport:
    """Load every tensor whose (prefixed) name and shape match; report the rest.

    Args:
        model: the target model.
        state_dict: source tensors.
        prefix: prepended to each source key to find the model key (e.g. ``"encoder."``).
        strict_shapes: raise on a shape mismatch instead of skipping it.

    Returns:
        A :class:`LoadReport`.

    Raises:
        WeightLoadError: with ``strict_shapes``, listing each mismatching key and both shapes; or when no
            key at all matches by name (the message shows example keys from both sides).

    Example:
        >>> src, dst = nn.Linear(4, 3), nn.Linear(4, 2)
        >>> r = load_partial(dst, src.state_dict())
        >>> sorted(r.skipped)
        ['bias', 'weight']

    """
    own = model.state_dict()
    report = LoadReport()
    mismatches = []
    new = {}
    for key, value in state_dict.items():
        target = prefix + key
        if target not in own:
            report.skipped[key] = "not in the model"
        elif own[target].shape != value.shape:
            reason = f"shape {tuple(value.shape)} vs model {tuple(own[target].shape)}"
            report.skipped[key] = reason
            mismatches.append(f"{key}: {reason}")
        else:
            new[target] = value.to(own[target].dtype)
            report.loaded.append(target)
    if strict_shapes and mismatches:
        raise WeightLoadError("shape mismatch: " + "; ".join(mismatches))
    if state_dict and not any(prefix + k in own for k in state_dict):
        raise WeightLoadError(
            f"no tensor matched: checkpoint keys like {list(state_dict)[:3]}, model keys like "
            f"{list(own)[:3]} (prefix {prefix!r})"
        )
    model.load_state_dict(new, strict=False)
    report.missing = [k for k in own if k not in new]
    return report


def load_torchvision_backbone(
    backbone: nn.Module,
    weights: PathLike | Mapping[str, torch.Tensor],
    prefix: str = "",
    first_conv_mode: Literal["sum", "mean"] = "sum",
) -> LoadReport:
    """Load ImageNet weights in torchvision's key layout into a backbone of :mod:`.nets.encoders`.

    The first convolution is adapted to the backbone's input channels (:func:`adapt_first_conv`); the
    ImageNet classifier (``fc``/``classifier``) is skipped.

    Args:
        backbone: a module built by :func:`~cardiacseg.networks.nets.encoders.make_backbone`, or a model
            holding one under ``prefix``.
        weights: a local file or a state dict.
        prefix: where the backbone sits inside ``backbone`` (e.g. ``"encoder."``).
        first_conv_mode: ``"sum"`` or ``"mean"`` over RGB.

    Returns:
        A :class:`LoadReport`.

    Raises:
        WeightLoadError: keys or shapes that do not fit the backbone (named in the message).

    Example:
        >>> net = make_backbone("resnet34", in_channels=1)  # doctest: +SKIP
        >>> load_torchvision_backbone(net, "resnet34-imagenet.pth").summary()  # doctest: +SKIP

    """
    sd = dict(weights) if isinstance(weights, Mapping) else load_state_dict_file(weights)
    inner = backbone.get_submodule(prefix.rstrip(".")) if prefix else backbone
    first = getattr(inner, "first_conv", None)
    classifier = tuple(k for k in ("fc.", "classifier.") if any(s.startswith(k) for s in sd))
    own = backbone.state_dict()
    adapted = {}
    if first is not None and f"{first}.weight" in sd:
        key = f"{first}.weight"
        want = own[prefix + key].shape[1]
        if sd[key].shape[1] != want:
            adapted[prefix + key] = f"RGB kernel {mode_word(first_conv_mode)} to {want} channel(s)"
            sd[key] = adapt_first_conv(sd[key], want, first_conv_mode)
    sd = {k: v for k, v in sd.items() if not k.startswith(classifier) or not classifier}
    report = load_partial(backbone, sd, prefix=prefix, strict_shapes=True)
    report.adapted = adapted
    expected = [
        k for k in own if k.startswith(prefix) and not k[len(prefix) :].startswith(("fc.", "classifier."))
    ]
    absent = [k for k in expected if k not in report.loaded]
    if absent:
        raise WeightLoadError(f"weights lack {len(absent)} backbone tensors, e.g. {absent[:5]}")
    return report


def mode_word(mode: str) -> str:
    """Describe an adaptation mode.

    Args:
        mode: ``"sum"`` or ``"mean"``.

    Returns:
        ``"summed"`` or ``"averaged"``.

    Example:
        >>> mode_word("sum")
        'summed'

    """
    return "summed" if mode == "sum" else "averaged"


def parameter_groups(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """Named parameter groups of a model (module-name prefixes), from its ``parameter_groups`` attribute.

    Args:
        model: a cardiacseg network (or a wrapper around one).

    Returns:
        ``{group: prefixes}``, e.g. ``{"encoder": ("encoder.",), "decoder": (...), "head": (...)}``.

    Example:
        >>> parameter_groups(nn.Linear(2, 2))
        {'all': ('',)}

    """
    groups = getattr(model, "parameter_groups", None)
    if groups is None:
        return {"all": ("",)}
    return dict(groups)


def _select(model: nn.Module, groups: Iterable[str]) -> list[nn.Parameter]:
    table = parameter_groups(model)
    chosen = list(groups)
    unknown = [g for g in chosen if g not in table]
    if unknown:
        raise ValueError(
            f"unknown parameter group(s) {unknown} for {type(model).__name__}; available: {sorted(table)}"
        )
    prefixes = tuple(p for g in chosen for p in table[g])
    return [p for n, p in model.named_parameters() if n.startswith(prefixes)]


def freeze(model: nn.Module, groups: Iterable[str]) -> int:
    """Stop gradients for the parameters of the named groups.

    Args:
        model: the network.
        groups: group names (see :func:`parameter_groups`).

    Returns:
        Number of parameters frozen.

    Raises:
        ValueError: an unknown group (the message lists the available ones).

    Example:
        >>> freeze(nn.Linear(2, 2), ["all"])
        6

    """
    params = _select(model, groups)
    for p in params:
        p.requires_grad_(False)
    return sum(p.numel() for p in params)


def unfreeze(model: nn.Module, groups: Iterable[str]) -> int:
    """Re-enable gradients for the named groups.

    Args:
        model: the network.
        groups: group names.

    Returns:
        Number of parameters unfrozen.

    Raises:
        ValueError: an unknown group.

    Example:
        >>> unfreeze(nn.Linear(2, 2), ["all"])
        6

    """
    params = _select(model, groups)
    for p in params:
        p.requires_grad_(True)
    return sum(p.numel() for p in params)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Count parameters.

    Args:
        model: the network.
        trainable_only: only those with ``requires_grad``.

    Returns:
        The number of scalar parameters.

    Example:
        >>> count_parameters(nn.Linear(2, 3))
        9

    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def export_half_precision(source: PathLike, target: PathLike) -> Path:
    """Save a checkpoint's floating-point tensors in float16 (half the size; ``load_state_dict`` casts back).

    Args:
        source: a state-dict file (e.g. the best model of a training run).
        target: output file (written atomically).

    Returns:
        The written path.

    Raises:
        FileNotFoundError: missing source.

    Example:
        >>> export_half_precision("models/train/model.pt", "models/model.pt")  # doctest: +SKIP

    """
    return save_half_precision(load_state_dict_file(source), target)


def save_half_precision(state_dict: Mapping[str, torch.Tensor], target: PathLike) -> Path:
    """Save a state dict with its floating-point tensors in float16, on the CPU, atomically.

    Args:
        state_dict: e.g. ``network.state_dict()``.
        target: output file (replaced if it exists; its folder is created).

    Returns:
        The written path.

    Example:
        >>> save_half_precision(net.state_dict(), "models/model.pt")  # doctest: +SKIP

    """
    from cardiacseg.utils.atomic import atomic_write

    half = {k: (v.half() if v.is_floating_point() else v).cpu() for k, v in state_dict.items()}
    return atomic_write(target, lambda p: torch.save(half, p), overwrite=True)
