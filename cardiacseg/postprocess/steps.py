"""Post-processing steps for LV/MYO/RV label maps (the LV/RV pipeline report and the CMRxMotion paper).

Every step takes a ``(Z, Y, X)`` internal label map (1 LV, 2 MYO, 3 RV) and returns a new one; the input
is never modified. Removed voxels become background. Slice-wise steps work on each short-axis slice in 2D
(8-connectivity); volume-wise steps on the stack in 3D (26-connectivity, so touching slices join).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

from cardiacseg.enums import STRUCTURES, CardiacLabel
from cardiacseg.typing import LabelArray

__all__ = [
    "STEPS",
    "fill_holes",
    "foreground_box",
    "keep_largest_component_slice",
    "keep_largest_component_volume",
    "keep_largest_component_volume_of",
    "remove_rv_far_from_lv",
    "remove_rv_without_lv",
]


def foreground_box(mask: np.ndarray, margin: int = 2) -> tuple[slice, slice, slice] | None:
    """In-plane bounding box of a ``(Z, Y, X)`` mask over all slices, widened by a background margin.

    Steps that are translation-invariant and need only a background ring around the structures (holes,
    connected components, distances, myocardial coverage) give the same result on this box as on the whole
    matrix, at a fraction of the cost.

    Args:
        mask: ``(Z, Y, X)`` boolean (or nonzero = foreground) array.
        margin: background pixels kept on each side (clipped at the matrix border).

    Returns:
        ``(all slices, rows, columns)`` to index the stack with, or ``None`` when the mask is empty.

    Example:
        >>> m = np.zeros((2, 10, 10), bool); m[1, 4:6, 3:5] = True
        >>> foreground_box(m)
        (slice(None, None, None), slice(2, 8, None), slice(1, 7, None))

    """
    inplane = np.asarray(mask).any(axis=0)
    if not inplane.any():
        return None
    ys, xs = np.nonzero(inplane)
    return (
        slice(None),
        slice(max(int(ys.min()) - margin, 0), int(ys.max()) + margin + 1),
        slice(max(int(xs.min()) - margin, 0), int(xs.max()) + margin + 1),
    )


def _check(labels: LabelArray) -> LabelArray:
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise ValueError(f"expected a (Z, Y, X) label map, got shape {arr.shape}")
    return arr.astype(np.uint8, copy=True)


def _keep_largest(
    arr: LabelArray, structure: np.ndarray, values: Sequence[int] = tuple(map(int, STRUCTURES))
) -> LabelArray:
    """Keep the largest connected component of each structure in ``values`` (scipy labelling, in place)."""
    for value in values:
        mask = arr == value
        if not mask.any():
            continue
        comps, n = ndimage.label(mask, structure=structure)
        if n > 1:
            sizes = np.bincount(comps.ravel())
            sizes[0] = 0
            arr[mask & (comps != int(sizes.argmax()))] = 0
    return arr


def keep_largest_component_volume(
    labels: LabelArray, spacing_mm: Sequence[float] | None = None
) -> LabelArray:
    """Keep the largest 3D connected component (26-connectivity) of each structure.

    Equal to MONAI's ``KeepLargestConnectedComponent(independent=True)`` (tested), about twice as fast.

    Args:
        labels: ``(Z, Y, X)`` internal labels.
        spacing_mm: unused (uniform signature of the steps).

    Returns:
        A new label map.

    Raises:
        ValueError: not a 3D label map.

    Example:
        >>> lab = np.zeros((3, 8, 8), np.uint8); lab[0, :2, :2] = 1; lab[:, 4:, 4:] = 1
        >>> int(keep_largest_component_volume(lab)[0, 0, 0])
        0

    """
    return _keep_largest(_check(labels), np.ones((3, 3, 3), bool))


Step = Callable[[LabelArray, Sequence[float] | None], LabelArray]


def keep_largest_component_volume_of(label: CardiacLabel) -> Step:
    """Make the step that keeps the largest 3D connected component (26-connectivity) of one structure.

    nnU-Net v2's post-processing decides "keep the largest component" per class as well as for all classes
    (``nnunetv2.postprocessing.remove_connected_components.determine_postprocessing``): a basal RV that
    the model splits in two, for example, may rule out the all-structures step while LV and MYO still gain
    from it. These are the steps ``lcc_volume_lv``, ``lcc_volume_myo`` and ``lcc_volume_rv`` of
    :data:`STEPS`; other structures are left as they are.

    Args:
        label: the structure.

    Returns:
        A step ``(labels (Z, Y, X), spacing_mm) -> new label map``; it raises ValueError for a label map
        that is not 3D.

    Example:
        >>> lab = np.zeros((3, 8, 8), np.uint8); lab[0, :2, :2] = 1; lab[:, 4:, 4:] = 1; lab[2, :2, :2] = 3
        >>> out = keep_largest_component_volume_of(CardiacLabel.LV)(lab, None)
        >>> int(out[0, 0, 0]), int(out[2, 0, 0])
        (0, 3)

    """

    def step(labels: LabelArray, spacing_mm: Sequence[float] | None = None) -> LabelArray:
        return _keep_largest(_check(labels), np.ones((3, 3, 3), bool), (int(label),))

    step.__name__ = f"keep_largest_component_volume_{label.name.lower()}"
    step.__doc__ = f"Keep the largest 3D connected component of the {label.name} only."
    return step


def keep_largest_component_slice(labels: LabelArray, spacing_mm: Sequence[float] | None = None) -> LabelArray:
    """Keep the largest 2D connected component (8-connectivity) of each structure on every slice.

    Args:
        labels: ``(Z, Y, X)`` internal labels.
        spacing_mm: unused (uniform signature of the steps).

    Returns:
        A new label map.

    Raises:
        ValueError: not a 3D label map.

    Example:
        >>> lab = np.zeros((1, 8, 8), np.uint8); lab[0, :2, :2] = 3; lab[0, 4:, 4:] = 3
        >>> int((keep_largest_component_slice(lab) == 3).sum())
        16

    """
    arr = _check(labels)
    for z in range(arr.shape[0]):
        if arr[z].any():
            _keep_largest(arr[z], np.ones((3, 3), bool))
    return arr


def remove_rv_without_lv(labels: LabelArray, spacing_mm: Sequence[float] | None = None) -> LabelArray:
    """Remove the RV on slices that carry neither LV nor myocardium (beyond the LV's apex or base).

    Args:
        labels: ``(Z, Y, X)`` internal labels.
        spacing_mm: unused (uniform signature of the steps).

    Returns:
        A new label map.

    Raises:
        ValueError: not a 3D label map.

    Example:
        >>> lab = np.zeros((2, 4, 4), np.uint8); lab[0, 0, 0] = 3; lab[1, 0, 0] = 3; lab[1, 3, 3] = 1
        >>> (lab == 3).sum(), (remove_rv_without_lv(lab) == 3).sum()
        (np.int64(2), np.int64(1))

    """
    arr = _check(labels)
    for z in range(arr.shape[0]):
        sl = arr[z]
        if not ((sl == CardiacLabel.LV) | (sl == CardiacLabel.MYO)).any():
            sl[sl == CardiacLabel.RV] = 0
    return arr


def remove_rv_far_from_lv(
    labels: LabelArray, spacing_mm: Sequence[float] | None = None, max_distance_mm: float = 15.0
) -> LabelArray:
    """Remove RV components (2D, per slice) farther than ``max_distance_mm`` from the LV and myocardium.

    The RV wall lies against the septum; an RV blob separated from LV+MYO by more than the RV free wall's
    thickness plus a margin is a false positive (typically stomach, liver or atria). Slices without LV or
    MYO are left alone (see :func:`remove_rv_without_lv`).

    Args:
        labels: ``(Z, Y, X)`` internal labels.
        spacing_mm: ``(z, y, x)`` spacing; ``None``: pixels are taken as 1.5 mm.
        max_distance_mm: largest allowed gap between an RV component and LV+MYO.

    Returns:
        A new label map.

    Raises:
        ValueError: not a 3D label map.

    Example:
        >>> lab = np.zeros((1, 40, 40), np.uint8); lab[0, 10:20, 10:20] = 1
        >>> lab[0, 10:20, 21:25] = 3; lab[0, 35:38, 35:38] = 3
        >>> out = remove_rv_far_from_lv(lab, (8.0, 1.0, 1.0), 10.0)
        >>> int(out[0, 15, 22]), int(out[0, 36, 36])
        (3, 0)

    """
    arr = _check(labels)
    sampling = (1.5, 1.5) if spacing_mm is None else (float(spacing_mm[1]), float(spacing_mm[2]))
    for z in range(arr.shape[0]):
        sl = arr[z]
        heart = (sl == CardiacLabel.LV) | (sl == CardiacLabel.MYO)
        rv = sl == CardiacLabel.RV
        if not heart.any() or not rv.any():
            continue
        dist = ndimage.distance_transform_edt(~heart, sampling=sampling)
        comps, n = ndimage.label(rv, structure=np.ones((3, 3), bool))
        for c in range(1, n + 1):
            comp = comps == c
            if float(dist[comp].min()) > max_distance_mm:
                sl[comp] = 0
    return arr


def fill_holes(labels: LabelArray, spacing_mm: Sequence[float] | None = None) -> LabelArray:
    """Fill holes enclosed by LV + myocardium with LV (per slice), and holes inside the RV with RV.

    Args:
        labels: ``(Z, Y, X)`` internal labels.
        spacing_mm: unused (uniform signature of the steps).

    Returns:
        A new label map.

    Raises:
        ValueError: not a 3D label map.

    Example:
        >>> lab = np.zeros((1, 7, 7), np.uint8); lab[0, 1:6, 1:6] = 2; lab[0, 2:5, 2:5] = 1; lab[0, 3, 3] = 0
        >>> int(fill_holes(lab)[0, 3, 3])
        1

    """
    arr = _check(labels)
    for z in range(arr.shape[0]):
        sl = arr[z]
        heart = (sl == CardiacLabel.LV) | (sl == CardiacLabel.MYO)
        holes = ndimage.binary_fill_holes(heart) & ~heart
        sl[holes] = CardiacLabel.LV
        rv = sl == CardiacLabel.RV
        sl[ndimage.binary_fill_holes(rv) & (sl == 0)] = CardiacLabel.RV
    return arr


#: Step name -> function ``(labels, spacing_mm) -> labels``, in the order they are applied.
STEPS: dict[str, Step] = {
    "fill_holes": fill_holes,
    "lcc_volume": keep_largest_component_volume,
    "lcc_slice": keep_largest_component_slice,
    "lcc_volume_lv": keep_largest_component_volume_of(CardiacLabel.LV),
    "lcc_volume_myo": keep_largest_component_volume_of(CardiacLabel.MYO),
    "lcc_volume_rv": keep_largest_component_volume_of(CardiacLabel.RV),
    "rv_without_lv": remove_rv_without_lv,
    "rv_far_from_lv": remove_rv_far_from_lv,
}
