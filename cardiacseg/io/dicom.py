"""Short-axis cine DICOM reader with curation.

A folder (searched recursively) may hold the cine files in any order, other series, and non-DICOM files.
The reader

1. groups images by series and series into *stacks* of parallel slices (several single-slice series of
   one stack, as in the Kaggle Data Science Bowl layout, are merged);
2. sorts slices by ``ImagePositionPatient`` projected on the slice normal (``SliceLocation`` is only
   cross-checked: in the Sunnybrook files it disagrees with the real slice spacing);
3. sorts phases by ``TriggerTime``;
4. curates what the 7T transfer-learning study lists (missing time points, uneven slice spacing,
   inconsistent image dimension, repeat measurements, scaled images, rotated images): safe repairs are
   made and reported; what cannot be repaired raises :class:`DicomReadError` naming the file.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pydicom.config
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from scipy import ndimage

from cardiacseg.enums import CurationKind
from cardiacseg.io.study import CineStudy, CurationReport
from cardiacseg.typing import FloatArray, PathLike

__all__ = ["DicomReadError", "DicomSeriesInfo", "list_dicom_series", "read_dicom_cine"]

#: Two slice positions closer than this (mm, along the normal) are the same slice location.
POSITION_TOLERANCE_MM = 0.5


class DicomReadError(ValueError):
    """A DICOM input that cannot be read or repaired; the message names the file and the problem."""


@dataclass
class _Frame:
    path: str
    ds: Dataset
    series_uid: str
    series_number: int
    acquisition_number: int
    acquisition_time: str
    instance_number: int
    iop: npt.NDArray[np.float64]
    ipp: npt.NDArray[np.float64]
    pixel_spacing: tuple[float, float] | None
    rows: int
    cols: int
    trigger_ms: float | None
    slice_location: float | None

    @property
    def normal(self) -> npt.NDArray[np.float64]:
        n = np.cross(self.iop[:3], self.iop[3:])
        return np.asarray(n / np.linalg.norm(n), dtype=np.float64)

    @property
    def grid_key(self) -> tuple[object, ...]:
        ps = None if self.pixel_spacing is None else tuple(round(p, 4) for p in self.pixel_spacing)
        return (tuple(np.round(self.iop, 3)), self.rows, self.cols, ps)


@dataclass(frozen=True)
class DicomSeriesInfo:
    """Summary of one DICOM series found in a folder.

    Attributes:
        series_uid: SeriesInstanceUID.
        series_number: SeriesNumber (0 when absent).
        description: SeriesDescription.
        n_images: number of image files.
        n_positions: number of distinct slice positions.
        n_phases: largest number of images at one position.
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
def _quiet_validation() -> Iterator[None]:
    """Do not warn about invalid element values (e.g. non-conformant UIDs) while reading; restore after."""
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
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _parse(path: str) -> _Frame | None:
    """Read one file. Returns ``None`` for non-DICOM files and DICOM objects that are not images."""
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        return None
    except Exception as exc:  # truncated or corrupt file: pydicom raises many types
        raise DicomReadError(f"{path}: DICOM file cannot be parsed ({type(exc).__name__}: {exc})") from exc
    if "PixelData" not in ds or "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
        return None
    try:
        ps = ds.get("PixelSpacing")
        pixel_spacing = None if ps is None else (float(ps[0]), float(ps[1]))
        return _Frame(
            path=path,
            ds=ds,
            series_uid=str(ds.get("SeriesInstanceUID", "")),
            series_number=int(ds.get("SeriesNumber") or 0),
            acquisition_number=int(ds.get("AcquisitionNumber") or 0),
            acquisition_time=str(ds.get("AcquisitionTime", "") or ""),
            instance_number=int(ds.get("InstanceNumber") or 0),
            iop=np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=np.float64),
            ipp=np.asarray([float(v) for v in ds.ImagePositionPatient], dtype=np.float64),
            pixel_spacing=pixel_spacing,
            rows=int(ds.Rows),
            cols=int(ds.Columns),
            trigger_ms=_float_or_none(ds.get("TriggerTime")),
            slice_location=_float_or_none(ds.get("SliceLocation")),
        )
    except (AttributeError, TypeError, ValueError, IndexError) as exc:
        raise DicomReadError(f"{path}: malformed geometry attributes ({exc})") from exc


def _scan(folder: PathLike, report: CurationReport) -> list[_Frame]:
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    paths = (
        [str(root)]
        if root.is_file()
        else sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files)
    )
    frames: list[_Frame] = []
    ignored: list[str] = []
    for p in paths:
        fr = _parse(p)
        if fr is None:
            ignored.append(p)
        else:
            frames.append(fr)
    if ignored:
        report.add(
            CurationKind.IGNORED_FILE,
            "info",
            f"{len(ignored)} file(s) are not DICOM images and were ignored",
            tuple(ignored),
        )
    if not frames:
        raise DicomReadError(f"{root}: no DICOM images found ({len(ignored)} other file(s))")
    return frames


def _cluster_positions(pos: npt.NDArray[np.float64]) -> list[list[int]]:
    order = np.argsort(pos, kind="stable")
    clusters: list[list[int]] = []
    for i in order:
        if clusters and pos[i] - pos[clusters[-1][-1]] <= POSITION_TOLERANCE_MM:
            clusters[-1].append(int(i))
        else:
            clusters.append([int(i)])
    return clusters


def _group_stacks(frames: list[_Frame]) -> list[list[_Frame]]:
    """Group series into stacks of parallel slices of one patient.

    FrameOfReferenceUID is not used: anonymised data (e.g. Sunnybrook) carry a different one per image.
    """
    by_series: dict[str, list[_Frame]] = defaultdict(list)
    for f in frames:
        by_series[f.series_uid].append(f)
    stacks: list[tuple[npt.NDArray[np.float64], str, list[_Frame]]] = []  # (normal, patient, frames)
    for series in sorted(by_series.values(), key=lambda s: (s[0].series_number, s[0].series_uid)):
        n, ref = series[0].normal, str(series[0].ds.get("PatientID", ""))
        for sn, sref, members in stacks:
            if sref == ref and abs(float(np.dot(sn, n))) > 0.99:
                members.extend(series)
                break
        else:
            stacks.append((n, ref, list(series)))
    return [s[2] for s in stacks]


@_quiet_validation()
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
    frames = _scan(folder, CurationReport())
    by_series: dict[str, list[_Frame]] = defaultdict(list)
    for f in frames:
        by_series[f.series_uid].append(f)
    out = []
    for uid, fs in by_series.items():
        n = fs[0].normal
        clusters = _cluster_positions(np.asarray([np.dot(f.ipp, n) for f in fs]))
        out.append(
            DicomSeriesInfo(
                series_uid=uid,
                series_number=fs[0].series_number,
                description=str(fs[0].ds.get("SeriesDescription", "")),
                n_images=len(fs),
                n_positions=len(clusters),
                n_phases=max(len(c) for c in clusters),
                normal=(float(n[0]), float(n[1]), float(n[2])),
            )
        )
    return sorted(out, key=lambda s: (s.series_number, s.series_uid))


def _pixels(frame: _Frame) -> FloatArray:
    try:
        arr = np.asarray(frame.ds.pixel_array, dtype=np.float32)
    except Exception as exc:
        raise DicomReadError(
            f"{frame.path}: pixel data cannot be decoded ({type(exc).__name__}: {exc})"
        ) from exc
    if arr.shape != (frame.rows, frame.cols):
        raise DicomReadError(
            f"{frame.path}: pixel array shape {arr.shape} does not match Rows x Columns "
            f"{frame.rows}x{frame.cols} (multi-frame files are not supported)"
        )
    slope = _float_or_none(frame.ds.get("RescaleSlope")) or 1.0
    intercept = _float_or_none(frame.ds.get("RescaleIntercept")) or 0.0
    return arr * np.float32(slope) + np.float32(intercept)


def _later(a: list[_Frame]) -> tuple[str, int, int]:
    """Sort key: which of two repeated acquisitions is the later one."""
    return (
        max(f.acquisition_time for f in a),
        max(f.series_number for f in a),
        max(f.instance_number for f in a),
    )


def _split_acquisitions(frames: list[_Frame]) -> list[list[_Frame]]:
    """Split the frames at one slice position into acquisitions (repeats)."""
    by_series: dict[str, list[_Frame]] = defaultdict(list)
    for f in frames:
        by_series[f.series_uid].append(f)
    acquisitions: list[list[_Frame]] = []
    for fs in by_series.values():
        triggers = [f.trigger_ms for f in fs]
        duplicated = len(set(triggers)) < len(triggers)
        if duplicated and len({f.acquisition_number for f in fs}) > 1:
            by_acq: dict[int, list[_Frame]] = defaultdict(list)
            for f in fs:
                by_acq[f.acquisition_number].append(f)
            acquisitions.extend(by_acq.values())
        else:
            acquisitions.append(fs)
    return acquisitions


def _resample_to_grid(
    frame: _Frame, pixels: FloatArray, ref: _Frame, origin: npt.NDArray[np.float64]
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


def _describe_grid_change(frame: _Frame, ref: _Frame) -> CurationKind:
    if not np.allclose(frame.iop, ref.iop, atol=1e-3):
        return CurationKind.ROTATED_IMAGE
    if frame.pixel_spacing != ref.pixel_spacing:
        return CurationKind.RESCALED_IMAGE
    return CurationKind.INCONSISTENT_SIZE


@_quiet_validation()
def read_dicom_cine(folder: PathLike, series_uid: str | None = None) -> CineStudy:
    """Read a short-axis cine study from a folder of DICOM files, curating inconsistencies.

    Args:
        folder: folder searched recursively (files in any order; non-DICOM files and other series are
            ignored and reported).
        series_uid: read only this SeriesInstanceUID. By default the stack of parallel slices with the
            most slice positions is read (several series of one stack are merged).

    Returns:
        A :class:`CineStudy` with axes ``(T, Z, Y, X)``, slices sorted by position along the slice
        normal, phases by trigger time, spacing from the image positions, a NIfTI-style RAS affine and a
        curation report.

    Raises:
        DicomReadError: a file that cannot be parsed or decoded (named in the message), no DICOM images,
            an unknown ``series_uid``, or phases that cannot be matched across slices.
        FileNotFoundError: when ``folder`` does not exist.

    Example:
        >>> study = read_dicom_cine("sunnybrook/dicoms/SCD0000101")  # doctest: +SKIP
        >>> study.image.shape, study.spacing_mm  # doctest: +SKIP
        ((20, 12, 256, 256), (10.0, 1.367188, 1.367188))

    """
    report = CurationReport()
    frames = _scan(folder, report)
    if series_uid is not None:
        chosen = [f for f in frames if f.series_uid == series_uid]
        if not chosen:
            uids = sorted({f.series_uid for f in frames})
            raise DicomReadError(f"{folder}: series {series_uid} not found; available: {uids}")
        others = [f for f in frames if f.series_uid != series_uid]
    else:
        stacks = _group_stacks(frames)
        positions = [
            len(_cluster_positions(np.asarray([np.dot(f.ipp, s[0].normal) for f in s]))) for s in stacks
        ]
        best = max(range(len(stacks)), key=lambda i: (positions[i], len(stacks[i])))
        chosen = stacks[best]
        others = [f for i, s in enumerate(stacks) if i != best for f in s]
    if others:
        by_uid = Counter(f.series_uid for f in others)
        desc = "; ".join(f"{uid} ({n} images)" for uid, n in by_uid.items())
        report.add(
            CurationKind.EXTRA_SERIES,
            "info",
            f"{len(by_uid)} other series not read (pass series_uid to choose): {desc}",
            tuple(f.path for f in others),
        )

    # Reference in-plane grid: the most common orientation/size/spacing.
    grid_counts = Counter(f.grid_key for f in chosen)
    ref_key = grid_counts.most_common(1)[0][0]
    ref = next(f for f in chosen if f.grid_key == ref_key)
    normal = ref.normal
    pos = np.asarray([np.dot(f.ipp, normal) for f in chosen])

    # Slice locations, repeats.
    slices: list[list[_Frame]] = []
    slice_pos: list[float] = []
    for cluster in _cluster_positions(pos):
        acquisitions = _split_acquisitions([chosen[i] for i in cluster])
        if len(acquisitions) > 1:
            acquisitions.sort(key=_later)
            kept, dropped = acquisitions[-1], [f for a in acquisitions[:-1] for f in a]
            report.add(
                CurationKind.REPEATED_SLICE,
                "repaired",
                f"slice at {np.mean([pos[i] for i in cluster]):.2f} mm was acquired "
                f"{len(acquisitions)} times; kept the later acquisition "
                f"(series {kept[0].series_number}), dropped {len(dropped)} image(s)",
                tuple(f.path for f in dropped),
            )
        else:
            kept = acquisitions[0]
        kept.sort(
            key=lambda f: (
                f.trigger_ms if f.trigger_ms is not None else float(f.instance_number),
                f.instance_number,
            )
        )
        triggers = [f.trigger_ms for f in kept]
        if None not in triggers and len(set(triggers)) < len(triggers):
            raise DicomReadError(
                f"{kept[0].path}: slice at {pos[cluster[0]]:.2f} mm has repeated trigger times "
                "that cannot be separated into acquisitions"
            )
        slices.append(kept)
        slice_pos.append(float(np.mean([np.dot(f.ipp, normal) for f in kept])))

    # Phases: match every slice to a reference timeline.
    n_phases = max(len(s) for s in slices)
    full = [s for s in slices if len(s) == n_phases]
    missing: set[int] = set()
    assignment: list[dict[int, _Frame]] = []
    timed = all(f.trigger_ms is not None for s in slices for f in s)
    ref_times = np.mean([[f.trigger_ms or 0.0 for f in s] for s in full], axis=0) if timed else None
    for k, s in enumerate(slices):
        if len(s) == n_phases:
            assignment.append(dict(enumerate(s)))
            continue
        if ref_times is None:
            raise DicomReadError(
                f"{s[0].path}: slice {k} has {len(s)} of {n_phases} phases and no TriggerTime "
                "to tell which are missing"
            )
        assigned: dict[int, _Frame] = {}
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
    kept_phases = [j for j in range(n_phases) if j not in missing]
    if not kept_phases:
        raise DicomReadError(f"{folder}: no phase is present in every slice")

    declared = ref.ds.get("CardiacNumberOfImages")
    if declared is not None and int(declared) != n_phases:
        report.add(
            CurationKind.DECLARED_PHASES_MISMATCH,
            "info",
            f"CardiacNumberOfImages says {int(declared)} phases; {n_phases} are present",
        )

    # Slice spacing.
    steps = np.diff(slice_pos)
    spacing_z: float | None = None
    if len(steps):
        spacing_z = float(np.median(steps))
        for k, st in enumerate(steps):
            ratio = st / spacing_z
            if abs(ratio - round(ratio)) < 0.2 and round(ratio) >= 2:
                report.add(
                    CurationKind.MISSING_SLICE,
                    "warning",
                    f"gap of {st:.2f} mm between slice {k} ({slice_pos[k]:.2f} mm) and slice {k + 1} "
                    f"({slice_pos[k + 1]:.2f} mm): {round(ratio) - 1} slice(s) missing at spacing "
                    f"{spacing_z:.2f} mm; volumes use the regular spacing and undercount the gap",
                    (slices[k][0].path, slices[k + 1][0].path),
                )
            elif abs(st - spacing_z) > max(0.5, 0.1 * spacing_z):
                report.add(
                    CurationKind.UNEVEN_SLICE_SPACING,
                    "warning",
                    f"spacing {st:.2f} mm between slice {k} and {k + 1} differs from the median "
                    f"{spacing_z:.2f} mm",
                    (slices[k][0].path, slices[k + 1][0].path),
                )
        locs = [s[0].slice_location for s in slices]
        if None not in locs:
            loc_steps = np.abs(np.diff(np.asarray(locs, dtype=np.float64)))
            if np.any(np.abs(loc_steps - np.abs(steps)) > 0.5):
                report.add(
                    CurationKind.SLICE_LOCATION_MISMATCH,
                    "info",
                    f"SliceLocation steps ({np.median(loc_steps):.2f} mm) disagree with "
                    f"ImagePositionPatient spacing ({spacing_z:.2f} mm); the latter is used",
                )

    # Pixels on the reference grid.
    ref_origin0 = None
    image = np.zeros((len(kept_phases), len(slices), ref.rows, ref.cols), dtype=np.float32)
    files: list[list[str]] = [["" for _ in slices] for _ in kept_phases]
    instances = np.zeros((len(kept_phases), len(slices)), dtype=np.int64)
    regridded: dict[CurationKind, list[str]] = defaultdict(list)
    for k, s in enumerate(slices):
        on_ref = [f for f in s if f.grid_key == ref_key]
        if on_ref:
            origin = on_ref[0].ipp
        else:
            anchor = next(f for sl in slices for f in sl if f.grid_key == ref_key)
            origin = anchor.ipp + (slice_pos[k] - float(np.dot(anchor.ipp, normal))) * normal
        if k == 0:
            ref_origin0 = origin
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

    spacing_mm = None
    affine = None
    if ref.pixel_spacing is not None and spacing_z is not None and spacing_z > 0 and ref_origin0 is not None:
        dr, dc = ref.pixel_spacing
        spacing_mm = (spacing_z, dr, dc)
        lps = np.eye(4)
        lps[:3, 0] = ref.iop[:3] * dc
        lps[:3, 1] = ref.iop[3:] * dr
        lps[:3, 2] = normal * spacing_z
        lps[:3, 3] = ref_origin0
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # DICOM LPS -> NIfTI RAS
    phase_times = None
    if timed:
        phase_times = tuple(
            float(np.mean([assignment[k][j].trigger_ms or 0.0 for k in range(len(slices))]))
            for j in kept_phases
        )
    desc = str(ref.ds.get("SeriesDescription", "") or "")
    return CineStudy(
        image=image,
        spacing_mm=spacing_mm,
        affine=affine,
        phase_times_ms=phase_times,
        slice_positions_mm=tuple(slice_pos),
        phase_ids=tuple(kept_phases),
        source=f"DICOM {folder} (series {ref.series_number} {desc}, patient {ref.ds.get('PatientID', '?')})",
        source_files=tuple(tuple(r) for r in files),
        instance_numbers=instances,
        curation=report,
    )
