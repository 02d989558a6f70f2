"""The SSL4MIS HDF5 copy of ACDC: ``patientNNN_frameMM.h5`` (whole stack) or ``..._slice_K.h5`` (one slice).

Each file holds ``image`` float32 ``(Z, H, W)`` or ``(H, W)`` min-max scaled to [0, 1], and ``label``
uint8 in ACDC convention (1 RV, 2 MYO, 3 LV). frame01 is ED, frame02 ES. No spacing is stored, so
studies read from here have ``spacing_mm = None``.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt

from cardiacseg.io.labels import acdc_to_internal
from cardiacseg.io.limits import check_allocation
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import FloatArray, LabelArray, PathLike

__all__ = ["Ssl4misFormatError", "list_ssl4mis_patients", "read_ssl4mis_frame", "read_ssl4mis_study"]

_NAME = re.compile(r"(patient\d+)_frame(\d+)(?:_slice_(\d+))?\.h5$")


class Ssl4misFormatError(ValueError):
    """Files that do not follow the SSL4MIS layout; the message names the file."""


def _data_dir(root: PathLike) -> Path:
    p = Path(root)
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such folder")
    return p / "data" if (p / "data").is_dir() else p


def _index(root: PathLike) -> dict[tuple[str, int], dict[int | None, Path]]:
    out: dict[tuple[str, int], dict[int | None, Path]] = {}
    for f in _data_dir(root).iterdir():
        m = _NAME.fullmatch(f.name)
        if m:
            key = (m.group(1), int(m.group(2)))
            out.setdefault(key, {})[int(m.group(3)) if m.group(3) else None] = f
    return out


def list_ssl4mis_patients(root: PathLike) -> list[str]:
    """Patient ids present in an SSL4MIS folder.

    Args:
        root: the ``acdc_ssl4mis`` folder or its ``data`` subfolder.

    Returns:
        Sorted ids such as ``["patient001", ...]``.

    Raises:
        FileNotFoundError: when ``root`` does not exist.

    Example:
        >>> list_ssl4mis_patients("../shared/data/acdc_ssl4mis")[:2]  # doctest: +SKIP
        ['patient001', 'patient002']

    """
    return sorted({pid for pid, _ in _index(root)})


def _dataset(h: h5py.File, name: str, f: Path) -> h5py.Dataset:
    """Return the named dataset, checked before reading: present, a real-valued 2D/3D array, affordable."""
    ds = h.get(name)
    if not isinstance(ds, h5py.Dataset):
        what = "missing" if ds is None else f"a {type(ds).__name__}, not a dataset"
        raise Ssl4misFormatError(f"{f}: '{name}' is {what} (expected datasets 'image' and 'label')")
    if ds.ndim not in (2, 3) or 0 in ds.shape:
        raise Ssl4misFormatError(f"{f}: '{name}' has shape {ds.shape}; expected (H, W) or (Z, H, W)")
    if ds.dtype.kind not in "biuf":
        raise Ssl4misFormatError(f"{f}: '{name}' has dtype {ds.dtype}; expected a real-valued number type")
    check_allocation(int(np.prod(ds.shape, dtype=np.int64)) * 4, f"'{name}' {ds.shape}", f)
    return ds


def _read(f: Path) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    try:
        with h5py.File(f, "r") as h:
            image_ds, label_ds = _dataset(h, "image", f), _dataset(h, "label", f)
            image, label = np.asarray(image_ds[()], dtype=np.float32), np.asarray(label_ds[()])
    except (OSError, KeyError) as exc:
        raise Ssl4misFormatError(f"{f}: cannot read 'image' and 'label' datasets ({exc})") from exc
    if image.shape != label.shape:
        raise Ssl4misFormatError(f"{f}: image {image.shape} and label {label.shape} differ in shape")
    if not np.isfinite(image).all():
        raise Ssl4misFormatError(
            f"{f}: 'image' holds {int((~np.isfinite(image)).sum())} NaN or infinite values"
        )
    values = np.unique(label)
    if label.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
        raise Ssl4misFormatError(f"{f}: 'label' holds non-integer values {values[:5].tolist()}")
    bad = values[(values < 0) | (values > 3)]
    if bad.size:
        raise Ssl4misFormatError(f"{f}: 'label' holds values outside 0..3 (ACDC labels): {bad[:5].tolist()}")
    return image, label.astype(np.uint8)


def read_ssl4mis_frame(root: PathLike, patient: str, frame: int) -> tuple[FloatArray, LabelArray]:
    """Read one frame as a ``(Z, H, W)`` stack, restacking per-slice files in slice order.

    Args:
        root: the ``acdc_ssl4mis`` folder (or its ``data`` subfolder).
        patient: e.g. ``"patient004"``.
        frame: 1 (ED) or 2 (ES).

    Returns:
        ``(image, label)`` with internal labels.

    Raises:
        Ssl4misFormatError: missing files or datasets, gaps in slice numbers, slices of different sizes,
            datasets that are not 2D/3D real-valued arrays, image and label of different shapes, NaN or
            infinite intensities, labels outside 0..3 (every message names the file).
        InputTooLargeError: a dataset declares a shape too large to load (``CARDIACSEG_MAX_ARRAY_GB``).

    Example:
        >>> img, lab = read_ssl4mis_frame("../shared/data/acdc_ssl4mis", "patient004", 1)  # doctest: +SKIP

    """
    files = _index(root).get((patient, frame))
    if not files:
        raise Ssl4misFormatError(f"{_data_dir(root)}: no files for {patient} frame {frame:02d}")
    if None in files:
        image, label = _read(files[None])
        if image.ndim == 2:
            image, label = image[None], label[None]
    else:
        ks = sorted(k for k in files if k is not None)
        if ks != list(range(1, len(ks) + 1)):
            raise Ssl4misFormatError(
                f"{_data_dir(root)}: {patient} frame {frame:02d} slice numbers {ks} are not 1..Z without gaps"
            )
        pairs = [_read(files[k]) for k in ks]
        shapes = {p[0].shape for p in pairs}
        if len(shapes) != 1:
            raise Ssl4misFormatError(
                f"{files[ks[0]]}: slices of {patient} frame {frame:02d} differ in size {shapes}"
            )
        image = np.stack([p[0] for p in pairs])
        label = np.stack([p[1] for p in pairs])
    return image, acdc_to_internal(label)


def read_ssl4mis_study(root: PathLike, patient: str) -> CineStudy:
    """Read a patient's ED (frame01) and ES (frame02) as a two-phase study without spacing.

    Args:
        root: the ``acdc_ssl4mis`` folder (or its ``data`` subfolder).
        patient: e.g. ``"patient001"``.

    Returns:
        A :class:`CineStudy` with ``T = 2``, labels for both phases, ``ed_phase = 0``, ``es_phase = 1``
        and ``spacing_mm = None``.

    Raises:
        Ssl4misFormatError: missing or inconsistent files.

    Example:
        >>> s = read_ssl4mis_study("../shared/data/acdc_ssl4mis", "patient001")  # doctest: +SKIP
        >>> s.spacing_mm is None  # doctest: +SKIP
        True

    """
    ed_img, ed_lab = read_ssl4mis_frame(root, patient, 1)
    es_img, es_lab = read_ssl4mis_frame(root, patient, 2)
    if ed_img.shape != es_img.shape:
        raise Ssl4misFormatError(
            f"{_data_dir(root)}: {patient} ED {ed_img.shape} and ES {es_img.shape} stacks differ in shape"
        )
    return CineStudy(
        image=np.stack([ed_img, es_img]),
        spacing_mm=None,
        labels={0: ed_lab, 1: es_lab},
        ed_phase=0,
        es_phase=1,
        source=f"ACDC (SSL4MIS HDF5) {patient}",
    )
