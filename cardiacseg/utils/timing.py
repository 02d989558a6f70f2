"""Seconds spent per stage of a study's segmentation (read, resample/crop, network, inverse, ...).

Off unless a caller asks: :func:`stage` costs one context-variable lookup when nothing records. Used by
``benchmarks/segment_study.py`` for its per-stage table; any caller can do the same::

    with record_stages() as times:
        segment_study("dicoms/SCD0000101", "out", predictor)
    print(times.seconds)  # {"read": 0.61, "resample/crop": 0.12, "network": 2.9, ...}

Stages never overlap: each timed block is innermost where it is used.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

__all__ = ["StageTimes", "record_stages", "stage"]


@dataclass
class StageTimes:
    """Accumulated seconds per stage name, in the order the stages were first entered.

    Example:
        >>> t = StageTimes()
        >>> t.add("read", 0.5); t.add("read", 0.25)
        >>> t.seconds
        {'read': 0.75}

    """

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to stage ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


_ACTIVE: ContextVar[StageTimes | None] = ContextVar("cardiacseg_stage_times", default=None)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as stage ``name`` when :func:`record_stages` is active (else do nothing).

    Args:
        name: the stage, e.g. ``"network"``.

    Example:
        >>> with record_stages() as times:
        ...     with stage("read"):
        ...         pass
        >>> list(times.seconds)
        ['read']

    """
    times = _ACTIVE.get()
    if times is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        times.add(name, time.perf_counter() - start)


@contextmanager
def record_stages() -> Iterator[StageTimes]:
    """Record the stages run inside the block (this thread or task only).

    Returns:
        A context manager giving the :class:`StageTimes` filled while the block runs.

    Example:
        >>> with record_stages() as times:
        ...     pass
        >>> times.seconds
        {}

    """
    times = StageTimes()
    token = _ACTIVE.set(times)
    try:
        yield times
    finally:
        _ACTIVE.reset(token)
