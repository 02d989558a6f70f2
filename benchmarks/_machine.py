"""What machine a benchmark ran on (every benchmark states its CPU and whether it has native bfloat16)."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo (else what :mod:`platform` says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_bf16_flags() -> str:
    """Which of the native bfloat16 flags ``avx512_bf16`` and ``amx_bf16`` /proc/cpuinfo lists."""
    try:
        flags: set[str] = set()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
    except OSError:
        return "CPU flags unknown"
    return ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in ("avx512_bf16", "amx_bf16"))


def dense_matmul_flops_per_s(side: int = 2048, repeats: int = 5) -> float:
    """This CPU's dense fp32 matmul rate (FLOP/s) at torch's current thread count: the FLOP-bound floor.

    One warm-up product, then ``repeats`` timed products of two ``side x side`` matrices (2 side^3 FLOPs
    each).
    """
    import time

    import torch

    a = torch.rand(side, side)
    a @ a
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return repeats * 2 * side**3 / (time.perf_counter() - start)


def cpu_ticks() -> tuple[int, int]:
    """``(steal, total)`` CPU ticks of all CPUs since boot, from the ``cpu`` line of /proc/stat ((0, 0) if
    unreadable). On a virtual machine, steal is time the host gave this guest's virtual CPUs to others."""
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("cpu "):
                fields = [int(v) for v in line.split()[1:]]
                steal = fields[7] if len(fields) > 7 else 0
                return steal, sum(fields[:8])
    except (OSError, ValueError):
        pass
    return 0, 0


def steal_share(start: tuple[int, int], end: tuple[int, int]) -> float:
    """Share of CPU time stolen by the host between two :func:`cpu_ticks` readings (0-1; nan if unknown).

    Seconds measured while a large share is stolen are slower than the machine is: say so beside them.
    """
    total = end[1] - start[1]
    return (end[0] - start[0]) / total if total > 0 else float("nan")
