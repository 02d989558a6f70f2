"""NIfTI 3D/4D reading and writing (nibabel), preserving geometry, refusing what cannot be a cine.

NIfTI arrays are stored ``(X, Y, Z[, T])``; a :class:`CineStudy` holds ``(T, Z, Y, X)``. The affine is
kept as is: it maps voxel ``(x, y, z)`` indices to RAS+ millimetres in both.

Before any voxel is decoded (nibabel reads the header first and the data lazily), the reader

* accepts 2D ``(X, Y)``, 3D ``(X, Y, Z)``, 4D ``(X, Y, Z, T)`` and 5D/6D images whose axes after ``Z`` hold
  at most one non-singleton axis (``(X, Y, Z, 1, T)``, ``(X, Y, Z, T, 1)``): these are read as 4D;
* refuses an implausible short-axis geometry (:func:`check_cine_shape`), typically a ``(T, Z, Y, X)``
  array saved as is;
* refuses non-scalar data types (RGB, complex) and arrays larger than the memory budget
  (:func:`cardiacseg.io.limits.check_allocation`).

After decoding it refuses NaN/infinite voxels, and it treats an unusable geometry (zero, negative or
non-finite pixdim; singular or non-finite affine) as unknown (``None``) rather than inventing one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt

from cardiacseg.io.limits import check_allocation
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import Affine, PathLike, SpacingZYX
from cardiacseg.utils.atomic import atomic_write

__all__ = [
    "MAX_CYCLE_MS",
    "MAX_PHASES",
    "MAX_SLICES",
    "MIN_CYCLE_MS",
    "MIN_INPLANE_PX",
    "NiftiReadError",
    "affine_from_spacing",
    "check_cine_shape",
    "nifti_phase_times_ms",
    "read_nifti_array",
    "read_nifti_study",
    "spacing_from_affine",
    "write_nifti",
]

#: In-plane matrices of short-axis cine MRI are at least this many pixels per side (ACDC 154-428,
#: Sunnybrook 256, Kaggle DSB 192-256; SCMR protocol: in-plane resolution 1.5-2.5 mm over a 300-400 mm
#: field of view, i.e. >= 120 pixels). Smaller in-plane axes are accepted unless the through-plane axes
#: are implausibly long as well (see :func:`check_cine_shape`).
MIN_INPLANE_PX = 64
#: Slices of a short-axis stack covering the ventricles (8-10 mm over ~120 mm: 8-20; thin-slice stacks
#: up to ~40).
MAX_SLICES = 40
#: Phases per cardiac cycle (SCMR protocol: temporal resolution <= 45 ms, 20-40 phases; high temporal
#: resolution research sequences up to ~100).
MAX_PHASES = 100
#: How many times longer than the shortest in-plane axis a slice or phase axis must be before the shape
#: is called implausible.
_AXIS_RATIO = 4
#: A 4D file's phases span one cardiac cycle: ``T x pixdim[4]`` must lie in this range (human heart rates
#: 24-240 beats/min) for the header's time step to be taken as the phase interval.
MIN_CYCLE_MS = 250.0
#: Upper end of that range.
MAX_CYCLE_MS = 2500.0
#: NIfTI time units (``xyzt_units``) in milliseconds; other codes (unknown, Hz, ppm, rad/s) give no times.
_TIME_UNIT_MS = {"sec": 1000.0, "msec": 1.0, "usec": 0.001}


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


def spacing_from_affine(affine: npt.ArrayLike) -> SpacingZYX:
    """Return the ``(z, y, x)`` spacing of an ``(x, y, z)`` voxel-to-world affine (its column norms).

    Args:
        affine: 4x4 (or 3x3 and larger) affine mapping ``(x, y, z)`` indices to mm.

    Returns:
        Spacing in array order ``(z, y, x)``, mm.

    Example:
        >>> spacing_from_affine(affine_from_spacing((10.0, 1.5, 1.25)))
        (10.0, 1.5, 1.25)

    """
    x, y, z = (float(n) for n in np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0))
    return z, y, x


def check_cine_shape(shape_xyzt: Sequence[int], path: PathLike) -> None:
    """Refuse a NIfTI shape that cannot be a short-axis cine, naming the likely axis mix-up.

    A shape is refused when all three hold: the shortest in-plane axis is under :data:`MIN_INPLANE_PX`;
    the slice axis is over :data:`MAX_SLICES` or the phase axis over :data:`MAX_PHASES`; and that axis is
    at least 4 times the shortest in-plane axis. This is what a ``(T, Z, Y, X)`` array saved as is looks
    like (its phases and slices become the in-plane axes, its rows and columns become slices and phases),
    while every real cine read so far (ACDC, Sunnybrook, Kaggle DSB, single slices, small test crops) has
    a wide margin. The file is refused, not transposed: a guess could silently produce a wrong study.

    Args:
        shape_xyzt: the image shape in NIfTI order ``(X, Y[, Z[, T]])`` (after dropping singleton 5D axes).
        path: the file (named in the error).

    Raises:
        NiftiReadError: the shape is implausible; the message names the file, the shape, the axis
            mix-up it looks like and how to fix it.

    Example:
        >>> check_cine_shape((256, 216, 10, 30), "patient001_4d.nii.gz")
        >>> check_cine_shape((30, 10, 216, 256), "bad.nii.gz")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        cardiacseg.io.nifti.NiftiReadError: bad.nii.gz: implausible cine geometry: ...

    """
    dims = [int(s) for s in shape_xyzt] + [1] * (4 - len(shape_xyzt))
    x, y, z, t = dims[:4]
    inplane = min(x, y)
    long_axis = (z > MAX_SLICES and z >= _AXIS_RATIO * inplane) or (
        t > MAX_PHASES and t >= _AXIS_RATIO * inplane
    )
    if inplane >= MIN_INPLANE_PX or not long_axis:
        return
    rule = (
        f"(a short-axis cine has an in-plane matrix of at least {MIN_INPLANE_PX} pixels, at most "
        f"{MAX_SLICES} slices and {MAX_PHASES} phases)"
    )
    if len(shape_xyzt) >= 4:
        raise NiftiReadError(
            f"{path}: implausible cine geometry: NIfTI shape (X, Y, Z, T) = {(x, y, z, t)} means {t} phases "
            f"of {z} slices of {x}x{y}-pixel images {rule}. In-plane matrix {x}x{y} is smaller than the "
            f"slice/phase axes {z}x{t}: the array looks saved in (T, Z, Y, X) order; NIfTI expects "
            "(X, Y, Z, T) — transpose it (numpy: array.transpose(3, 2, 1, 0)) and save again"
        )
    raise NiftiReadError(
        f"{path}: implausible cine geometry: NIfTI shape (X, Y, Z) = {(x, y, z)} means {z} slices of "
        f"{x}x{y}-pixel images {rule}. In-plane matrix {x}x{y} is smaller than the slice axis {z}: the "
        "array looks saved in (Z, Y, X) order; NIfTI expects (X, Y, Z) — transpose it "
        "(numpy: array.transpose(2, 1, 0)) and save again"
    )


def _cine_shape(shape: tuple[int, ...], path: PathLike) -> tuple[tuple[int, ...], bool]:
    """Return the shape to read (2D-4D) and whether its 4th axis is NIfTI's time axis (dim[4])."""
    if len(shape) < 2:
        raise NiftiReadError(f"{path}: a {len(shape)}D image of shape {shape} is not an image")
    if min(shape) < 1:
        raise NiftiReadError(f"{path}: empty image (shape {shape})")
    if len(shape) <= 4:
        return shape, len(shape) == 4
    extra = shape[3:]
    long_axes = [i for i, n in enumerate(extra) if n > 1]
    if len(long_axes) > 1:
        raise NiftiReadError(
            f"{path}: {len(shape)}D image of shape {shape}: a cine is read from 2D (X, Y), 3D (X, Y, Z), "
            "4D (X, Y, Z, T) or 5D with one singleton axis ((X, Y, Z, 1, T) or (X, Y, Z, T, 1)); this one "
            f"has {len(long_axes)} non-singleton axes after Z (vector components, echoes or channels?)"
        )
    n_t = extra[long_axes[0]] if long_axes else 1
    return (*shape[:3], n_t), not long_axes or long_axes[0] == 0


def _usable_affine(aff: npt.NDArray[Any] | None) -> bool:
    if aff is None:
        return False
    a = np.asarray(aff, dtype=np.float64)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        return False
    norms = np.linalg.norm(a[:3, :3], axis=0)
    if not np.all(norms > 0):
        return False
    return bool(abs(np.linalg.det(a[:3, :3])) > 1e-6 * float(np.prod(norms)))


def nifti_phase_times_ms(header: Any, n_phases: int) -> tuple[float, ...] | None:
    """Phase times of a 4D NIfTI from ``pixdim[4]``, ``toffset`` and the time unit, when trustworthy.

    NIfTI stores one time step (``pixdim[4]``) in the unit of ``xyzt_units`` (sec, msec or usec; codes
    unknown, Hz, ppm and rad/s are not times). The step is taken as the interval between cine phases only
    when it is finite, positive, not ``1.0`` (the value nibabel, ITK and SimpleITK write when no time step
    is known) and when ``n_phases x step`` is one plausible cardiac cycle, :data:`MIN_CYCLE_MS` to
    :data:`MAX_CYCLE_MS` (heart rates 24-240/min). This rejects, e.g., dcm2niix's repetition time (~3 ms
    per phase for an SSFP cine). Otherwise the times are unknown: ``None``, never a made-up value.

    Args:
        header: a nibabel NIfTI header.
        n_phases: number of phases ``T`` (the length of NIfTI's dim[4]).

    Returns:
        ``toffset + k x step`` in ms for ``k = 0 .. T-1``, or ``None``.

    Example:
        >>> import nibabel as nib, numpy as np
        >>> img = nib.Nifti1Image(np.zeros((2, 2, 1, 20), np.float32), np.eye(4))
        >>> img.header.set_zooms((1.0, 1.0, 8.0, 0.045)); img.header.set_xyzt_units("mm", "sec")
        >>> [round(t, 3) for t in nifti_phase_times_ms(img.header, 20)[:3]]
        [0.0, 45.0, 90.0]
        >>> img.header.set_zooms((1.0, 1.0, 8.0, 1.0)); nifti_phase_times_ms(img.header, 20) is None
        True

    """
    if n_phases < 2:
        return None
    factor = _TIME_UNIT_MS.get(str(header.get_xyzt_units()[1]))
    step = float(header["pixdim"][4])
    if factor is None or not math.isfinite(step) or step <= 0 or step == 1.0:
        return None
    step_ms = step * factor
    if not MIN_CYCLE_MS <= n_phases * step_ms <= MAX_CYCLE_MS:
        return None
    offset = float(header["toffset"])
    offset_ms = offset * factor if math.isfinite(offset) else 0.0
    return tuple(offset_ms + k * step_ms for k in range(n_phases))


@dataclass(frozen=True)
class _NiftiContent:
    """What :func:`_read` found: array ``(T, Z, Y, X)`` or ``(Z, Y, X)`` and geometry (``None``: unknown)."""

    array: npt.NDArray[np.generic]
    affine: Affine | None
    spacing_mm: SpacingZYX | None
    phase_times_ms: tuple[float, ...] | None


def _read(path: PathLike, dtype: type[np.floating[Any]] | None = None) -> _NiftiContent:
    """Check the header, then decode; the workhorse of :func:`read_nifti_array` / :func:`read_nifti_study`."""
    try:
        img: Any = nib.load(str(path))  # header only: the data is read lazily below
        file_shape = tuple(int(s) for s in img.shape)
        raw_dtype = np.dtype(img.get_data_dtype())
        hdr = img.header
    except Exception as exc:
        raise NiftiReadError(f"{path}: cannot be read as NIfTI ({type(exc).__name__}: {exc})") from exc
    shape, time_in_dim4 = _cine_shape(file_shape, path)
    check_cine_shape(shape, path)
    if raw_dtype.kind not in "biuf" or raw_dtype.fields is not None:
        raise NiftiReadError(
            f"{path}: data type {raw_dtype} is not a scalar image (RGB, complex or structured voxels cannot "
            "be a cine magnitude image)"
        )
    slope, inter = hdr.get_slope_inter()  # (None, None) when the values are not scaled
    scaled = (slope, inter) not in ((None, None), (1.0, 0.0))
    out_dtype = np.dtype(dtype) if dtype is not None else np.dtype(np.float64) if scaled else raw_dtype
    n_voxels = math.prod(shape)
    order = "(T, Z, Y, X)" if len(shape) == 4 else "(Z, Y, X)"
    check_allocation(
        n_voxels * max(out_dtype.itemsize, 4),
        f"image of NIfTI shape {file_shape} read as {order} {out_dtype}",
        path,
    )
    try:
        data = np.asarray(img.dataobj, dtype=dtype) if dtype is not None else np.asanyarray(img.dataobj)
    except Exception as exc:  # truncated gzip, short file, ...
        raise NiftiReadError(f"{path}: cannot be read as NIfTI ({type(exc).__name__}: {exc})") from exc
    data = data.reshape(shape)  # drops the singleton axes of a 5D/6D file
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            bad = np.argwhere(~finite)
            raise NiftiReadError(
                f"{path}: {len(bad)} of {data.size} voxels are NaN or infinite (first at NIfTI index "
                f"{tuple(int(i) for i in bad[0])}); a cine image has finite values — replace them "
                "(e.g. numpy.nan_to_num) and save again"
            )
    if data.ndim == 2:
        data = data[:, :, None]
    axes = (3, 2, 1, 0) if data.ndim == 4 else (2, 1, 0)
    arr = np.ascontiguousarray(np.transpose(data, axes), dtype=dtype)
    del data
    raw_hdr = _unrepaired_header(img, path)
    affine, spacing = _geometry(raw_hdr)
    times = nifti_phase_times_ms(raw_hdr, shape[3]) if len(shape) == 4 and time_in_dim4 else None
    return _NiftiContent(arr, affine, spacing, times)


def _unrepaired_header(img: Any, path: PathLike) -> Any:
    """Return the header as stored: nibabel's loader silently turns zero pixdims into 1 (a made-up value)."""
    try:
        with nib.openers.ImageOpener(str(path)) as fobj:
            return type(img.header).from_fileobj(fobj, check=False)
    except Exception as exc:
        raise NiftiReadError(f"{path}: cannot be read as NIfTI ({type(exc).__name__}: {exc})") from exc


def _safe_affine(get: Any) -> Affine | None:
    try:
        aff = np.asarray(get(), dtype=np.float64)
    except Exception:  # e.g. non-finite quaternions
        return None
    return aff if _usable_affine(aff) else None


def _geometry(hdr: Any) -> tuple[Affine | None, SpacingZYX | None]:
    """Affine and ``(z, y, x)`` spacing of a header as stored, each ``None`` when unusable.

    The affine is the sform (code > 0), else the qform (code > 0), whichever is finite and non-singular
    first; with both codes 0 it is nibabel's base affine from pixdim. The spacing is the length of the
    affine's columns when a declared affine is usable (the geometry that maps the voxels), else pixdim
    when positive and finite, else unknown; a header with both codes 0 and unit pixdims declares none.
    """
    pixdim = tuple(float(p) for p in hdr["pixdim"][1:4])
    q_code, s_code = int(hdr["qform_code"]), int(hdr["sform_code"])
    if q_code == 0 and s_code == 0:
        base = _safe_affine(hdr.get_base_affine)
        if pixdim == (1.0, 1.0, 1.0) or not all(math.isfinite(p) and p > 0 for p in pixdim):
            return base, None  # no geometry declared at all, or none usable
        return base, (pixdim[2], pixdim[1], pixdim[0])
    declared = [hdr.get_sform] if s_code > 0 else []
    declared += [hdr.get_qform] if q_code > 0 else []
    affine = next((a for a in (_safe_affine(g) for g in declared) if a is not None), None)
    if affine is not None:
        return affine, spacing_from_affine(affine)
    if all(math.isfinite(p) and p > 0 for p in pixdim):
        return None, (pixdim[2], pixdim[1], pixdim[0])
    return None, None


def read_nifti_array(path: PathLike) -> tuple[npt.NDArray[np.generic], Affine, SpacingZYX | None]:
    """Read a NIfTI image as a ``(T, Z, Y, X)`` or ``(Z, Y, X)`` array with its geometry.

    The header is checked before any voxel is decoded (see the module docstring): implausible shapes
    (:func:`check_cine_shape`), more than one non-singleton axis after ``Z``, non-scalar data types and
    arrays over the memory budget are refused.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file: 2D ``(X, Y)``, 3D ``(X, Y, Z)``, 4D ``(X, Y, Z, T)``, or 5D/6D
            with singleton axes after ``Z`` (``(X, Y, Z, 1, T)``, ``(X, Y, Z, T, 1)``), read as 4D.

    Returns:
        ``(array, affine, spacing_mm)``: array in ``(T, Z, Y, X)`` order for 4D input and ``(Z, Y, X)``
        for 2D/3D (2D input gets ``Z = 1``), in the file's data type (float64 when the header scales
        the values); affine 4x4 voxel ``(x, y, z)`` to RAS+ mm (when the header's affine is singular or
        non-finite: a diagonal one from the spacing, or identity); spacing ``(z, y, x)`` in mm from pixdim
        (from the affine when pixdim is zero, negative or non-finite), or ``None`` when the header declares
        no geometry (qform and sform codes 0 and unit pixdims) or none is usable. For 2D input ``z`` is the
        header's pixdim[3].

    Raises:
        NiftiReadError: unreadable or truncated file, unsupported number of dimensions, implausible axis
            order, non-scalar voxels, NaN or infinite voxels; the message names the file.
        InputTooLargeError: the array would exceed :func:`~cardiacseg.io.limits.max_array_bytes`.

    Example:
        >>> arr, affine, spacing = read_nifti_array("patient001_4d.nii.gz")  # doctest: +SKIP

    """
    content = _read(path)
    affine = content.affine
    if affine is None:
        affine = affine_from_spacing(content.spacing_mm) if content.spacing_mm else np.eye(4)
    return content.array, affine, content.spacing_mm


def read_nifti_study(path: PathLike) -> CineStudy:
    """Read a 2D, 3D (single phase) or 4D (cine) NIfTI file as a :class:`CineStudy`.

    Same checks as :func:`read_nifti_array`; the data is decoded (and scaled) straight to float32.

    Args:
        path: the image file.

    Returns:
        A study with ``T = 1`` for 2D/3D input; ``affine`` ``None`` when the header's affine is unusable;
        ``phase_times_ms`` from ``pixdim[4]`` when trustworthy (:func:`nifti_phase_times_ms`), else ``None``.

    Raises:
        NiftiReadError: unreadable file or a layout that is not a cine (see :func:`read_nifti_array`).
        InputTooLargeError: the float32 study array would exceed the memory budget.

    Example:
        >>> study = read_nifti_study("patient001_4d.nii.gz")  # doctest: +SKIP
        >>> study.n_phases  # doctest: +SKIP
        30

    """
    content = _read(path, np.float32)
    arr = content.array
    if arr.ndim == 3:
        arr = arr[None]
    return CineStudy(
        image=np.asarray(arr, dtype=np.float32),
        spacing_mm=content.spacing_mm,
        affine=content.affine,
        phase_times_ms=content.phase_times_ms if arr.shape[0] > 1 else None,
        phase_ids=tuple(range(arr.shape[0])),
        source=f"NIfTI {path}",
    )


def write_nifti(
    path: PathLike,
    array: npt.NDArray[np.generic],
    affine: Affine | None = None,
    spacing_mm: SpacingZYX | None = None,
    overwrite: bool = False,
    phase_interval_ms: float | None = None,
) -> Path:
    """Write a ``(Z, Y, X)`` or ``(T, Z, Y, X)`` array as NIfTI, atomically.

    A 4D file gets ``pixdim[4] = phase_interval_ms`` with time unit msec when the interval is given
    (e.g. the mean difference of a study's ``phase_times_ms``); otherwise its time unit is "unknown",
    so that no reader takes nibabel's default ``pixdim[4] = 1`` for 1 ms phases.

    Args:
        path: output ``.nii`` / ``.nii.gz`` file.
        array: image or label array in cardiacseg axis order (its dtype is kept).
        affine: voxel-to-RAS affine; when ``None``, a diagonal one from ``spacing_mm`` (or identity with
            no geometry codes when both are ``None``).
        spacing_mm: used only when ``affine`` is ``None``.
        overwrite: allow replacing an existing file.
        phase_interval_ms: time between phases in ms (4D only).

    Returns:
        The written path.

    Raises:
        ValueError: wrong number of dimensions, or a phase interval that is not a positive number or is
            given for a 3D array.
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
    if phase_interval_ms is not None:
        if array.ndim != 4:
            raise ValueError("phase_interval_ms is only meaningful for a (T, Z, Y, X) array")
        if not (math.isfinite(phase_interval_ms) and phase_interval_ms > 0):
            raise ValueError(f"phase_interval_ms must be a positive number, got {phase_interval_ms}")
    known = affine is not None or spacing_mm is not None
    aff = affine if affine is not None else affine_from_spacing(spacing_mm) if spacing_mm else np.eye(4)
    img = nib.Nifti1Image(np.ascontiguousarray(data), np.asarray(aff, dtype=np.float64))
    img.set_qform(aff, code=1 if known else 0)
    img.set_sform(aff, code=1 if known else 0)
    if phase_interval_ms is not None:
        img.header.set_zooms((*img.header.get_zooms()[:3], float(phase_interval_ms)))
        img.header.set_xyzt_units("mm", "msec")
    else:
        img.header.set_xyzt_units("mm")
    return atomic_write(path, lambda p: nib.save(img, str(p)), overwrite=overwrite)
