"""Short-axis cine DICOM reader with curation, as a chain of small steps.

A folder (searched recursively), or a list of files, may hold the cine in any order, other series, and
non-DICOM files. :func:`read_dicom_cine` runs these steps, each a function that returns its value and
records what it found in the study's :class:`~cardiacseg.io.study.CurationReport`:

1. :func:`parse_dicom_files` -- one :class:`DicomFrame` per image: a classic single-frame file, each frame
   of an Enhanced MR multi-frame file (geometry and trigger delay from the functional groups), files
   without the 128-byte preamble / File Meta; images without ``ImagePositionPatient`` /
   ``ImageOrientationPatient`` are counted and named.
2. :func:`group_series` / :func:`choose_cine_stack` -- series of one patient and study whose slices are
   parallel and that hold the same *kind* of acquisition (the same number of phases per position) form a
   stack; several single-slice series of one stack are merged (Kaggle Data Science Bowl ``sax_N``
   layout). The stack with several phases per position and the most positions is the cine; the others
   (an LGE or T1/T2-map stack planned on the cine, a long-axis view) are listed as extra series.
3. :func:`drop_repeats` -- slices sorted by ``ImagePositionPatient`` projected on the slice normal
   (``SliceLocation`` is only cross-checked: in the Sunnybrook files it disagrees with the real
   spacing); a position acquired twice *with the same kind of acquisition* keeps the later one.
4. :func:`align_phases` -- phases ordered by ``TriggerTime``, else ``NominalCardiacTriggerDelayTime``,
   else ``InstanceNumber`` (reported as unverifiable); slices missing a phase drop it everywhere.
5. :func:`check_slice_spacing`, :func:`assemble_images` (pixels on one in-plane grid, rotated or
   rescaled images resampled, memory checked before allocating) and :func:`build_affine` (NIfTI RAS).

The curation follows what the 7T transfer-learning study lists (missing time points, uneven slice
spacing, inconsistent image dimension, repeat measurements, scaled images, rotated images): safe repairs
are made and reported; what cannot be repaired raises :class:`DicomReadError` naming the file.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pydicom
import pydicom.config
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from scipy import ndimage

from cardiacseg.enums import CurationKind
from cardiacseg.io.dicom_enhanced import (
    enhanced_frame_geometry,
    is_classic_multiframe,
    is_enhanced_multiframe,
)
from cardiacseg.io.limits import check_allocation
from cardiacseg.io.study import (
    PLAUSIBLE_HEIGHT_CM,
    PLAUSIBLE_WEIGHT_KG,
    CineStudy,
    CurationReport,
    PatientInfo,
)
from cardiacseg.typing import Affine, FloatArray, PathLike

__all__ = [
    "POSITION_TOLERANCE_MM",
    "DicomFrame",
    "DicomReadError",
    "DicomSeriesInfo",
    "align_phases",
    "assemble_images",
    "build_affine",
    "check_slice_spacing",
    "choose_cine_stack",
    "drop_repeats",
    "group_series",
    "list_dicom_files",
    "list_dicom_series",
    "parse_dicom_files",
    "patient_info_from_dicom",
    "quiet_dicom_validation",
    "read_dicom_cine",
]

#: Two slice positions closer than this (mm, along the normal) are the same slice location.
POSITION_TOLERANCE_MM = 0.5

#: A slice may lack this fraction of the phases (at least one) as lost images; more means another timeline
#: (another temporal resolution) and the study is refused.
MAX_MISSING_PHASES_FRACTION = 0.1


class DicomReadError(ValueError):
    """A DICOM input that cannot be read or repaired; the message names the file and the problem."""


@dataclass
class DicomFrame:
    """One 2D image: a single-frame file, or one frame of a multi-frame file.

    Attributes:
        path: the file.
        ds: its dataset (shared by the frames of a multi-frame file).
        frame_index: 0-based frame of a multi-frame file, ``None`` for a single-frame file.
        series_uid, series_number, acquisition_number, acquisition_time, instance_number: from the header
            (0 / "" when absent; a multi-frame file's frames are numbered ``frame_index + 1``).
        patient_id, study_uid: PatientID and StudyInstanceUID ("" when absent).
        iop: ImageOrientationPatient, 6 direction cosines (row direction, then column direction), LPS.
        ipp: ImagePositionPatient of the first pixel's centre, mm, LPS.
        pixel_spacing: ``(row spacing, column spacing)`` in mm, or ``None``.
        rows, cols: matrix size.
        trigger_ms: time after the R wave in ms, or ``None``.
        trigger_source: the attribute ``trigger_ms`` came from.
        slice_location: SliceLocation (mm) or ``None``.
        slice_thickness_mm: SliceThickness or ``None``.
        rescale_slope, rescale_intercept: stored value to real value (Modality LUT).
        image_kind: ImageType, SequenceName and CardiacNumberOfImages: images of one series with another
            kind (e.g. an LGE image appended to the cine's series by a console) are another acquisition.

    """

    path: str
    ds: Dataset
    frame_index: int | None
    series_uid: str
    series_number: int
    acquisition_number: int
    acquisition_time: str
    instance_number: int
    patient_id: str
    study_uid: str
    iop: npt.NDArray[np.float64]
    ipp: npt.NDArray[np.float64]
    pixel_spacing: tuple[float, float] | None
    rows: int
    cols: int
    trigger_ms: float | None
    trigger_source: str
    slice_location: float | None
    slice_thickness_mm: float | None
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    image_kind: str = ""

    @property
    def normal(self) -> npt.NDArray[np.float64]:
        """Unit slice normal (row cosine x column cosine)."""
        n = np.cross(self.iop[:3], self.iop[3:])
        return np.asarray(n / np.linalg.norm(n), dtype=np.float64)

    @property
    def grid_key(self) -> tuple[object, ...]:
        """Orientation, matrix and pixel spacing: frames with equal keys share an in-plane grid."""
        ps = None if self.pixel_spacing is None else tuple(round(p, 4) for p in self.pixel_spacing)
        return (tuple(np.round(self.iop, 3)), self.rows, self.cols, ps)


@dataclass(frozen=True)
class DicomSeriesInfo:
    """Summary of one DICOM series found in a folder.

    Attributes:
        series_uid: SeriesInstanceUID.
        series_number: SeriesNumber (0 when absent).
        description: SeriesDescription.
        n_images: number of images (frames).
        n_positions: number of distinct slice positions.
        n_phases: number of images at one position (the most common count).
        normal: unit slice normal (patient LPS coordinates).

    Example:
        >>> info = DicomSeriesInfo("1.2", 3, "SAX cine", 240, 12, 20, (0.0, 0.0, 1.0))
        >>> info.n_images // info.n_positions
        20

    """

    series_uid: str
    series_number: int
    description: str
    n_images: int
    n_positions: int
    n_phases: int
    normal: tuple[float, float, float]


@contextmanager
def quiet_dicom_validation() -> Iterator[None]:
    """Do not warn about invalid element values (e.g. non-conformant UIDs) while reading; restore after.

    Example:
        >>> with quiet_dicom_validation():
        ...     pass

    """
    old = pydicom.config.settings.reading_validation_mode
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    try:
        yield
    finally:
        pydicom.config.settings.reading_validation_mode = old


def _float_or_none(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _int_or_zero(value: object) -> int:
    f = _float_or_none(value)
    return 0 if f is None else int(f)


def _floats(value: object, n: int, what: str, path: str) -> npt.NDArray[np.float64]:
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)  # type: ignore[attr-defined]
    except (TypeError, ValueError) as exc:
        raise DicomReadError(f"{path}: {what} is not a list of numbers ({value!r})") from exc
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise DicomReadError(f"{path}: {what} must hold {n} finite numbers, got {value!r}")
    return arr


def _check_orientation(iop: npt.NDArray[np.float64], path: str) -> None:
    u, v = iop[:3], iop[3:]
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if abs(nu - 1) > 0.05 or abs(nv - 1) > 0.05 or abs(float(np.dot(u, v))) > 0.05:
        raise DicomReadError(
            f"{path}: ImageOrientationPatient {iop.tolist()} is not two orthogonal unit vectors "
            f"(lengths {nu:.3f}, {nv:.3f}, dot {float(np.dot(u, v)):.3f})"
        )


def _pixel_spacing(value: object, path: str) -> tuple[float, float] | None:
    if value is None:
        return None
    ps = _floats(value, 2, "PixelSpacing", path)
    if not np.all(ps > 0):
        raise DicomReadError(f"{path}: PixelSpacing must be positive, got {ps.tolist()}")
    return (float(ps[0]), float(ps[1]))


def _declared_bytes(ds: Dataset, path: str) -> int:
    """Bytes of the decoded pixel array declared by the header (checked before decoding)."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = max(1, _int_or_zero(ds.get("NumberOfFrames", 1)))
        bits = int(ds.get("BitsAllocated", 16) or 16)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise DicomReadError(f"{path}: Rows/Columns/NumberOfFrames are missing or malformed ({exc})") from exc
    if rows <= 0 or cols <= 0:
        raise DicomReadError(f"{path}: image matrix {rows}x{cols} is empty")
    return rows * cols * frames * samples * max(1, (bits + 7) // 8)


def _is_image_without_pixels(ds: Dataset) -> bool:
    """Whether a data set without ``PixelData`` still describes an image (a truncated or stripped file).

    Image objects carry Rows and Columns; spectroscopy (Rows and Columns, but ``SpectroscopyData``) and
    float-pixel images are not taken as damaged.
    """
    other_data = ("SpectroscopyData", "FloatPixelData", "DoubleFloatPixelData")
    return "Rows" in ds and "Columns" in ds and not any(k in ds for k in other_data)


def _read_dataset(path: str, report_no_meta: list[str]) -> Dataset | None:
    """Parse a file; ``None`` when it is not DICOM. Files without preamble / File Meta are read too.

    An empty file with a DICOM name (``.dcm``, ``.dicom``, ``.ima``) is an error: an interrupted copy or
    export loses an image of the cine, which must not be dropped silently.
    """
    if path.lower().endswith((".dcm", ".dicom", ".ima")) and os.path.getsize(path) == 0:
        raise DicomReadError(f"{path}: empty file (0 bytes): an interrupted copy or export? Copy it again")
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        pass
    except Exception as exc:  # truncated or corrupt file: pydicom raises many types
        raise DicomReadError(f"{path}: DICOM file cannot be parsed ({type(exc).__name__}: {exc})") from exc
    try:  # no 128-byte preamble + 'DICM' (older consoles, implicit VR): accept it if it is an image
        ds = pydicom.dcmread(path, force=True)
        if "PixelData" not in ds or "Rows" not in ds or "Columns" not in ds:
            return None
    except Exception:
        return None
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian
            if ds.is_implicit_VR
            else ExplicitVRLittleEndian
            if ds.is_little_endian
            else ExplicitVRBigEndian
        )
    report_no_meta.append(path)
    return ds


def _classic_frame(path: str, ds: Dataset) -> DicomFrame:
    try:
        iop = _floats(ds.ImageOrientationPatient, 6, "ImageOrientationPatient", path)
        ipp = _floats(ds.ImagePositionPatient, 3, "ImagePositionPatient", path)
        _check_orientation(iop, path)
        trigger, source = _float_or_none(ds.get("TriggerTime")), "TriggerTime"
        if trigger is None:
            trigger, source = (
                _float_or_none(ds.get("NominalCardiacTriggerDelayTime")),
                ("NominalCardiacTriggerDelayTime"),
            )
        return DicomFrame(
            path=path,
            ds=ds,
            frame_index=None,
            series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
            series_number=_int_or_zero(ds.get("SeriesNumber")),
            acquisition_number=_int_or_zero(ds.get("AcquisitionNumber")),
            acquisition_time=str(ds.get("AcquisitionTime", "") or ""),
            instance_number=_int_or_zero(ds.get("InstanceNumber")),
            patient_id=str(ds.get("PatientID", "") or ""),
            study_uid=str(ds.get("StudyInstanceUID", "") or ""),
            iop=iop,
            ipp=ipp,
            pixel_spacing=_pixel_spacing(ds.get("PixelSpacing"), path),
            rows=int(ds.Rows),
            cols=int(ds.Columns),
            trigger_ms=trigger,
            trigger_source=source if trigger is not None else "",
            slice_location=_float_or_none(ds.get("SliceLocation")),
            slice_thickness_mm=_float_or_none(ds.get("SliceThickness")),
            rescale_slope=_float_or_none(ds.get("RescaleSlope")) or 1.0,
            rescale_intercept=_float_or_none(ds.get("RescaleIntercept")) or 0.0,
            image_kind=_image_kind(ds),
        )
    except DicomReadError:
        raise
    except (AttributeError, TypeError, ValueError, IndexError) as exc:
        raise DicomReadError(f"{path}: malformed geometry attributes ({exc})") from exc


def _enhanced_frames(path: str, ds: Dataset) -> list[DicomFrame]:
    """Split an Enhanced MR multi-frame file into frames (geometry from the functional groups)."""
    try:
        geometry = enhanced_frame_geometry(ds, path)
    except DicomReadError:
        raise
    except ValueError as exc:
        raise DicomReadError(str(exc)) from exc
    frames = []
    for g in geometry:
        iop = np.asarray(g.iop, dtype=np.float64)
        _check_orientation(iop, path)
        frames.append(
            DicomFrame(
                path=path,
                ds=ds,
                frame_index=g.frame_index,
                series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
                series_number=_int_or_zero(ds.get("SeriesNumber")),
                acquisition_number=_int_or_zero(ds.get("AcquisitionNumber")),
                acquisition_time=str(ds.get("AcquisitionDateTime", ds.get("AcquisitionTime", "")) or ""),
                instance_number=g.frame_index + 1,
                patient_id=str(ds.get("PatientID", "") or ""),
                study_uid=str(ds.get("StudyInstanceUID", "") or ""),
                iop=iop,
                ipp=np.asarray(g.ipp, dtype=np.float64),
                pixel_spacing=g.pixel_spacing,
                rows=int(ds.Rows),
                cols=int(ds.Columns),
                trigger_ms=g.trigger_ms,
                trigger_source="NominalCardiacTriggerDelayTime" if g.trigger_ms is not None else "",
                slice_location=None,
                slice_thickness_mm=g.slice_thickness,
                rescale_slope=g.rescale_slope,
                rescale_intercept=g.rescale_intercept,
                image_kind=_image_kind(ds),
            )
        )
    return frames


def _image_kind(ds: Dataset) -> str:
    value = ds.get("ImageType")
    words = [str(w) for w in value] if isinstance(value, MultiValue | list | tuple) else [str(value or "")]
    phases = _int_or_zero(ds.get("CardiacNumberOfImages"))
    return "\\".join(words) + "|" + str(ds.get("SequenceName", "") or "") + "|" + str(phases or "")


def _is_multiframe(ds: Dataset) -> bool:
    # not "has a PerFrameFunctionalGroupsSequence": the Sunnybrook GE files carry an empty one
    return is_enhanced_multiframe(ds) or is_classic_multiframe(ds)


def list_dicom_files(folder: PathLike) -> list[str]:
    """All files under a folder (recursively, symbolic-link loops skipped), or the file itself.

    Args:
        folder: a folder or a file.

    Returns:
        Sorted paths.

    Raises:
        FileNotFoundError: when ``folder`` does not exist.

    Example:
        >>> list_dicom_files("no/such/folder")
        Traceback (most recent call last):
        ...
        FileNotFoundError: no/such/folder: no such file or folder

    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    if root.is_file():
        return [str(root)]
    out: list[str] = []
    seen: set[str] = set()
    for d, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(d)
        if real in seen:  # a symbolic-link loop
            dirs[:] = []
            continue
        seen.add(real)
        out += [os.path.join(d, f) for f in files if os.path.isfile(os.path.join(d, f))]
    return sorted(out)


def parse_dicom_files(paths: Sequence[str], report: CurationReport, where: PathLike) -> list[DicomFrame]:
    """Parse files into frames; record ignored files, files without File Meta, images without geometry.

    Args:
        paths: candidate files (non-DICOM files are ignored and reported).
        report: curation report to add to.
        where: the folder or file the user gave (named in errors).

    Returns:
        One :class:`DicomFrame` per image (per frame of a multi-frame file).

    Raises:
        DicomReadError: a corrupt file (named; also an empty ``.dcm`` file and an image header without
            pixel data), a declared image too large to decode, no DICOM image, or
            images that all lack ``ImagePositionPatient`` / ``ImageOrientationPatient`` (counted, one named).

    Example:
        >>> paths = list_dicom_files("study/")  # doctest: +SKIP
        >>> frames = parse_dicom_files(paths, CurationReport(), "study/")  # doctest: +SKIP

    """
    frames: list[DicomFrame] = []
    ignored: list[str] = []
    no_meta: list[str] = []
    no_geometry: list[str] = []
    duplicates: list[tuple[str, str]] = []  # (file, the file of the same image read before)
    first_of: dict[str, str] = {}  # SOPInstanceUID -> the file it was read from
    for p in paths:
        try:
            ds = _read_dataset(p, no_meta)
            if ds is not None and "PixelData" not in ds and _is_image_without_pixels(ds):
                raise DicomReadError(
                    f"{p}: a DICOM image ({ds.get('Rows')}x{ds.get('Columns')}) without pixel data: the file "
                    "is truncated or damaged (export or copy it again)"
                )
            if ds is None or "PixelData" not in ds:
                ignored.append(p)
                continue
            uid = str(ds.get("SOPInstanceUID", "") or "")
            if uid and uid in first_of:  # the same image exported or copied twice: read it once
                duplicates.append((p, first_of[uid]))
                continue
            if uid:
                first_of[uid] = p
            check_allocation(_declared_bytes(ds, p), f"pixel data ({ds.get('Rows')}x{ds.get('Columns')})", p)
            if _is_multiframe(ds):
                frames += _enhanced_frames(p, ds)
            elif "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
                no_geometry.append(p)
            else:
                frames.append(_classic_frame(p, ds))
        except ValueError:  # DicomReadError, InputTooLargeError: they name the file already
            raise
        except Exception as exc:  # pydicom reads elements lazily: a corrupt VR surfaces here
            raise DicomReadError(f"{p}: DICOM header cannot be parsed ({type(exc).__name__}: {exc})") from exc
    if duplicates:
        report.add(
            CurationKind.DUPLICATE_INSTANCE,
            "warning",
            f"{len(duplicates)} file(s) repeat an image read already (same SOPInstanceUID: "
            f"{duplicates[0][0]} is {duplicates[0][1]}); each image was read once",
            tuple(p for p, _ in duplicates),
        )
    if ignored:
        report.add(
            CurationKind.IGNORED_FILE,
            "info",
            f"{len(ignored)} file(s) are not DICOM images and were ignored",
            tuple(ignored),
        )
    if no_meta:
        report.add(
            CurationKind.NO_FILE_META,
            "info",
            f"{len(no_meta)} file(s) have no DICOM preamble / File Meta; read as "
            f"{no_meta and _syntax_name(frames, no_meta[0])}",
            tuple(no_meta),
        )
    if no_geometry:
        msg = (
            f"{len(no_geometry)} DICOM image(s) lack ImagePositionPatient and/or ImageOrientationPatient "
            f"(e.g. {no_geometry[0]}), so their slice position is unknown"
        )
        if not frames:
            raise DicomReadError(f"{where}: {msg}; no image with geometry to build a short-axis stack from")
        report.add(CurationKind.MISSING_GEOMETRY, "warning", msg + "; they were not read", tuple(no_geometry))
    if not frames:
        raise DicomReadError(f"{where}: no DICOM images found ({len(ignored)} other file(s))")
    return frames


def _syntax_name(frames: Sequence[DicomFrame], path: str) -> str:
    ds = next((f.ds for f in frames if f.path == path), None)
    return "DICOM data set" if ds is None else str(ds.file_meta.TransferSyntaxUID.name)


def group_series(frames: Sequence[DicomFrame]) -> dict[str, list[DicomFrame]]:
    """Group frames by SeriesInstanceUID (and image kind), ordered by series number.

    Images of one SeriesInstanceUID with another ImageType / SequenceName (an LGE image some consoles
    append to the cine's series) form a group of their own, keyed ``"<uid>#<ImageType>|<SequenceName>"``.

    Args:
        frames: parsed frames.

    Returns:
        ``{series_uid or series_uid#kind: frames}``.

    Example:
        >>> group_series([])
        {}

    """
    kinds: dict[str, set[str]] = defaultdict(set)
    for f in frames:
        kinds[f.series_uid].add(f.image_kind)
    by_series: dict[str, list[DicomFrame]] = defaultdict(list)
    for f in frames:
        key = f.series_uid if len(kinds[f.series_uid]) == 1 else f"{f.series_uid}#{f.image_kind}"
        by_series[key].append(f)
    return dict(sorted(by_series.items(), key=lambda kv: (kv[1][0].series_number, kv[0])))


def _cluster_positions(pos: npt.NDArray[np.float64]) -> list[list[int]]:
    order = np.argsort(pos, kind="stable")
    clusters: list[list[int]] = []
    for i in order:
        if clusters and pos[i] - pos[clusters[-1][-1]] <= POSITION_TOLERANCE_MM:
            clusters[-1].append(int(i))
        else:
            clusters.append([int(i)])
    return clusters


def _positions(frames: Sequence[DicomFrame], normal: npt.NDArray[np.float64]) -> list[list[int]]:
    return _cluster_positions(np.asarray([np.dot(f.ipp, normal) for f in frames]))


def _phases_per_position(frames: Sequence[DicomFrame]) -> int:
    """Count the images per slice position: the most common count (the larger on ties)."""
    counts = Counter(len(c) for c in _positions(frames, frames[0].normal))
    return max(counts, key=lambda n: (counts[n], n))


def _same_kind(a: int, b: int) -> bool:
    """Whether two series with ``a`` and ``b`` images per position are the same kind of acquisition.

    Single-phase stacks (LGE, T1/T2 maps) never join a cine; two cines join when their phase counts differ
    by at most 2 or 20 % (a phase missing in one slice's series).
    """
    if a == 1 or b == 1:
        return a == b
    return abs(a - b) <= max(2, 0.2 * max(a, b))


@dataclass
class _Stack:
    normal: npt.NDArray[np.float64]
    patient: tuple[str, str]
    n_phases: int
    frames: list[DicomFrame]

    @property
    def n_positions(self) -> int:
        return len(_positions(self.frames, self.normal))


def choose_cine_stack(
    frames: Sequence[DicomFrame], report: CurationReport
) -> tuple[list[DicomFrame], list[DicomFrame]]:
    """Choose the short-axis cine among the series: the stack with several phases and the most positions.

    Series join a stack when they belong to the same patient and study, their slices are parallel and they
    hold the same kind of acquisition (:func:`_same_kind`): the Kaggle DSB ``sax_N`` series form one
    stack, while an LGE or mapping stack planned on the cine (one image per position) stays apart. The
    frames not chosen are reported as :attr:`CurationKind.EXTRA_SERIES`.

    Args:
        frames: parsed frames.
        report: curation report to add to.

    Returns:
        ``(chosen frames, other frames)``.

    Example:
        >>> chosen, others = choose_cine_stack(frames, CurationReport())  # doctest: +SKIP

    """
    stacks: list[_Stack] = []
    for series in group_series(frames).values():
        n, kind = series[0].normal, _phases_per_position(series)
        who = (series[0].patient_id, series[0].study_uid)
        for st in stacks:
            parallel = abs(float(np.dot(st.normal, n))) > 0.99
            if st.patient == who and parallel and _same_kind(st.n_phases, kind):
                st.frames.extend(series)
                break
        else:
            stacks.append(_Stack(n, who, kind, list(series)))
    best = max(stacks, key=lambda s: (s.n_phases > 1, s.n_positions, len(s.frames)))
    others = [f for s in stacks if s is not best for f in s.frames]
    _report_extra_series(others, report)
    return best.frames, others


def _report_extra_series(others: Sequence[DicomFrame], report: CurationReport) -> None:
    if others:
        parts = []
        for uid, fs in group_series(others).items():
            what = f"{_phases_per_position(fs)} phase(s) x {len(_positions(fs, fs[0].normal))} position(s)"
            desc = str(fs[0].ds.get("SeriesDescription", "") or "")
            kind = fs[0].image_kind.split("|")[0].replace("\\", "/") or "-"
            parts.append(f"series {fs[0].series_number} {desc!r} {uid} ({kind}; {len(fs)} images, {what})")
        report.add(
            CurationKind.EXTRA_SERIES,
            "info",
            f"{len(parts)} other series not read (pass series_uid to choose): " + "; ".join(parts),
            tuple(dict.fromkeys(f.path for f in others)),
        )


def _later(a: list[DicomFrame]) -> tuple[str, int, int]:
    """Sort key: which of two repeated acquisitions is the later one."""
    return (
        max(f.acquisition_time for f in a),
        max(f.series_number for f in a),
        max(f.instance_number for f in a),
    )


def _split_acquisitions(frames: list[DicomFrame]) -> list[list[DicomFrame]]:
    """Split the frames at one slice position into acquisitions (repeats)."""
    acquisitions: list[list[DicomFrame]] = []
    for fs in group_series(frames).values():
        triggers = [f.trigger_ms for f in fs]
        duplicated = len(set(triggers)) < len(triggers)
        if duplicated and len({f.acquisition_number for f in fs}) > 1:
            by_acq: dict[int, list[DicomFrame]] = defaultdict(list)
            for f in fs:
                by_acq[f.acquisition_number].append(f)
            acquisitions.extend(by_acq.values())
        else:
            acquisitions.append(fs)
    return acquisitions


def drop_repeats(
    frames: Sequence[DicomFrame], normal: npt.NDArray[np.float64], report: CurationReport
) -> tuple[list[list[DicomFrame]], list[float]]:
    """Sort the stack into slice positions along ``normal``; a position acquired twice keeps the later one.

    Args:
        frames: the chosen stack (one kind of acquisition, see :func:`choose_cine_stack`).
        normal: unit slice normal.
        report: curation report (:attr:`CurationKind.REPEATED_SLICE`).

    Returns:
        ``(slices, positions_mm)``: the frames of each slice position (unordered in time) from one
        acquisition, and each position along the normal.

    Example:
        >>> slices, pos = drop_repeats(frames, frames[0].normal, CurationReport())  # doctest: +SKIP

    """
    frames = list(frames)
    pos = np.asarray([np.dot(f.ipp, normal) for f in frames])
    slices: list[list[DicomFrame]] = []
    slice_pos: list[float] = []
    for cluster in _cluster_positions(pos):
        acquisitions = _split_acquisitions([frames[i] for i in cluster])
        if len(acquisitions) > 1:
            acquisitions.sort(key=_later)
            kept, dropped = acquisitions[-1], [f for a in acquisitions[:-1] for f in a]
            report.add(
                CurationKind.REPEATED_SLICE,
                "repaired",
                f"slice at {np.mean([pos[i] for i in cluster]):.2f} mm was acquired "
                f"{len(acquisitions)} times; kept the later acquisition "
                f"(series {kept[0].series_number}), dropped {len(dropped)} image(s)",
                tuple(dict.fromkeys(f.path for f in dropped)),
            )
        else:
            kept = acquisitions[0]
        slices.append(kept)
        slice_pos.append(float(np.mean([np.dot(f.ipp, normal) for f in kept])))
    return slices, slice_pos


def _check_same_timeline(
    s: Sequence[DicomFrame], n_phases: int, slices: Sequence[Sequence[DicomFrame]], where: PathLike
) -> None:
    """Refuse a slice that lacks more phases than lost images explain: it is on another timeline.

    A lost image or two leave a slice :data:`MAX_MISSING_PHASES_FRACTION` short at most; a slice acquired
    with another temporal resolution (e.g. 20 phases beside 25 over the same cycle) lacks many, and matching
    it by trigger time would drop most of the cycle from every slice. (Trigger times alone cannot tell:
    between slices they drift with the heart rate by a third of a phase step in the Sunnybrook study.)
    """
    allowed = max(1, int(MAX_MISSING_PHASES_FRACTION * n_phases))
    if n_phases - len(s) > allowed:
        counts = sorted(Counter(len(x) for x in slices).items())
        raise DicomReadError(
            f"{where}: slices hold different numbers of phases "
            f"({', '.join(f'{n} phases in {c} slice(s)' for n, c in counts)}); {s[0].path}'s slice lacks "
            f"{n_phases - len(s)} of {n_phases}, more than lost images explain (at most {allowed}): the "
            "slices were acquired with different temporal resolutions, so phases cannot be matched across "
            "slices; resample them to one timeline, or read the series of one phase count (series_uid) "
            "on its own"
        )


def _time_key(frame: DicomFrame) -> float:
    return frame.trigger_ms if frame.trigger_ms is not None else 0.0


def align_phases(
    slices: list[list[DicomFrame]], slice_pos: Sequence[float], report: CurationReport, where: PathLike
) -> tuple[list[dict[int, DicomFrame]], list[int], tuple[float, ...] | None]:
    """Order each slice's images in time and match them to one timeline across slices.

    The order comes from ``TriggerTime`` (0018,1060), else ``NominalCardiacTriggerDelayTime`` (0020,9153),
    else ``InstanceNumber``; which one is recorded (:attr:`CurationKind.PHASE_ORDER`: ``info`` when a
    trigger time ordered the phases, ``warning`` when only InstanceNumber did, since the order then cannot
    be verified). A slice with fewer phases has its images matched by trigger time and the missing phases
    are dropped from every slice (:attr:`CurationKind.MISSING_PHASE`).

    Args:
        slices: frames of each slice position (from :func:`drop_repeats`); sorted in place by time.
        slice_pos: position of each slice (mm), for messages.
        report: curation report.
        where: the input (named in errors).

    Returns:
        ``(assignment, kept_phases, phase_times_ms)``: for each slice ``{phase index: frame}``, the phase
        indices present in every slice, and the mean trigger time of each kept phase (``None`` untimed).

    Raises:
        DicomReadError: repeated trigger times at one position, or a slice with missing phases and no
            trigger times to tell which.

    Example:
        >>> assignment, kept, times = align_phases(slices, pos, CurationReport(), "study/")  # doctest: +SKIP

    """
    timed = all(f.trigger_ms is not None for s in slices for f in s)
    for s in slices:
        s.sort(key=lambda f: (_time_key(f) if timed else float(f.instance_number), f.instance_number))
    for k, s in enumerate(slices):
        triggers = [f.trigger_ms for f in s]
        if timed and len(set(triggers)) < len(triggers):
            raise DicomReadError(
                f"{s[0].path}: slice at {slice_pos[k]:.2f} mm has repeated trigger times "
                "that cannot be separated into acquisitions"
            )
    n_phases = max(len(s) for s in slices)
    if n_phases > 1:
        if timed:
            sources = sorted({f.trigger_source for s in slices for f in s})
            report.add(CurationKind.PHASE_ORDER, "info", f"phases ordered by {' / '.join(sources)}")
        else:
            n_untimed = sum(f.trigger_ms is None for s in slices for f in s)
            report.add(
                CurationKind.PHASE_ORDER,
                "warning",
                f"phases ordered by InstanceNumber: {n_untimed} image(s) have neither TriggerTime nor "
                "NominalCardiacTriggerDelayTime, so the phase order cannot be verified",
            )
    full = [s for s in slices if len(s) == n_phases]
    ref_times = np.mean([[f.trigger_ms or 0.0 for f in s] for s in full], axis=0) if timed else None
    missing: set[int] = set()
    assignment: list[dict[int, DicomFrame]] = []
    for k, s in enumerate(slices):
        if len(s) == n_phases:
            assignment.append(dict(enumerate(s)))
            continue
        if ref_times is None:
            raise DicomReadError(
                f"{s[0].path}: slice {k} has {len(s)} of {n_phases} phases and no TriggerTime "
                "to tell which are missing"
            )
        _check_same_timeline(s, n_phases, slices, where)
        assigned: dict[int, DicomFrame] = {}
        for f in s:
            j = int(np.argmin(np.abs(ref_times - (f.trigger_ms or 0.0))))
            if j in assigned:
                raise DicomReadError(
                    f"{f.path}: two images of slice {k} match phase {j}; phases cannot be "
                    "aligned across slices"
                )
            assigned[j] = f
        lost = sorted(set(range(n_phases)) - set(assigned))
        missing.update(lost)
        times = ", ".join(f"{ref_times[j]:.0f}" for j in lost)
        report.add(
            CurationKind.MISSING_PHASE,
            "repaired",
            f"slice {k} at {slice_pos[k]:.2f} mm has {len(s)} of {n_phases} phases; missing phase(s) "
            f"{lost} (trigger ~{times} ms) dropped from every slice",
            tuple(f.path for f in s),
        )
        assignment.append(assigned)
    kept = [j for j in range(n_phases) if j not in missing]
    if not kept:
        raise DicomReadError(f"{where}: no phase is present in every slice")
    times_ms = None
    if timed:
        times_ms = tuple(float(np.mean([a[j].trigger_ms or 0.0 for a in assignment])) for j in kept)
    return assignment, kept, times_ms


def check_slice_spacing(
    slices: list[list[DicomFrame]], slice_pos: Sequence[float], report: CurationReport
) -> float | None:
    """Slice spacing (mm) as the median step between positions; gaps and uneven steps are reported.

    Args:
        slices: frames of each position (for the files named in messages).
        slice_pos: ascending positions along the normal (mm).
        report: curation report (missing slice, uneven spacing, SliceLocation mismatch).

    Returns:
        The spacing, or ``None`` for a single position.

    Example:
        >>> check_slice_spacing([[], [], []], [0.0, 8.0, 16.0], CurationReport())
        8.0

    """
    steps = np.diff(np.asarray(slice_pos, dtype=np.float64))
    if not len(steps):
        return None
    spacing_z = float(np.median(steps))
    for k, st in enumerate(steps):
        ratio = st / spacing_z
        files = tuple(s[0].path for s in (slices[k], slices[k + 1]) if s)
        if abs(ratio - round(ratio)) < 0.2 and round(ratio) >= 2:
            report.add(
                CurationKind.MISSING_SLICE,
                "warning",
                f"gap of {st:.2f} mm between slice {k} ({slice_pos[k]:.2f} mm) and slice {k + 1} "
                f"({slice_pos[k + 1]:.2f} mm): {round(ratio) - 1} slice(s) missing at spacing "
                f"{spacing_z:.2f} mm; volumes use the regular spacing and undercount the gap",
                files,
            )
        elif abs(st - spacing_z) > max(0.5, 0.1 * spacing_z):
            report.add(
                CurationKind.UNEVEN_SLICE_SPACING,
                "warning",
                f"spacing {st:.2f} mm between slice {k} and {k + 1} differs from the median "
                f"{spacing_z:.2f} mm",
                files,
            )
    locs = [s[0].slice_location if s else None for s in slices]
    if None not in locs:
        loc_steps = np.abs(np.diff(np.asarray(locs, dtype=np.float64)))
        if np.any(np.abs(loc_steps - np.abs(steps)) > 0.5):
            report.add(
                CurationKind.SLICE_LOCATION_MISMATCH,
                "info",
                f"SliceLocation steps ({np.median(loc_steps):.2f} mm) disagree with "
                f"ImagePositionPatient spacing ({spacing_z:.2f} mm); the latter is used",
            )
    return spacing_z


#: JPEG-LS Lossless and Near-Lossless: decoded by GDCM only. pyjpegls (CharLS 2.4), which highdicom
#: installs, takes 7-13 s to reject a truncated frame (docs/inputs.md); pydicom would try it after GDCM.
_GDCM_ONLY_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})


def _decoder_options(ds: Dataset) -> None:
    """Pin JPEG-LS decoding to GDCM where pydicom 3 allows choosing the plugin (not in pydicom 2.4)."""
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
    if syntax in _GDCM_ONLY_SYNTAXES and hasattr(ds, "pixel_array_options"):
        from importlib.util import find_spec

        if find_spec("gdcm") is not None:
            ds.pixel_array_options(decoding_plugin="gdcm")


def _pixels(frame: DicomFrame) -> FloatArray:
    try:
        _decoder_options(frame.ds)
        arr = frame.ds.pixel_array
        if frame.frame_index is not None:
            arr = arr[frame.frame_index]
        arr = np.asarray(arr, dtype=np.float32)
    except Exception as exc:
        raise DicomReadError(
            f"{frame.path}: pixel data cannot be decoded ({type(exc).__name__}: {exc})"
        ) from exc
    if arr.shape != (frame.rows, frame.cols):
        raise DicomReadError(
            f"{frame.path}: pixel array shape {arr.shape} does not match Rows x Columns "
            f"{frame.rows}x{frame.cols} (colour or unsupported multi-frame layout)"
        )
    return arr * np.float32(frame.rescale_slope) + np.float32(frame.rescale_intercept)


def _resample_to_grid(
    frame: DicomFrame, pixels: FloatArray, ref: DicomFrame, origin: npt.NDArray[np.float64]
) -> FloatArray:
    """Resample one image onto the reference in-plane grid (rows x cols of ``ref`` starting at ``origin``)."""
    if frame.pixel_spacing is None or ref.pixel_spacing is None:
        raise DicomReadError(
            f"{frame.path}: image grid differs from the series and PixelSpacing is missing, "
            "so it cannot be resampled"
        )
    dr, dc = ref.pixel_spacing
    fr, fc = frame.pixel_spacing
    rr, cc = np.meshgrid(np.arange(ref.rows), np.arange(ref.cols), indexing="ij")
    world = (
        origin[:, None, None]
        + cc[None] * dc * ref.iop[:3, None, None]
        + rr[None] * dr * ref.iop[3:, None, None]
    )
    rel = world - frame.ipp[:, None, None]
    src_c = np.tensordot(frame.iop[:3], rel, axes=1) / fc
    src_r = np.tensordot(frame.iop[3:], rel, axes=1) / fr
    # header cosines carry ~6 decimals: snap near-integer coordinates so 90-degree rotations are exact
    src_r, src_c = (np.where(np.abs(a - np.round(a)) < 1e-2, np.round(a), a) for a in (src_r, src_c))
    out = ndimage.map_coordinates(pixels, [src_r, src_c], order=1, mode="constant", cval=0.0)
    return np.asarray(out, dtype=np.float32)


def _describe_grid_change(frame: DicomFrame, ref: DicomFrame) -> CurationKind:
    if not np.allclose(frame.iop, ref.iop, atol=1e-3):
        return CurationKind.ROTATED_IMAGE
    if frame.pixel_spacing != ref.pixel_spacing:
        return CurationKind.RESCALED_IMAGE
    return CurationKind.INCONSISTENT_SIZE


def reference_frame(frames: Sequence[DicomFrame]) -> DicomFrame:
    """Pick the frame whose in-plane grid (orientation, matrix, spacing) is the most common one.

    Args:
        frames: the chosen stack.

    Returns:
        The first frame on that grid.

    Example:
        >>> ref = reference_frame(frames)  # doctest: +SKIP

    """
    ref_key = Counter(f.grid_key for f in frames).most_common(1)[0][0]
    return next(f for f in frames if f.grid_key == ref_key)


def assemble_images(
    slices: list[list[DicomFrame]],
    assignment: list[dict[int, DicomFrame]],
    kept_phases: Sequence[int],
    slice_pos: Sequence[float],
    ref: DicomFrame,
    report: CurationReport,
    where: PathLike,
) -> tuple[FloatArray, list[list[str]], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Decode the pixels onto the reference grid as a ``(T, Z, Y, X)`` float32 array (real values).

    The array's size is checked against the memory budget (:func:`~cardiacseg.io.limits.check_allocation`)
    before it is allocated. Images on another grid (rotated, rescaled, another matrix) are resampled
    bilinearly onto the reference grid at their slice position and reported.

    Args:
        slices: frames per slice position.
        assignment: for each slice, ``{phase index: frame}`` (from :func:`align_phases`).
        kept_phases: the phase indices to assemble.
        slice_pos: position of each slice along the normal (mm).
        ref: frame defining the in-plane grid.
        report: curation report.
        where: the input (named in errors).

    Returns:
        ``(image, files, instance_numbers, origin)``: the array, the file of each ``(t, z)`` image, its
        InstanceNumber (frame number for multi-frame files), and the LPS position of voxel (0, 0, 0).

    Raises:
        DicomReadError: undecodable pixels (file named) or an image that cannot be resampled.
        InputTooLargeError: the array would not fit the memory budget.

    Example:
        >>> image, files, inst, origin = assemble_images(...)  # doctest: +SKIP

    """
    shape = (len(kept_phases), len(slices), ref.rows, ref.cols)
    check_allocation(int(np.prod(shape)) * 4, f"cine array {shape} float32", where)
    normal, ref_key = ref.normal, ref.grid_key
    image = np.zeros(shape, dtype=np.float32)
    files: list[list[str]] = [["" for _ in slices] for _ in kept_phases]
    instances = np.zeros(shape[:2], dtype=np.int64)
    regridded: dict[CurationKind, list[str]] = defaultdict(list)
    origin0 = ref.ipp
    for k, s in enumerate(slices):
        on_ref = [f for f in s if f.grid_key == ref_key]
        if on_ref:
            origin = on_ref[0].ipp
        else:
            anchor = next(f for sl in slices for f in sl if f.grid_key == ref_key)
            origin = anchor.ipp + (slice_pos[k] - float(np.dot(anchor.ipp, normal))) * normal
        if k == 0:
            origin0 = origin
        for t, j in enumerate(kept_phases):
            f = assignment[k][j]
            px = _pixels(f)
            if f.grid_key != ref_key:
                regridded[_describe_grid_change(f, ref)].append(f.path)
                px = _resample_to_grid(f, px, ref, origin)
            image[t, k] = px
            files[t][k] = f.path
            instances[t, k] = f.instance_number
    for kind, paths in regridded.items():
        report.add(
            kind,
            "repaired",
            f"{len(paths)} image(s) with a different orientation/size/spacing were resampled onto the "
            f"series grid ({ref.rows}x{ref.cols}, spacing {ref.pixel_spacing})",
            tuple(paths),
        )
    return image, files, instances, np.asarray(origin0, dtype=np.float64)


def build_affine(
    ref: DicomFrame, spacing_z_mm: float, origin: npt.NDArray[np.float64]
) -> tuple[tuple[float, float, float], Affine] | None:
    """NIfTI-style voxel ``(x, y, z)`` to RAS+ affine from the DICOM geometry (PS3.3 C.7.6.2.1.1).

    Args:
        ref: a frame on the study's in-plane grid (orientation and pixel spacing).
        spacing_z_mm: slice spacing (or, for a single slice, its thickness).
        origin: LPS position (mm) of voxel (0, 0, 0).

    Returns:
        ``(spacing_mm (z, y, x), affine)``, or ``None`` when PixelSpacing is unknown or the z spacing is
        not positive.

    Example:
        >>> build_affine(ref, 10.0, ref.ipp)  # doctest: +SKIP

    """
    if ref.pixel_spacing is None or not spacing_z_mm > 0:
        return None
    dr, dc = ref.pixel_spacing
    lps = np.eye(4)
    lps[:3, 0] = ref.iop[:3] * dc
    lps[:3, 1] = ref.iop[3:] * dr
    lps[:3, 2] = ref.normal * spacing_z_mm
    lps[:3, 3] = origin
    return (spacing_z_mm, dr, dc), np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # DICOM LPS -> NIfTI RAS


@quiet_dicom_validation()
def list_dicom_series(folder: PathLike) -> list[DicomSeriesInfo]:
    """List the image series in a folder.

    Args:
        folder: a folder searched recursively (or a single file).

    Returns:
        One :class:`DicomSeriesInfo` per SeriesInstanceUID, ordered by series number.

    Raises:
        DicomReadError: when a DICOM file is corrupt, or no DICOM image is found.
        FileNotFoundError: when ``folder`` does not exist.

    Example:
        >>> for s in list_dicom_series("study/"):  # doctest: +SKIP
        ...     print(s.series_number, s.description, s.n_positions, s.n_phases)

    """
    frames = parse_dicom_files(list_dicom_files(folder), CurationReport(), folder)
    out = []
    for uid, fs in group_series(frames).items():
        n = fs[0].normal
        out.append(
            DicomSeriesInfo(
                series_uid=uid,
                series_number=fs[0].series_number,
                description=str(fs[0].ds.get("SeriesDescription", "")),
                n_images=len(fs),
                n_positions=len(_positions(fs, n)),
                n_phases=_phases_per_position(fs),
                normal=(float(n[0]), float(n[1]), float(n[2])),
            )
        )
    return out


def _report_mirrored(frames: Sequence[DicomFrame], ref: DicomFrame, report: CurationReport) -> None:
    """Warn about images whose slice normal points against the stack's (one IOP direction reversed)."""
    mirrored = [f.path for f in frames if float(np.dot(f.normal, ref.normal)) < 0]
    if mirrored:
        report.add(
            CurationKind.MIRRORED_IMAGE,
            "warning",
            f"{len(mirrored)} image(s) have an ImageOrientationPatient whose slice normal points against the "
            "stack's (one direction cosine reversed); they were resampled by their headers. If their pixels "
            "are not mirrored accordingly, the header is wrong and so are the volumes: check the montage",
            tuple(dict.fromkeys(mirrored)),
        )


#: Plausible body size; values outside are ignored with a curation warning.
_HEIGHT_RANGE_CM = PLAUSIBLE_HEIGHT_CM
_WEIGHT_RANGE_KG = PLAUSIBLE_WEIGHT_KG
#: Length of one DICOM Age String unit in years (PS3.5 6.2, VR AS: ``nnnD``, ``nnnW``, ``nnnM``, ``nnnY``).
_AGE_UNIT_YEARS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}


def patient_info_from_dicom(ds: Dataset, report: CurationReport | None = None) -> PatientInfo | None:
    """Read height, weight, sex and age from the DICOM Patient Study / Patient modules.

    PatientSize (0010,1020) is in metres and PatientWeight (0010,1030) in kg (PS3.3 C.7.2.2); PatientSex
    (0010,0040) ``M``/``F`` (``O`` is kept as unknown); PatientAge (0010,1010) is an Age String
    (``045Y``). A height or weight outside 40-250 cm / 2-400 kg (e.g. a height written in cm) is ignored
    and said in the curation report, never guessed.

    Args:
        ds: a dataset of the study (any image; these attributes are the same for all).
        report: where implausible values are noted (optional).

    Returns:
        The :class:`PatientInfo`, or ``None`` when none of the values is present.

    Example:
        >>> from pydicom.dataset import Dataset
        >>> ds = Dataset(); ds.PatientSize = "1.80"; ds.PatientWeight = "80"; ds.PatientSex = "M"
        >>> patient_info_from_dicom(ds).height_cm
        180.0

    """

    def number(keyword: str) -> float | None:
        value = ds.get(keyword)
        try:
            out = float(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            out = None
        return out if out is not None and np.isfinite(out) and out > 0 else None

    height_m, weight = number("PatientSize"), number("PatientWeight")
    height = None if height_m is None else round(height_m * 100.0, 3)
    for name, value, (lo, hi), unit, stored in (
        ("PatientSize", height, _HEIGHT_RANGE_CM, "cm", height_m),
        ("PatientWeight", weight, _WEIGHT_RANGE_KG, "kg", weight),
    ):
        if value is not None and not lo <= value <= hi:
            if report is not None:
                report.add(
                    CurationKind.PATIENT_DATA,
                    "warning",
                    f"{name} {stored:g} gives {value:g} {unit}, outside {lo:g}-{hi:g} {unit} (DICOM stores "
                    f"{'metres' if unit == 'cm' else 'kg'}): ignored, so nothing is indexed to body size",
                )
            if name == "PatientSize":
                height = None
            else:
                weight = None
    sex_text = str(ds.get("PatientSex", "") or "").strip().upper()
    sex: Literal["M", "F"] | None = "M" if sex_text == "M" else "F" if sex_text == "F" else None
    age = None
    age_text = str(ds.get("PatientAge", "") or "").strip().upper()
    if len(age_text) == 4 and age_text[:3].isdigit() and age_text[3] in _AGE_UNIT_YEARS:
        age = round(int(age_text[:3]) * _AGE_UNIT_YEARS[age_text[3]], 2)
    info = PatientInfo(height, weight, sex, age, source="DICOM Patient module")
    return info if info.known else None


def _describe_source(where: PathLike, slices: list[list[DicomFrame]], ref: DicomFrame) -> str:
    numbers = sorted({f.series_number for s in slices for f in s})
    desc = str(ref.ds.get("SeriesDescription", "") or "")
    series = f"series {numbers[0]}"
    if len(numbers) > 1:
        series = f"{len(numbers)} series {numbers[0]}-{numbers[-1]}"
    return f"DICOM {where} ({series}{' ' + desc if desc else ''}, patient {ref.patient_id or '?'})"


@quiet_dicom_validation()
def read_dicom_cine(
    folder: PathLike, series_uid: str | None = None, files: Sequence[PathLike] | None = None
) -> CineStudy:
    """Read a short-axis cine study from DICOM files, curating inconsistencies.

    Args:
        folder: folder searched recursively (files in any order; non-DICOM files and other series are
            ignored and reported), or one file (e.g. an Enhanced MR multi-frame file).
        series_uid: read only this SeriesInstanceUID. By default the cine stack is chosen by
            :func:`choose_cine_stack`.
        files: read exactly these files instead of searching ``folder`` (``folder`` is then only named in
            messages); :mod:`cardiacseg.io.discover` passes one study's files this way.

    Returns:
        A :class:`CineStudy` with axes ``(T, Z, Y, X)``, slices sorted by position along the slice
        normal, phases by trigger time, spacing from the image positions, a NIfTI-style RAS affine and a
        curation report. A single slice position keeps its in-plane geometry; its z spacing is the
        SliceThickness (reported as :attr:`CurationKind.SINGLE_SLICE`).

    Raises:
        DicomReadError: a file that cannot be parsed or decoded (named in the message), no DICOM images,
            images without position/orientation, an unknown ``series_uid``, or phases that cannot be
            matched across slices.
        InputTooLargeError: the declared image sizes exceed the memory budget.
        FileNotFoundError: when ``folder`` does not exist.

    Example:
        >>> study = read_dicom_cine("sunnybrook/dicoms/SCD0000101")  # doctest: +SKIP
        >>> study.image.shape, study.spacing_mm  # doctest: +SKIP
        ((20, 12, 256, 256), (10.0, 1.367188, 1.367188))

    """
    report = CurationReport()
    paths = list_dicom_files(folder) if files is None else [str(f) for f in files]
    frames = parse_dicom_files(paths, report, folder)
    if series_uid is not None:
        chosen = [f for f in frames if f.series_uid == series_uid]
        if not chosen:
            uids = sorted({f.series_uid for f in frames})
            raise DicomReadError(f"{folder}: series {series_uid} not found; available: {uids}")
        _report_extra_series([f for f in frames if f.series_uid != series_uid], report)
    else:
        chosen, _others = choose_cine_stack(frames, report)
    ref = reference_frame(chosen)
    _report_mirrored(chosen, ref, report)
    slices, slice_pos = drop_repeats(chosen, ref.normal, report)
    assignment, kept_phases, phase_times = align_phases(slices, slice_pos, report, folder)
    declared = _int_or_zero(ref.ds.get("CardiacNumberOfImages"))
    n_found = max(len(s) for s in slices)
    if declared and declared != n_found and ref.frame_index is None:
        report.add(
            CurationKind.DECLARED_PHASES_MISMATCH,
            "info",
            f"CardiacNumberOfImages says {declared} phases; {n_found} are present",
        )
    spacing_z = check_slice_spacing(slices, slice_pos, report)
    if spacing_z is None:
        spacing_z = ref.slice_thickness_mm
        report.add(
            CurationKind.SINGLE_SLICE,
            "warning",
            "one slice position: volumes, mass and ejection fraction cannot be measured from it"
            + (
                f"; its z extent is the SliceThickness ({spacing_z:g} mm)"
                if spacing_z
                else "; SliceThickness is absent, so the geometry is kept in-plane only"
            ),
        )
    image, source_files, instances, origin = assemble_images(
        slices, assignment, kept_phases, slice_pos, ref, report, folder
    )
    geometry = None if spacing_z is None else build_affine(ref, spacing_z, origin)
    return CineStudy(
        image=image,
        spacing_mm=None if geometry is None else geometry[0],
        affine=None if geometry is None else geometry[1],
        phase_times_ms=phase_times,
        slice_positions_mm=tuple(slice_pos),
        phase_ids=tuple(kept_phases),
        source=_describe_source(folder, slices, ref),
        source_files=tuple(tuple(r) for r in source_files),
        instance_numbers=instances,
        curation=report,
        patient=patient_info_from_dicom(ref.ds, report),
    )
