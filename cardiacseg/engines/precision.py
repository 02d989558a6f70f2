"""Training in bfloat16 autocast on any device, CPU included (MONAI's ``amp`` flag is CUDA float16 only).

MONAI's ``SupervisedTrainer(amp=True)`` wraps the forward pass in ``torch.autocast("cuda")`` with a
``GradScaler``; on a CPU it does nothing. :class:`AutocastInferer` is the trainer's ``inferer``: the network's
forward pass runs under ``torch.autocast(<device>, torch.bfloat16)`` and its outputs come back as float32, so
the loss, the backward pass's gradient accumulation, the optimiser and the weights stay float32 (bfloat16 has
float32's exponent range, so no loss scaling is needed: PyTorch AMP documentation, "CPU Training").
On a 2-core Intel Xeon with AMX, a training step of the shipped U-Net (batch 16, 128 x 128) takes 0.55 s
instead of 0.97 s (with the channels-last weights of :func:`training_memory_format`).
"""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer
from torch import nn

from cardiacseg.networks.precision import resolve_precision

__all__ = ["AutocastInferer", "training_memory_format"]


def _to_float32(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (list, tuple)):
        return type(out)(_to_float32(o) for o in out)
    return out


class AutocastInferer(Inferer):
    """Call the network under bfloat16 autocast (``"bf16"``, or ``"auto"`` where native); float32 outputs.

    Args:
        precision: ``"fp32"`` (plain call), ``"bf16"`` or ``"auto"``
            (:func:`~cardiacseg.networks.precision.resolve_precision`, on ``device``).
        device: where the network runs (for ``"auto"``).

    Raises:
        ValueError: an unknown precision name.

    Example:
        >>> inferer = AutocastInferer("fp32")
        >>> inferer(torch.ones(1, 1, 4, 4), torch.nn.Identity()).dtype
        torch.float32

    """

    def __init__(self, precision: str = "auto", device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.precision = resolve_precision(precision, device)

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``network(inputs, *args, **kwargs)``; tensors of float type come back as float32."""
        if self.precision == "fp32":
            return network(inputs, *args, **kwargs)
        with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
            out = network(inputs, *args, **kwargs)
        return _to_float32(out)


def training_memory_format(
    network: nn.Module, precision: str = "auto", device: str | torch.device = "cpu"
) -> nn.Module:
    """Channels-last weights on a CPU when training in bfloat16 (oneDNN's fastest layout there), else as is.

    Measured on a 2-core Intel Xeon with AMX (shipped U-Net, batch 16 at 128 x 128): 0.55 s per step with
    channels-last against 0.61 s without in bfloat16; no gain in float32, so float32 keeps the default layout.
    Checkpoints are unaffected (a state dict holds values, not the layout).

    Args:
        network: the module (moved in place, as ``nn.Module.to`` does).
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"``.
        device: where it trains.

    Returns:
        ``network``.

    Example:
        >>> net = training_memory_format(torch.nn.Conv2d(1, 2, 3), "fp32")

    """
    if resolve_precision(precision, device) == "bf16" and torch.device(device).type == "cpu":
        network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return network
