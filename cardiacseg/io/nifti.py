"""NIfTI 3D/4D reading and writing (nibabel), preserving geometry.

NIfTI arrays are stored ``(X, Y, Z[, T])``; a :class:`CineStudy` holds ``(T, Z, Y, X)``. The affine is
kept as is: it maps voxel ``(x, y, z)`` indices to RAS+ millimetres in both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt

from cardiacseg.io.atomic import atomic_write
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import Affine, PathLike, SpacingZYX

__all__ = [
    "NiftiReadError",
    "affine_from_spacing",
    "read_nifti_array",
    "read_nifti_study",
    "write_nifti",
]


class NiftiReadError(ValueError):
    """A NIfTI file that cannot be read as a cine study; the message names the file."""


def affine_from_spacing(spacing_mm: SpacingZYX) -> Affine:
    """Build a diagonal affine for a known ``(z, y, x)`` spacing and unknown orientation.

    Args:
        spacing_mm: spacing in array order ``(z, y, x)``.

    Returns:
        4x4 affine mapping ``(x, y, z)`` indices to mm.

    Example:
        >>> affine_from_spacing((10.0, 1.5, 1.25)).diagonal().tolist()
        [1.25, 1.5, 10.0, 1.0]

    """
    z, y, x = spacing_mm
    return np.diag([x, y, z, 1.0]).astype(np.float64)


def read_nifti_array(path: PathLike) -> tuple[npt.NDArray[np.generic], Affine, SpacingZYX | None]:
    """Read a NIfTI image as a ``(T, Z, Y, X)`` or ``(Z, Y, X)`` array with its geometry.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file, 2D, 3D or 4D.

    Returns:
        ``(array, affine, spacing_mm)``: array in ``(T, Z, Y, X)`` order for 4D input and ``(Z, Y, X)``
        for 3D (2D input gets ``Z = 1``); spacing ``(z, y, x)`` from the header, or ``None`` when the header
        declares no geometry (qform and sform codes both 0 and unit pixdims).

    Raises:
        NiftiReadError: unreadable file or more than 4 dimensions.

    Example:
        >>> arr, affine, spacing = read_nifti_array("patient001_4d.nii.gz")  # doctest: +SKIP

    """
    try:
        img: Any = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise NiftiReadError(f"{path}: cannot be read as NIfTI ({type(exc).__name__}: {exc})") from exc
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim not in (3, 4):
        raise NiftiReadError(f"{path}: expected a 3D or 4D image, got shape {data.shape}")
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    hdr = img.header
    no_geometry = int(hdr["qform_code"]) == 0 and int(hdr["sform_code"]) == 0 and zooms == (1.0, 1.0, 1.0)
    spacing = None if no_geometry or min(zooms) <= 0 else (zooms[2], zooms[1], zooms[0])
    arr = np.transpose(data, (3, 2, 1, 0)) if data.ndim == 4 else np.transpose(data, (2, 1, 0))
    return np.ascontiguousarray(arr), np.asarray(img.affine, dtype=np.float64), spacing


def read_nifti_study(path: PathLike) -> CineStudy:
    """Read a 3D (single phase) or 4D (cine) NIfTI file as a :class:`CineStudy`.

    Args:
        path: the image file.

    Returns:
        A study with ``T = 1`` for 3D input.

    Raises:
        NiftiReadError: unreadable file.

    Example:
        >>> study = read_nifti_study("patient001_4d.nii.gz")  # doctest: +SKIP
        >>> study.n_phases  # doctest: +SKIP
        30

    """
    arr, affine, spacing = read_nifti_array(path)
    if arr.ndim == 3:
        arr = arr[None]
    return CineStudy(
        image=arr.astype(np.float32),
        spacing_mm=spacing,
        affine=affine,
        phase_ids=tuple(range(arr.shape[0])),
        source=f"NIfTI {path}",
    )


def write_nifti(
    path: PathLike,
    array: npt.NDArray[np.generic],
    affine: Affine | None = None,
    spacing_mm: SpacingZYX | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a ``(Z, Y, X)`` or ``(T, Z, Y, X)`` array as NIfTI, atomically.

    Args:
        path: output ``.nii`` / ``.nii.gz`` file.
        array: image or label array in cardiacseg axis order (its dtype is kept).
        affine: voxel-to-RAS affine; when ``None``, a diagonal one from ``spacing_mm`` (or identity with
            no geometry codes when both are ``None``).
        spacing_mm: used only when ``affine`` is ``None``.
        overwrite: allow replacing an existing file.

    Returns:
        The written path.

    Raises:
        ValueError: wrong number of dimensions.
        FileExistsError: when the file exists and ``overwrite`` is False.

    Example:
        >>> import numpy as np
        >>> p = write_nifti("/tmp/cardiacseg-example.nii.gz", np.zeros((2, 4, 4), np.uint8),
        ...                 spacing_mm=(8.0, 1.5, 1.5), overwrite=True)

    """
    if array.ndim == 4:
        data = np.transpose(array, (3, 2, 1, 0))
    elif array.ndim == 3:
        data = np.transpose(array, (2, 1, 0))
    else:
        raise ValueError(f"expected (Z, Y, X) or (T, Z, Y, X), got shape {array.shape}")
    known = affine is not None or spacing_mm is not None
    aff = affine if affine is not None else affine_from_spacing(spacing_mm) if spacing_mm else np.eye(4)
    img = nib.Nifti1Image(np.ascontiguousarray(data), np.asarray(aff, dtype=np.float64))
    img.set_qform(aff, code=1 if known else 0)
    img.set_sform(aff, code=1 if known else 0)
    if array.ndim == 4:
        img.header.set_xyzt_units("mm", "msec")
    else:
        img.header.set_xyzt_units("mm")
    return atomic_write(path, lambda p: nib.save(img, str(p)), overwrite=overwrite)
