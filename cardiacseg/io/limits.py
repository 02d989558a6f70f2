"""Memory bounds for inputs: estimate an allocation from the header before making it, refuse what cannot fit.

Every reader checks the array it is about to allocate (from Rows x Columns x frames, or a NIfTI header's
shape) with :func:`check_allocation` *before* decoding pixels, so a corrupt or implausible header (a
declared 60,000 x 60,000 image, a ``(T, Z, Y, X)`` array saved with the axes swapped) ends in a clear
error instead of a process that grows until the machine stops it.

The budget is :data:`DEFAULT_MAX_ARRAY_BYTES` (2 GiB for one float32 study array: a 60-phase,
30-slice, 512 x 512 cine takes 1.9 GB), lowered to half the memory the machine has available, and can
be set with the environment variable ``CARDIACSEG_MAX_ARRAY_GB``.
"""

from __future__ import annotations

import os

from cardiacseg.typing import PathLike

__all__ = ["DEFAULT_MAX_ARRAY_BYTES", "InputTooLargeError", "check_allocation", "max_array_bytes"]

#: Largest single study array (bytes) read by default.
DEFAULT_MAX_ARRAY_BYTES = 2 * 1024**3


class InputTooLargeError(ValueError):
    """An input whose declared size would need more memory than the budget; the message names the file."""


def _available_bytes() -> int | None:
    """MemAvailable from ``/proc/meminfo`` (Linux), else ``None``."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def max_array_bytes() -> int:
    """Return the allocation budget for one study array, in bytes.

    Returns:
        ``CARDIACSEG_MAX_ARRAY_GB`` (GiB) when set, else :data:`DEFAULT_MAX_ARRAY_BYTES`; in both cases at
        most half of the memory currently available.

    Raises:
        ValueError: when ``CARDIACSEG_MAX_ARRAY_GB`` is not a positive number.

    Example:
        >>> max_array_bytes() > 0
        True

    """
    env = os.environ.get("CARDIACSEG_MAX_ARRAY_GB")
    budget = DEFAULT_MAX_ARRAY_BYTES
    if env:
        try:
            gb = float(env)
        except ValueError:
            gb = -1.0
        if not gb > 0:
            raise ValueError(f"CARDIACSEG_MAX_ARRAY_GB={env!r}: expected a positive number of GiB")
        budget = int(gb * 1024**3)
    avail = _available_bytes()
    if avail is not None:
        budget = min(budget, avail // 2)
    return budget


def check_allocation(n_bytes: int, what: str, path: PathLike) -> None:
    """Refuse an allocation that exceeds :func:`max_array_bytes`.

    Args:
        n_bytes: bytes the caller is about to allocate (estimated from header values).
        what: what would be allocated, in words a user understands (e.g. ``"cine array (20, 12, 256,
            256) float32"``).
        path: the input file or folder the size comes from (named in the error).

    Raises:
        InputTooLargeError: when ``n_bytes`` is negative or over the budget; the message names ``path``,
            ``what`` and both sizes.

    Example:
        >>> check_allocation(20 * 12 * 256 * 256 * 4, "cine array", "study/")
        >>> check_allocation(10 * 1024**4, "cine array", "study/")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        cardiacseg.io.limits.InputTooLargeError: study/: cine array needs 10240.0 GiB, ...

    """
    budget = max_array_bytes()
    if n_bytes < 0 or n_bytes > budget:
        raise InputTooLargeError(
            f"{path}: {what} needs {n_bytes / 1024**3:.1f} GiB, more than the {budget / 1024**3:.1f} GiB "
            "allowed (set CARDIACSEG_MAX_ARRAY_GB to allow more); the header's sizes may be corrupt"
        )
