"""Apply a 2D function to every in-plane slice of a channel-first image."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt


def map_inplane(
    arr: npt.NDArray[np.generic], fn: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.generic]]
) -> npt.NDArray[np.float32]:
    """Call ``fn`` on each ``(X, Y)`` slice of a ``(C, X, Y[, Z])`` array.

    Args:
        arr: channel-first array with 2 or 3 spatial axes.
        fn: maps a 2D float32 slice to a slice of the same shape.

    Returns:
        float32 array of the same shape.

    Raises:
        ValueError: when ``arr`` is not 3-D or 4-D.

    Example:
        >>> import numpy as np
        >>> map_inplane(np.ones((1, 2, 2, 3)), lambda s: s * 2).sum()
        np.float32(24.0)

    """
    if arr.ndim not in (3, 4):
        raise ValueError(f"expected channel-first (C, X, Y) or (C, X, Y, Z), got shape {arr.shape}")
    src = np.asarray(arr, dtype=np.float32)
    out = np.empty_like(src)
    if src.ndim == 3:
        for c in range(src.shape[0]):
            out[c] = fn(src[c])
    else:
        for c in range(src.shape[0]):
            for z in range(src.shape[3]):
                out[c, :, :, z] = fn(src[c, :, :, z])
    return out
