"""Which floating-point precision a network runs in: native bfloat16 detection and ``"auto"`` resolution.

Shared by training (:class:`cardiacseg.engines.precision.AutocastInferer`) and prediction
(:class:`cardiacseg.inferers.SlicePredictor`), so both decide ``"auto"`` the same way: bfloat16 autocast only
where the device computes it natively, because emulated bfloat16 is several times slower than float32 (119 s
instead of 35 s for one study on an AMD EPYC without it, issue 21).
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["PRECISIONS", "native_bf16", "resolve_precision"]

#: Accepted precision names: ``"fp32"``, ``"bf16"`` (autocast to bfloat16) and ``"auto"``.
PRECISIONS = ("fp32", "bf16", "auto")


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether the device computes bfloat16 natively (so that bf16 is faster, not emulated).

    Args:
        device: a torch device.

    Returns:
        CUDA: ``torch.cuda.is_bf16_supported()``; CPU: the ``avx512_bf16`` or ``amx_bf16`` flag in
        ``/proc/cpuinfo`` (Linux x86); ``False`` elsewhere.

    Example:
        >>> isinstance(native_bf16("cpu"), bool)
        True

    """
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if dev.type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """Resolve ``"auto"`` to ``"bf16"`` where :func:`native_bf16` says so, else ``"fp32"``.

    Args:
        precision: one of :data:`PRECISIONS`.
        device: where the network runs.

    Returns:
        ``"fp32"`` or ``"bf16"``.

    Raises:
        ValueError: an unknown precision name.

    Example:
        >>> resolve_precision("fp32")
        'fp32'

    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision
