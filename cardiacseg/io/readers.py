"""One entry point that picks the right reader for a path."""

from __future__ import annotations

from pathlib import Path

from cardiacseg.io.acdc import read_acdc_patient
from cardiacseg.io.dicom import read_dicom_cine
from cardiacseg.io.nifti import read_nifti_study
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import PathLike

__all__ = ["read_study"]


def read_study(path: PathLike) -> CineStudy:
    """Read a cine study from a DICOM folder, an ACDC patient folder, or a NIfTI file.

    Args:
        path: a folder of DICOM files (searched recursively), a folder with an ACDC ``Info.cfg``, or a
            ``.nii``/``.nii.gz`` file (3D or 4D).

    Returns:
        The :class:`CineStudy`.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file type is not recognised (the message names it), or the reader's own errors.

    Example:
        >>> study = read_study("sunnybrook/dicoms/SCD0000101")  # doctest: +SKIP

    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_dir():
        if (p / "Info.cfg").exists():
            return read_acdc_patient(p)
        return read_dicom_cine(p)
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return read_nifti_study(p)
    if name.endswith(".dcm"):
        return read_dicom_cine(p)
    raise ValueError(
        f"{p}: unrecognised input (expected a DICOM folder, an ACDC patient folder or a NIfTI file)"
    )
