"""The slice-range classifier's input, one definition for training and inference.

Per study: the heart is located without labels (:meth:`~cardiacseg.transforms.HeartCrop.find_centre`: the
temporal variance over all phases), every phase is cropped to a square of ``crop_size`` pixels around that
one centre (zero-padded where the image is smaller; no resampling), each cropped slice is clipped to its
0.5-99.5 percentiles and z-scored on its own (:func:`~cardiacseg.transforms.percentile_zscore`, i.e.
:class:`~cardiacseg.transforms.SliceZScore` applied to the cropped item) and, for 2.5D, stacked with its
``context`` neighbours on each side ordered apex to base (neighbours beyond the stack repeat the edge slice).

This is what :func:`cardiacseg.data.slice_range.slice_range_items` yields followed by
``SliceZScore()(item["image"])`` (tested on ACDC), so a network trained on those items sees the same input
from :class:`cardiacseg.inferers.SliceRangeClassifier`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch

from cardiacseg.transforms.intensity.array import percentile_zscore
from cardiacseg.transforms.spatial.array import HeartCrop

__all__ = ["context_indices", "slice_classifier_input"]


def context_indices(n_slices: int, context: int, apex_to_base: int) -> npt.NDArray[np.int64]:
    """Slice indices of every slice's channels: itself and ``context`` neighbours per side, apex to base.

    Channel ``context`` is the slice itself; channel ``context - k`` its ``k``-th apical neighbour, channel
    ``context + k`` its ``k``-th basal one; indices beyond the stack are clipped to its ends (edge repeat).
    The same rule as :func:`cardiacseg.data.slice_range.slice_context`.

    Args:
        n_slices: ``Z``.
        context: neighbours per side (0: 2D).
        apex_to_base: ``+1`` when slice 0 is apical, ``-1`` when slice 0 is basal.

    Returns:
        ``(Z, 2 * context + 1)`` indices.

    Raises:
        ValueError: no slices, negative ``context``, or a direction other than ``+1``/``-1``.

    Example:
        >>> context_indices(3, 1, apex_to_base=-1).tolist()  # slice 0 basal: its apical neighbour is 1
        [[1, 0, 0], [2, 1, 0], [2, 2, 1]]

    """
    if n_slices < 1 or context < 0 or apex_to_base not in (1, -1):
        raise ValueError(f"bad stack of {n_slices} slices, context {context} or direction {apex_to_base}")
    z = np.arange(n_slices)[:, None]
    offsets = apex_to_base * np.arange(-context, context + 1)[None, :]
    out: npt.NDArray[np.int64] = np.clip(z + offsets, 0, n_slices - 1).astype(np.int64)
    return out


def slice_classifier_input(
    image_txyz: torch.Tensor | npt.NDArray[np.floating],
    phases: Sequence[int] | None = None,
    crop_size: int = 160,
    context: int = 0,
    apex_to_base: int = -1,
    centre: Sequence[float] | None = None,
    normalize: bool = True,
) -> tuple[torch.Tensor, tuple[float, float]]:
    """Network inputs of every slice of the chosen phases.

    Args:
        image_txyz: the study as ``(T, X, Y, Z)`` (cardiacseg's channel-first layout with phases as
            channels; from a :class:`~cardiacseg.io.CineStudy` ``image`` ``(T, Z, Y, X)``:
            ``np.transpose(image, (0, 3, 2, 1))``). All phases are used to locate the heart.
        phases: phases to return (default: all).
        crop_size: side of the square crop (pixels of the image, as stored).
        context: neighbours per side as extra channels (0: ``C = 1``; 1: 2.5D, ``C = 3``).
        apex_to_base: stack direction for the channel order (see :func:`context_indices`); irrelevant for
            ``context=0``.
        centre: in-plane crop centre ``(x, y)`` in pixels (default: found from the temporal variance).
        normalize: z-score every cropped slice (False: raw intensities, for checks).

    Returns:
        ``(inputs (P, Z, C, crop_size, crop_size) float32, centre (x, y))``.

    Raises:
        ValueError: not a 4D image, or bad ``context``/``apex_to_base``.

    Example:
        >>> from cardiacseg.data import make_cine_phantom
        >>> study, _ = make_cine_phantom(n_phases=4, n_slices=5)
        >>> x, c = slice_classifier_input(np.transpose(study.image, (0, 3, 2, 1)), [0], 64, context=1)
        >>> tuple(x.shape)
        (1, 5, 3, 64, 64)

    """
    img = torch.as_tensor(np.asarray(image_txyz) if isinstance(image_txyz, np.ndarray) else image_txyz)
    if img.ndim != 4:
        raise ValueError(f"expected a (T, X, Y, Z) image, got shape {tuple(img.shape)}")
    img = img.float()
    sel = list(range(img.shape[0])) if phases is None else [int(t) for t in phases]
    crop = HeartCrop((crop_size, crop_size))
    if centre is None:
        found, _ = crop.find_centre(img)
        centre = found
    cx, cy = float(centre[0]), float(centre[1])
    cropped = torch.as_tensor(crop(img, centre=(cx, cy))).as_subclass(torch.Tensor)  # (T, x, y, Z)
    stacks = cropped[sel].permute(0, 3, 1, 2)  # (P, Z, x, y)
    n_p, n_z, sx, sy = stacks.shape
    if normalize:
        stacks = percentile_zscore(stacks.reshape(-1, 1, sx, sy)).reshape(n_p, n_z, sx, sy)
    idx = torch.from_numpy(context_indices(n_z, context, apex_to_base))  # (Z, C)
    out = stacks[:, idx]  # (P, Z, C, x, y)
    return out.contiguous().float(), (cx, cy)
