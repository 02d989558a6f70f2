"""What counts as one study: one definition for ``info``, ``segment``, ``evaluate`` and the bundles.

* A NIfTI file (not a label file: ``labels.nii*``, ``*_gt.nii*``) is one study.
* A folder with an ACDC ``Info.cfg`` is one study (its NIfTI files are not searched).
* DICOM files are grouped by patient and study (``PatientID``, ``StudyInstanceUID``) wherever they lie
  below an input, so a study exported as one series per slice position in sub-folders (Kaggle Data
  Science Bowl ``study/sax_N/``, many Siemens exports) is **one** study, and a folder of patients is a
  batch of studies -- never one study mixing patients. Which series of a study form the short-axis cine
  is decided by the DICOM reader (:func:`cardiacseg.io.dicom.choose_cine_stack`).
* Any other folder is a collection whose entries are searched (up to ``max_depth`` levels; symbolic-link
  loops and the output folder are skipped).

Study names are the file or folder names: for DICOM, the entry of the input folder that holds the
study's files (or the input folder itself when it holds nothing else), made unique with the PatientID
or a numeric suffix.
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cardiacseg.io.study import CineStudy
from cardiacseg.typing import PathLike

__all__ = ["StudyInput", "discover_studies", "is_label_file", "read_study", "study_name"]

StudyKind = Literal["dicom", "nifti", "acdc"]

#: File suffixes searched for DICOM (besides files starting with the 'DICM' preamble or with no suffix).
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")

#: Suffixes never parsed as DICOM (pictures, text, archives, NIfTI, HDF5...).
_NOT_DICOM = (".txt", ".csv", ".json", ".png", ".jpg", ".jpeg", ".gif", ".pdf", ".xml", ".h5", ".zip", ".gz")


@dataclass(frozen=True)
class StudyInput:
    """One study found by :func:`discover_studies`.

    Attributes:
        name: unique name (the output sub-folder of ``segment``; the key that pairs studies in ``evaluate``).
        kind: ``"dicom"``, ``"nifti"`` or ``"acdc"``.
        path: the NIfTI file, ACDC folder, or the folder holding the DICOM study's files.
        files: a DICOM study's files (its images first, then non-image files found beside them).
        patient_id: PatientID of a DICOM study ("" otherwise).

    Example:
        >>> StudyInput("p1", "nifti", Path("p1.nii.gz")).name
        'p1'

    """

    name: str
    kind: StudyKind
    path: Path
    files: tuple[str, ...] = ()
    patient_id: str = ""

    def read(self) -> CineStudy:
        """Read the study with the reader of its kind.

        Returns:
            The :class:`CineStudy`.

        Raises:
            ValueError: the reader's errors (they name the file and the problem).

        """
        if self.kind == "acdc":
            from cardiacseg.io.acdc import read_acdc_patient

            return read_acdc_patient(self.path)
        if self.kind == "nifti":
            from cardiacseg.io.nifti import read_nifti_study

            return read_nifti_study(self.path)
        from cardiacseg.io.dicom import read_dicom_cine

        return read_dicom_cine(self.path, files=self.files or None)


def is_label_file(path: Path) -> bool:
    """Whether a NIfTI file holds labels rather than an image (``labels.nii*``, ``*_gt.nii*``).

    Args:
        path: the file.

    Returns:
        True for label files.

    Example:
        >>> is_label_file(Path("patient001_frame01_gt.nii.gz")), is_label_file(Path("p_4d.nii.gz"))
        (True, False)

    """
    name = path.name.lower()
    return name.startswith("labels.nii") or name.endswith(("_gt.nii", "_gt.nii.gz"))


def study_name(path: PathLike) -> str:
    """Name a study: a file without its NIfTI suffix, a ``labels.nii.gz``'s folder, a folder's name.

    Args:
        path: a file or folder.

    Returns:
        The name.

    Example:
        >>> study_name("out/SCD0000101/labels.nii.gz"), study_name("a/patient001_4d.nii.gz")
        ('SCD0000101', 'patient001_4d')

    """
    p = Path(path)
    if p.name == "labels.nii.gz":
        return p.parent.name
    name = p.name
    for ext in (".nii.gz", ".nii"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def _maybe_dicom(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(DICOM_SUFFIXES) or "." not in name:
        return True
    if name.endswith(_NOT_DICOM):
        return False
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


_KEY_TAGS = ["PatientID", "StudyInstanceUID", "SOPClassUID", "Rows"]


def _dicom_key(path: Path) -> tuple[str, str] | None:
    """``(PatientID, StudyInstanceUID)`` of a DICOM file; ``None`` when it is not DICOM; raises if corrupt."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_KEY_TAGS)
        except InvalidDicomError:  # no preamble: accepted when it parses as an image data set
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=_KEY_TAGS)
            if "Rows" not in ds:
                return None
    except Exception as exc:
        raise ValueError(str(exc)) from exc
    if "SOPClassUID" not in ds and "Rows" not in ds:
        return None
    return str(ds.get("PatientID", "") or ""), str(ds.get("StudyInstanceUID", "") or "")


def _walk(root: Path, max_depth: int, skip: set[Path]) -> Iterable[tuple[str, Path]]:
    """Yield ``("nifti" | "acdc" | "dicom?" | "other", path)`` below ``root``."""
    seen: set[str] = set()

    def visit(p: Path, depth: int) -> Iterable[tuple[str, Path]]:
        try:
            real = p.resolve()
        except (OSError, RuntimeError):  # a symbolic-link loop
            return
        if real in skip or (depth > 0 and p.name.startswith(".")):
            return
        if p.is_file():
            if _is_nifti(p):
                if not is_label_file(p):
                    yield "nifti", p
            elif _maybe_dicom(p):
                yield "dicom?", p
            else:
                yield "other", p
            return
        if not p.is_dir() or str(real) in seen:
            return
        seen.add(str(real))
        if (p / "Info.cfg").exists():
            yield "acdc", p
            return
        if depth >= max_depth:
            return
        try:
            entries = sorted(p.iterdir())
        except OSError:
            return
        for e in entries:
            yield from visit(e, depth + 1)

    yield from visit(root, 0)


def _common_folder(files: Sequence[str]) -> Path:
    return Path(os.path.commonpath([os.path.dirname(f) for f in files]))


def _dicom_studies(root: Path, candidates: list[Path], others: list[Path], alone: bool) -> list[StudyInput]:
    """Group DICOM files below one input by (PatientID, StudyInstanceUID)."""
    from cardiacseg.io.dicom import quiet_dicom_validation

    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    unreadable: list[Path] = []
    for p in candidates:
        try:
            with quiet_dicom_validation():
                key = _dicom_key(p)
        except ValueError:
            unreadable.append(p)  # corrupt: read with its neighbours so the reader names it
            continue
        if key is None:
            others.append(p)
        elif not key[1]:  # no StudyInstanceUID (type 1, so rare): the folder decides
            groups[(key[0], f"folder:{p.parent}")].append(str(p))
        else:
            groups[key].append(str(p))
    for p in unreadable:
        same_dir = (k for k, fs in groups.items() if any(os.path.dirname(f) == str(p.parent) for f in fs))
        home = next(same_dir, None)
        groups[home or ("", f"folder:{p.parent}")].append(str(p))
    studies = []
    for (patient, _), files in sorted(groups.items(), key=lambda kv: sorted(kv[1])[0]):
        # the input folder names the study when it holds nothing else (e.g. files under root/DICOM/...)
        folder = root if alone and len(groups) == 1 and root.is_dir() else _common_folder(files)
        beside = [str(o) for o in others if str(o).startswith(str(folder) + os.sep)]
        rel = folder.relative_to(root).parts if root.is_dir() and folder != root else ()
        base = rel[0] if rel else folder.name  # the entry of the input folder that holds the study
        studies.append(StudyInput(base, "dicom", folder, tuple(sorted(files)) + tuple(beside), patient))
    return studies


def discover_studies(
    inputs: Sequence[PathLike], max_depth: int = 6, exclude: Sequence[PathLike] = ()
) -> list[StudyInput]:
    """Resolve user inputs (files and folders) into studies, by the rules of this module.

    Args:
        inputs: paths given by the user.
        max_depth: how deep to search folders.
        exclude: folders not to search (e.g. the output folder inside an input folder).

    Returns:
        The studies with unique names, in a stable (sorted) order. A study reached twice (the same input
        given twice, or a folder and a study inside it) is listed once. Hidden files and folders (names
        starting with ``.``: macOS ``._*`` companions, partial writes) are not searched. An input in which
        no study is found is named in a warning (and, alone, gives an empty list).

    Raises:
        FileNotFoundError: an input does not exist.

    Example:
        >>> [s.name for s in discover_studies(["sunnybrook/dicoms"])]  # doctest: +SKIP
        ['SCD0000101', 'SCD0000201']

    """
    skip = {Path(e).resolve() for e in exclude}
    found: list[StudyInput] = []
    for item in inputs:
        root = Path(item)
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such file or folder")
        candidates: list[Path] = []
        others: list[Path] = []
        n_found = len(found)
        for kind, p in _walk(root, max_depth, skip):
            if kind == "nifti":
                found.append(StudyInput("", "nifti", p))
            elif kind == "acdc":
                found.append(StudyInput("", "acdc", p))
            elif kind == "dicom?":
                candidates.append(p)
            else:
                others.append(p)
        found += _dicom_studies(root, candidates, others, alone=len(found) == n_found)
        if len(found) == n_found and len(inputs) > 1:
            warnings.warn(
                f"{root}: no study (DICOM, ACDC folder or NIfTI file) found here; left out", stacklevel=2
            )
    return _name(_unique(found))


def _unique(studies: list[StudyInput]) -> list[StudyInput]:
    """Drop studies found a second time (same kind, same resolved path and files), keeping the first."""
    seen: set[tuple[str, Path, tuple[str, ...]]] = set()
    out = []
    for s in studies:
        key = (s.kind, s.path.resolve(), tuple(sorted(os.path.relpath(f, s.path) for f in s.files)))
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def _name(studies: list[StudyInput]) -> list[StudyInput]:
    base = [s.name or study_name(s.path) for s in studies]
    clash = {b for b in base if base.count(b) > 1}
    named: list[StudyInput] = []
    seen: dict[str, int] = {}
    for s, b in zip(studies, base, strict=True):
        if b in clash and s.patient_id and s.patient_id != b:
            b = f"{b}_{s.patient_id}"
        seen[b] = seen.get(b, 0) + 1
        name = b if seen[b] == 1 else f"{b}_{seen[b]}"
        named.append(StudyInput(name, s.kind, s.path, s.files, s.patient_id))
    return named


def read_study(path: PathLike) -> CineStudy:
    """Read the one study at a path: a DICOM folder or file, an ACDC patient folder, or a NIfTI file.

    Args:
        path: the study. A folder holding several studies (patients) is refused with their list: read
            one of them, or segment the folder as a batch.

    Returns:
        The :class:`CineStudy`.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: no study, several studies, or the reader's own errors (they name the file).

    Example:
        >>> study = read_study("sunnybrook/dicoms/SCD0000101")  # doctest: +SKIP

    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_file() and not _is_nifti(p):
        from cardiacseg.io.dicom import read_dicom_cine

        if p.name.lower().endswith(_NOT_DICOM):
            raise ValueError(
                f"{p}: unrecognised input (expected a DICOM folder or file, an ACDC patient folder or a "
                "NIfTI file)"
            )
        return read_dicom_cine(p)
    studies = discover_studies([p])
    if not studies:
        raise ValueError(f"{p}: no study found (no DICOM image, NIfTI file or ACDC Info.cfg)")
    if len(studies) > 1:
        listed = "; ".join(
            f"{s.name}: {s.path}" + (f" (patient {s.patient_id})" if s.patient_id else "")
            for s in studies[:10]
        )
        raise ValueError(
            f"{p}: holds {len(studies)} studies ({listed}{'; ...' if len(studies) > 10 else ''}); "
            "`cardiacseg info` / `segment` on the folder treat each as a study of its own; in Python, "
            "read one with cardiacseg.io.discover_studies(folder)[i].read()"
        )
    return studies[0].read()
