"""Bridges between :class:`~cardiacseg.io.CineStudy` arrays and MONAI's channel-first MetaTensors.

Transforms in :mod:`cardiacseg.transforms` follow MONAI's layout for NIfTI-like data: channel first,
then spatial axes ``(X, Y)`` for a 2D slice or ``(X, Y, Z)`` for a short-axis stack, with the affine
mapping those indices to RAS+ mm. In-plane axes are the first two spatial axes; the through-plane
(slice) axis is the third. Cine phases ride in the channel axis.

When a study's spacing is unknown, the MetaTensor carries ``meta[SPACING_UNKNOWN] = True`` and an identity
affine, and spacing-dependent transforms refuse it unless the caller supplies a spacing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from monai.data import MetaTensor

from cardiacseg.io.nifti import affine_from_spacing, spacing_from_affine
from cardiacseg.io.study import CineStudy

__all__ = [
    "SPACING_UNKNOWN",
    "inplane_spacing_mm",
    "label_to_metatensor",
    "neighbour_indices",
    "slice_to_metatensor",
    "spacing_zyx_mm",
    "study_affine",
    "study_to_metatensor",
    "to_zyx",
    "with_neighbours",
]

#: Meta-data key set to True on tensors whose voxel spacing is unknown.
SPACING_UNKNOWN = "cardiacseg_spacing_unknown"


def neighbour_indices(n_slices: int, z: int, context_slices: int) -> list[int]:
    """Slice indices of a 2.5D input: ``z - k .. z + k``, repeating the end slices beyond the stack.

    Args:
        n_slices: slices in the stack.
        z: the centre slice.
        context_slices: ``k``, neighbours on each side (0: the slice alone).

    Returns:
        ``2k + 1`` indices, in stack order.

    Raises:
        ValueError: negative ``context_slices`` or ``z`` outside the stack.

    Example:
        >>> neighbour_indices(10, 0, 1), neighbour_indices(10, 5, 1), neighbour_indices(10, 9, 2)
        ([0, 0, 1], [4, 5, 6], [7, 8, 9, 9, 9])

    """
    if context_slices < 0:
        raise ValueError(f"context_slices must be >= 0, got {context_slices}")
    if not 0 <= z < n_slices:
        raise ValueError(f"slice {z} outside a stack of {n_slices}")
    return [min(max(z + d, 0), n_slices - 1) for d in range(-context_slices, context_slices + 1)]


def with_neighbours(slices: torch.Tensor, n_slices: int, context_slices: int) -> torch.Tensor:
    """Stack each slice's neighbours as channels: ``(S * Z, 1, X, Y)`` to ``(S * Z, 2k + 1, X, Y)``.

    The 2.5D input of :func:`neighbour_indices`, for slices ordered stack by stack (``S`` stacks, e.g.
    phases, of ``Z`` slices); the centre slice is the middle channel, as in training
    (:func:`cardiacseg.data.datalist.ssl4mis_slice_items` with the same ``context_slices``).

    Args:
        slices: ``(S * Z, 1, X, Y)``.
        n_slices: ``Z``.
        context_slices: ``k``; 0 returns ``slices`` itself.

    Returns:
        ``(S * Z, 2k + 1, X, Y)``.

    Raises:
        ValueError: ``slices`` is not a whole number of stacks of one channel.

    Example:
        >>> x = torch.arange(6.0).reshape(6, 1, 1, 1)  # 2 stacks of 3 slices
        >>> with_neighbours(x, 3, 1)[:, :, 0, 0].tolist()[:3]
        [[0.0, 0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 2.0, 2.0]]

    """
    if context_slices == 0:
        return slices
    if slices.ndim != 4 or slices.shape[1] != 1 or slices.shape[0] % n_slices:
        raise ValueError(f"need (S * {n_slices}, 1, X, Y) slices, got shape {tuple(slices.shape)}")
    x, y = slices.shape[-2:]
    stacks = slices.reshape(-1, n_slices, x, y)
    idx = torch.tensor([neighbour_indices(n_slices, z, context_slices) for z in range(n_slices)])
    return stacks[:, idx].reshape(-1, 2 * context_slices + 1, x, y)


def study_affine(study: CineStudy) -> npt.NDArray[np.float64]:
    """Return the study's ``(X, Y, Z)`` voxel-to-RAS affine: its own, else from its spacing, else identity.

    Args:
        study: the study.

    Returns:
        A 4 x 4 float64 array.

    Example:
        >>> from cardiacseg.data import make_cine_phantom
        >>> study, _ = make_cine_phantom(n_phases=2, n_slices=3)
        >>> study_affine(study).shape
        (4, 4)

    """
    if study.affine is not None:
        return np.asarray(study.affine, dtype=np.float64)
    if study.spacing_mm is not None:
        return affine_from_spacing(study.spacing_mm)
    return np.eye(4)


def study_to_metatensor(study: CineStudy, phases: Sequence[int] | None = None) -> MetaTensor:
    """Image of selected phases as a ``(T, X, Y, Z)`` MetaTensor (phases as channels).

    Args:
        study: the study.
        phases: phase indices (default: all).

    Returns:
        float32 MetaTensor with the study affine (``meta[SPACING_UNKNOWN]`` when spacing is unknown).

    Example:
        >>> from cardiacseg.data import make_cine_phantom
        >>> study, _ = make_cine_phantom(n_phases=4, n_slices=3)
        >>> tuple(study_to_metatensor(study, [0, 2]).shape)
        (2, 192, 192, 3)

    """
    sel = list(range(study.n_phases)) if phases is None else list(phases)
    arr = np.ascontiguousarray(np.transpose(study.image[sel], (0, 3, 2, 1)))
    meta = {SPACING_UNKNOWN: study.spacing_mm is None, "source": study.source}
    return MetaTensor(torch.from_numpy(arr), affine=torch.as_tensor(study_affine(study)), meta=meta)


def label_to_metatensor(study: CineStudy, phase: int) -> MetaTensor:
    """Label map of one phase as a ``(1, X, Y, Z)`` MetaTensor.

    Args:
        study: the study.
        phase: a labelled phase index.

    Returns:
        uint8 MetaTensor on the study grid.

    Raises:
        KeyError: when the phase has no label map.

    Example:
        >>> from cardiacseg.data import make_cine_phantom
        >>> study, _ = make_cine_phantom(n_phases=2, n_slices=3)
        >>> tuple(label_to_metatensor(study, 0).shape)
        (1, 192, 192, 3)

    """
    lab = np.ascontiguousarray(np.transpose(study.labels[phase], (2, 1, 0))[None])
    meta = {SPACING_UNKNOWN: study.spacing_mm is None, "source": study.source}
    return MetaTensor(torch.from_numpy(lab), affine=torch.as_tensor(study_affine(study)), meta=meta)


def slice_to_metatensor(
    array_yx: npt.NDArray[np.generic], spacing_yx_mm: tuple[float, float] | None = None
) -> MetaTensor:
    """One 2D ``(Y, X)`` slice (as stored in a study) as a ``(1, X, Y)`` MetaTensor.

    Args:
        array_yx: the slice in study order (rows, columns).
        spacing_yx_mm: row and column spacing, or ``None`` when unknown.

    Returns:
        MetaTensor with a diagonal affine (identity and ``SPACING_UNKNOWN`` when spacing is unknown).

    Example:
        >>> import numpy as np
        >>> t = slice_to_metatensor(np.zeros((20, 30), np.float32), (1.5, 1.25))
        >>> tuple(t.shape), t.pixdim.tolist()[:2]
        ((1, 30, 20), [1.25, 1.5])

    """
    arr = np.ascontiguousarray(np.asarray(array_yx).T[None])
    if spacing_yx_mm is None:
        affine = np.eye(4)
    else:
        affine = np.diag([spacing_yx_mm[1], spacing_yx_mm[0], 1.0, 1.0])
    return MetaTensor(
        torch.from_numpy(arr), affine=torch.as_tensor(affine), meta={SPACING_UNKNOWN: spacing_yx_mm is None}
    )


def inplane_spacing_mm(img: object) -> tuple[float, float] | None:
    """In-plane ``(x, y)`` spacing of a tensor from its affine, or ``None`` when unknown.

    Spacing is unknown for plain tensors and arrays, and for MetaTensors marked ``SPACING_UNKNOWN``.

    Args:
        img: a MetaTensor, tensor or array.

    Returns:
        ``(x, y)`` spacing in mm or ``None``.

    Example:
        >>> import numpy as np
        >>> inplane_spacing_mm(slice_to_metatensor(np.zeros((4, 4)), (2.0, 1.0)))
        (1.0, 2.0)

    """
    if not isinstance(img, MetaTensor) or img.meta.get(SPACING_UNKNOWN, False):
        return None
    aff = np.asarray(img.affine, dtype=np.float64)
    return float(np.linalg.norm(aff[:3, 0])), float(np.linalg.norm(aff[:3, 1]))


def spacing_zyx_mm(img: object) -> tuple[float, float, float] | None:
    """``(z, y, x)`` spacing of an ``(C, X, Y, Z)`` tensor from its affine, or ``None`` when unknown.

    The column norms of the voxel-to-world affine, in cardiacseg's ``(z, y, x)`` order; unknown as in
    :func:`inplane_spacing_mm`.

    Args:
        img: a MetaTensor, tensor or array.

    Returns:
        ``(z, y, x)`` spacing in mm or ``None``.

    Example:
        >>> affine = torch.diag(torch.tensor([1.0, 2.0, 8.0, 1.0]))
        >>> spacing_zyx_mm(MetaTensor(torch.zeros(1, 4, 4, 2), affine=affine))
        (8.0, 2.0, 1.0)

    """
    if not isinstance(img, MetaTensor) or img.meta.get(SPACING_UNKNOWN, False):
        return None
    return spacing_from_affine(np.asarray(img.affine, dtype=np.float64))


def to_zyx(img: torch.Tensor | npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """Channel-first ``(C, X, Y[, Z])`` back to study order ``(C, [Z,] Y, X)`` as numpy.

    Args:
        img: tensor or array.

    Returns:
        numpy array with spatial axes reversed.

    Example:
        >>> import numpy as np
        >>> to_zyx(np.zeros((1, 4, 5, 6))).shape
        (1, 6, 5, 4)

    """
    arr = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
    return np.ascontiguousarray(np.transpose(arr, (0, *range(arr.ndim - 1, 0, -1))))
