"""Label conventions of external data sets, converted to the internal one at the I/O boundary.

Internal: 0 BG, 1 LV, 2 MYO, 3 RV. ACDC (and the SSL4MIS HDF5 copy of it): 0 BG, 1 RV, 2 MYO, 3 LV.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cardiacseg.typing import LabelArray

__all__ = ["ACDC_TO_INTERNAL", "INTERNAL_TO_ACDC", "acdc_to_internal", "internal_to_acdc"]

#: Lookup table indexed by ACDC label value.
ACDC_TO_INTERNAL = np.array([0, 3, 2, 1], dtype=np.uint8)
#: Lookup table indexed by internal label value (the mapping is its own inverse).
INTERNAL_TO_ACDC = np.array([0, 3, 2, 1], dtype=np.uint8)


def _lookup(label: npt.NDArray[np.generic], table: npt.NDArray[np.uint8], what: str) -> LabelArray:
    arr = np.asarray(label)
    if arr.size and (arr.min() < 0 or arr.max() > 3 or not np.all(np.mod(arr, 1) == 0)):
        bad = np.unique(arr[(arr < 0) | (arr > 3) | (np.mod(arr, 1) != 0)])[:5]
        raise ValueError(f"{what} label map holds values outside 0..3: {bad.tolist()}")
    return table[arr.astype(np.intp)]


def acdc_to_internal(label: npt.NDArray[np.generic]) -> LabelArray:
    """Map ACDC labels (1 RV, 2 MYO, 3 LV) to internal ones (1 LV, 2 MYO, 3 RV).

    Args:
        label: integer label map in ACDC convention.

    Returns:
        uint8 label map in internal convention.

    Raises:
        ValueError: values outside 0..3.

    Example:
        >>> import numpy as np
        >>> acdc_to_internal(np.array([0, 1, 2, 3])).tolist()
        [0, 3, 2, 1]

    """
    return _lookup(label, ACDC_TO_INTERNAL, "ACDC")


def internal_to_acdc(label: npt.NDArray[np.generic]) -> LabelArray:
    """Map internal labels to ACDC ones.

    Args:
        label: internal label map.

    Returns:
        uint8 label map in ACDC convention.

    Raises:
        ValueError: values outside 0..3.

    Example:
        >>> import numpy as np
        >>> internal_to_acdc(np.array([0, 1, 2, 3])).tolist()
        [0, 3, 2, 1]

    """
    return _lookup(label, INTERNAL_TO_ACDC, "internal")
