"""Which short-axis slices lie inside the LV (between apex and base): a segmentation-based rule.

The rule follows the SCMR post-processing recommendation for the base: a slice counts when its LV blood
pool is at least half surrounded by myocardium (through the mitral valve the ring opens into the atrium);
below the apex, a slice counts while it carries myocardium. The slices kept are the longest contiguous run
of slices that count, so isolated false positives beyond the apex or base (e.g. in the atrium) are dropped.
A slice-range classifier's prediction (:class:`cardiacseg.inferers.SliceRangeClassifier`) comes in as plain
inputs instead: per-slice classes (:func:`slice_range_from_classes`) or ``(first, last)`` ranges given to
:func:`apply_slice_range`; this module never imports the predictor.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from cardiacseg.enums import CardiacLabel, SliceRange
from cardiacseg.postprocess.steps import foreground_box
from cardiacseg.typing import LabelArray

__all__ = ["apply_slice_range", "lv_slice_range", "myocardial_coverage", "slice_range_from_classes"]


def myocardial_coverage(label_slice: LabelArray) -> float:
    """Fraction of the LV blood pool's border pixels that touch myocardium (0 when there is no LV).

    Args:
        label_slice: ``(Y, X)`` internal labels.

    Returns:
        A fraction in ``[0, 1]``.

    Example:
        >>> lab = np.zeros((9, 9), np.uint8); lab[1:8, 1:8] = 2; lab[3:6, 3:6] = 1
        >>> myocardial_coverage(lab)
        1.0

    """
    lv = np.asarray(label_slice) == CardiacLabel.LV
    if not lv.any():
        return 0.0
    border = lv & ~ndimage.binary_erosion(lv, border_value=0)
    near_myo = ndimage.binary_dilation(np.asarray(label_slice) == CardiacLabel.MYO)
    return float((border & near_myo).sum() / border.sum())


def lv_slice_range(labels: LabelArray, min_coverage: float = 0.5) -> tuple[int, int] | None:
    """First and last slice (inclusive) inside the LV for one phase.

    Args:
        labels: ``(Z, Y, X)`` internal labels of one phase.
        min_coverage: the least :func:`myocardial_coverage` for a slice with LV blood pool to count.

    Returns:
        ``(first, last)`` slice indices, or ``None`` when no slice counts.

    Raises:
        ValueError: not a 3D label map.

    Example:
        >>> ring = np.zeros((9, 9), np.uint8); ring[1:8, 1:8] = 2; ring[3:6, 3:6] = 1
        >>> atrium = np.zeros((9, 9), np.uint8); atrium[3:6, 3:6] = 1
        >>> lv_slice_range(np.stack([atrium, ring, ring, np.zeros_like(ring), ring]))
        (1, 2)

    """
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise ValueError(f"expected a (Z, Y, X) label map, got shape {arr.shape}")
    box = foreground_box((arr == CardiacLabel.LV) | (arr == CardiacLabel.MYO))
    if box is not None:  # the LV/MYO bounding box with a background margin: same coverage, fewer pixels
        arr = arr[box]
    counts = []
    for z in range(arr.shape[0]):
        has_lv = bool((arr[z] == CardiacLabel.LV).any())
        has_myo = bool((arr[z] == CardiacLabel.MYO).any())
        counts.append(myocardial_coverage(arr[z]) >= min_coverage if has_lv else has_myo)
    best: tuple[int, int] | None = None
    start = None
    for z, c in enumerate([*counts, False]):
        if c and start is None:
            start = z
        elif not c and start is not None:
            if best is None or z - start > best[1] - best[0] + 1:
                best = (start, z - 1)
            start = None
    return best


def slice_range_from_classes(classes: npt.ArrayLike) -> tuple[int, int] | None:
    """First and last slice (inclusive) classified IN, from per-slice slice-range classes.

    Slices between the first and the last IN slice count as inside even when classified otherwise (a range
    is contiguous); with the predictor's order enforced there are none.

    Args:
        classes: ``(Z,)`` classes in stack order (:class:`~cardiacseg.enums.SliceRange`: OAP 0, IN 1, OBS 2),
            e.g. ``SliceRangeClassifier.predict(study)[phase]``.

    Returns:
        ``(first, last)`` slice indices, or ``None`` when no slice is IN.

    Raises:
        ValueError: not 1D.

    Example:
        >>> slice_range_from_classes([2, 1, 1, 1, 0, 0])
        (1, 3)
        >>> slice_range_from_classes([0, 0]) is None
        True

    """
    arr = np.asarray(classes)
    if arr.ndim != 1:
        raise ValueError(f"expected (Z,) slice classes, got shape {arr.shape}")
    inside = np.flatnonzero(arr == int(SliceRange.IN))
    return None if inside.size == 0 else (int(inside[0]), int(inside[-1]))


def apply_slice_range(
    labels: Mapping[int, LabelArray],
    min_coverage: float = 0.5,
    ranges: Mapping[int, tuple[int, int] | None] | None = None,
) -> tuple[dict[int, LabelArray], dict[int, tuple[int, int] | None]]:
    """Remove LV and myocardium outside each phase's LV slice range (RV is left as is).

    The range of a phase is the one given in ``ranges`` (e.g. a slice-range classifier's, through
    :func:`slice_range_from_classes`), else the segmentation-based rule :func:`lv_slice_range`.

    Args:
        labels: ``(Z, Y, X)`` label maps keyed by phase.
        min_coverage: see :func:`lv_slice_range`.
        ranges: ``{phase: (first, last) inclusive, or None (no slice inside)}`` decided elsewhere; phases
            absent from it use the rule.

    Returns:
        ``(new label maps, {phase: (first, last) or None})``; inputs are not modified.

    Raises:
        ValueError: a given range outside the stack or with ``first > last``.

    Example:
        >>> lab = np.zeros((2, 9, 9), np.uint8); lab[1, 1:8, 1:8] = 2; lab[1, 3:6, 3:6] = 1
        >>> lab[0, 3:6, 3:6] = 1
        >>> out, ranges = apply_slice_range({0: lab})
        >>> ranges[0], int((out[0][0] == 1).sum())
        ((1, 1), 0)
        >>> out, ranges = apply_slice_range({0: lab}, ranges={0: slice_range_from_classes([1, 2])})
        >>> ranges[0], int((out[0][0] == 1).sum()), int((out[0][1] > 0).sum())
        ((0, 0), 9, 0)

    """
    out: dict[int, LabelArray] = {}
    used: dict[int, tuple[int, int] | None] = {}
    for t, lab in labels.items():
        arr = np.asarray(lab, dtype=np.uint8).copy()
        if ranges is not None and t in ranges:
            rng = ranges[t]
            if rng is not None and not 0 <= rng[0] <= rng[1] < arr.shape[0]:
                raise ValueError(
                    f"phase {t}: slice range {rng} does not fit a stack of {arr.shape[0]} slices"
                )
        else:
            rng = lv_slice_range(arr, min_coverage)
        keep = np.zeros(arr.shape[0], bool)
        if rng is not None:
            keep[rng[0] : rng[1] + 1] = True
        outside = ~keep[:, None, None] & ((arr == CardiacLabel.LV) | (arr == CardiacLabel.MYO))
        arr[outside] = 0
        out[t], used[t] = arr, rng
    return out, used
