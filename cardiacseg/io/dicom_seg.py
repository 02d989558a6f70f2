"""DICOM Segmentation objects of cardiacseg's labels, tied to the source cine images (highdicom).

One SEG instance per segmented cardiac phase, all in one new series of the source study: highdicom's
:class:`~highdicom.seg.Segmentation` (DICOM PS3.3 A.51) encodes frames by spatial position, and the phases
of a cine share their positions, so one multi-phase object is not expressible; a viewer shows the series
as one segmentation per phase. Each instance has three segments (BINARY), with codes from SNOMED CT:

=====  ====================  ===============================  ==================================
 no.   label                 category / type                  anatomic region
=====  ====================  ===============================  ==================================
 1     LV blood pool         Tissue / Blood                   Left ventricle (SCT 87878005)
 2     LV myocardium         Anatomical Structure / Left      --
                             Ventricle Myocardium (49848007)
 3     RV blood pool         Tissue / Blood                   Right ventricle (SCT 53085002)
=====  ====================  ===============================  ==================================

Each frame references its source image (SOP Instance UID, and Referenced Frame Number for a multi-frame
source) in its Derivation Image Sequence; frames without any label are omitted. Three source layouts:

* **One series of single-frame images** (the classic export): highdicom infers every frame's position
  and source image from the images of the phase.
* **One series per slice position** (each slice stored as its own series, e.g. Siemens/Kaggle ``sax_<k>``):
  highdicom's constructor takes its spatial ``source_images`` from one series only, but the standard does
  not restrict a SEG to one source series (the Common Instance Reference module lists 1-n series, and
  highdicom's ``further_source_images`` exists for this case). The SEG of a phase therefore stays ONE
  instance over all slices, which keeps one SEG per phase for viewers and lets the SR's volume reference
  one segment of one instance (TID 1411). It is built from the first slice's image as ``source_images``, the
  other slices' images as ``further_source_images`` and the frame geometry (position of each slice,
  orientation, pixel spacing) taken from the source headers; each frame's Derivation Image Sequence is
  then set to its own source image, and the Referenced Series Sequence lists every slice's series with
  its image.
* **An Enhanced MR multi-frame file** (the whole cine in one file): built the same way from the file's
  header with the positions of the phase's frames; each SEG frame's Derivation Image Sequence references
  the file with the Referenced Frame Number of its ``(t, z)`` frame (the study's ``instance_numbers`` hold
  the frame numbers of a multi-frame source; they are checked against the frame's position from
  :func:`~cardiacseg.io.dicom_enhanced.enhanced_frame_geometry`), and the top-level Source Image Sequence
  names the phase's frames (PS3.3 C.12.4: Referenced Frame Number when not all frames are used).

Source headers are read without their pixels and never modified: the in-memory copies handed to
highdicom drop date/time values that are not valid DICOM (anonymised exports hold e.g. ``00000000``) and,
when the images of one phase carry different Frame of Reference UIDs (seen in anonymised exports such as
Sunnybrook's, one per image), use the first one; an Enhanced file whose orientation and pixel measures
sit in the per-frame functional groups (all equal) gets them in the shared group of the copy, where
highdicom reads them. :class:`DicomSegResult` says what was adapted. Not supported (refused with a
message): classic multi-frame files (NumberOfFrames > 1 without functional groups) and studies whose
images the reader resampled onto another grid (a SEG frame must lie on its source image's grid).

Needs the optional dependency highdicom (``pip install "cardiacseg[dicom]"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardiacseg.enums import CardiacLabel
from cardiacseg.io.dicom_enhanced import (
    FrameGeometry,
    enhanced_frame_geometry,
    is_classic_multiframe,
    is_enhanced_multiframe,
)
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import LabelArray, PathLike
from cardiacseg.utils.atomic import atomic_path

__all__ = [
    "SEGMENT_LABELS",
    "DicomSegResult",
    "SourceFrame",
    "require_highdicom",
    "sanitized_source",
    "segment_frames",
    "source_frames",
    "write_dicom_seg",
]

#: Segment number (= cardiacseg label value) -> segment label.
SEGMENT_LABELS: dict[int, str] = {
    int(CardiacLabel.LV): "LV blood pool",
    int(CardiacLabel.MYO): "LV myocardium",
    int(CardiacLabel.RV): "RV blood pool",
}


@dataclass
class DicomSegResult:
    """What :func:`write_dicom_seg` wrote.

    Attributes:
        files: phase index -> the SEG file.
        sop_instance_uids: phase index -> its SOP Instance UID.
        series_instance_uid: the SEG series.
        notes: what was adapted in the copies of the source headers, in words.

    """

    files: dict[int, Path] = field(default_factory=dict)
    sop_instance_uids: dict[int, str] = field(default_factory=dict)
    series_instance_uid: str = ""
    notes: list[str] = field(default_factory=list)


def require_highdicom() -> Any:
    """Import highdicom, or explain how to install it.

    Returns:
        The ``highdicom`` module.

    Raises:
        ValueError: highdicom is not installed (the message gives the install command).

    """
    try:
        import highdicom
    except ImportError as exc:
        raise ValueError(
            'DICOM SEG/SR output needs highdicom: pip install "cardiacseg[dicom]" (or pip install highdicom)'
        ) from exc
    return highdicom


def sanitized_source(path: PathLike) -> Any:
    """Read the header of a source image (no pixel data) with invalid DA/TM/DT values emptied.

    Args:
        path: a DICOM image file.

    Returns:
        A ``pydicom.Dataset``; the file is not modified.

    Example:
        >>> ds = sanitized_source("dicoms/SCD0000101/1.dcm")  # doctest: +SKIP

    """
    import pydicom
    from pydicom.valuerep import DA, DT, TM

    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    parsers = {"DA": DA, "TM": TM, "DT": DT}
    for element in ds:
        if element.VR in parsers and element.value not in (None, ""):
            try:
                parsers[element.VR](element.value)
            except (ValueError, TypeError):
                element.value = ""
    return ds


@dataclass(frozen=True)
class SourceFrame:
    """The source image of one ``(t, z)`` image of a study, as a DICOM SEG or SR references it.

    Attributes:
        path: the file.
        sop_class_uid: its SOP Class UID.
        sop_instance_uid: its SOP Instance UID.
        series_instance_uid: its Series Instance UID (differs between slices in a one-series-per-slice
            export).
        frame_number: 1-based frame of a multi-frame file (Referenced Frame Number); ``None`` for a
            single-frame image.

    """

    path: str
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    frame_number: int | None = None


class _Sources:
    """Source headers of a study, read once per file (sanitised copies, no pixels)."""

    def __init__(self, study: CineStudy) -> None:
        if study.source_files is None:
            raise ValueError(
                f"{study.source}: no source DICOM images (read from NIfTI or HDF5): a DICOM SEG needs the "
                "DICOM images it segments"
            )
        self.study = study
        self.files: list[list[str]] = [list(row) for row in study.source_files]
        self._headers: dict[str, Any] = {}
        self._geometry: dict[str, list[FrameGeometry]] = {}

    def header(self, path: str) -> Any:
        if path not in self._headers:
            ds = sanitized_source(path)
            if is_classic_multiframe(ds):
                raise ValueError(
                    f"{path}: a classic multi-frame image (NumberOfFrames {ds.get('NumberOfFrames')} "
                    "without functional groups); DICOM SEG output supports single-frame images and Enhanced "
                    "MR multi-frame files"
                )
            self._headers[path] = ds
        return self._headers[path]

    def multiframe(self, path: str) -> bool:
        return bool(is_enhanced_multiframe(self.header(path)))

    def geometry(self, path: str) -> list[FrameGeometry]:
        if path not in self._geometry:
            self._geometry[path] = enhanced_frame_geometry(self.header(path), path)
        return self._geometry[path]

    def frame_number(self, t: int, z: int) -> int | None:
        """1-based frame of image ``(t, z)`` in its multi-frame file (checked), or None (single-frame)."""
        path = self.files[t][z]
        if not self.multiframe(path):
            return None
        numbers = self.study.instance_numbers
        if numbers is None:
            raise ValueError(
                f"{path}: a multi-frame source, but the study has no frame numbers (instance_numbers); "
                "read it with cardiacseg.io.read_study"
            )
        n = int(numbers[t, z])
        frames = self.geometry(path)
        if not 1 <= n <= len(frames):
            raise ValueError(f"{path}: image (t={t}, z={z}) names frame {n}; the file has {len(frames)}")
        positions = self.study.slice_positions_mm
        if positions is not None:
            g = frames[n - 1]
            iop = np.asarray(g.iop, dtype=np.float64)
            normal = np.cross(iop[:3], iop[3:])
            at = float(np.dot(np.asarray(g.ipp), normal / np.linalg.norm(normal)))
            if abs(at - positions[z]) > 0.1:
                raise ValueError(
                    f"{path}: frame {n} lies at {at:.2f} mm along the slice normal, but slice {z} of the "
                    f"study at {positions[z]:.2f} mm: the study's frame numbers do not match the file"
                )
        return n

    def frames(self, t: int) -> list[SourceFrame]:
        out = []
        for z, path in enumerate(self.files[t]):
            ds = self.header(path)
            out.append(
                SourceFrame(
                    path=path,
                    sop_class_uid=str(ds.SOPClassUID),
                    sop_instance_uid=str(ds.SOPInstanceUID),
                    series_instance_uid=str(ds.SeriesInstanceUID),
                    frame_number=self.frame_number(t, z),
                )
            )
        return out

    def plane(self, t: int, z: int) -> tuple[Any, Any, Any, tuple[int, int]]:
        """Geometry of image ``(t, z)``: ``(IPP, IOP, (PixelSpacing, SliceThickness), (rows, cols))``."""
        path = self.files[t][z]
        ds = self.header(path)
        shape = (int(ds.Rows), int(ds.Columns))
        n = self.frame_number(t, z)
        if n is None:
            thickness = ds.get("SliceThickness")
            return (
                [float(v) for v in ds.ImagePositionPatient],
                [float(v) for v in ds.ImageOrientationPatient],
                (
                    [float(v) for v in ds.PixelSpacing],
                    None if thickness in (None, "") else float(thickness),
                ),
                shape,
            )
        g = self.geometry(path)[n - 1]
        if g.pixel_spacing is None:
            raise ValueError(f"{path}: frame {n} has no PixelSpacing (neither per-frame nor shared)")
        return list(g.ipp), list(g.iop), (list(g.pixel_spacing), g.slice_thickness), shape


def source_frames(study: CineStudy, phases: Sequence[int] | None = None) -> dict[int, list[SourceFrame]]:
    """Find the source image (and frame) of every ``(t, z)`` image of a study read from DICOM.

    Args:
        study: a study read from DICOM (``source_files`` set; for a multi-frame source also
            ``instance_numbers``, which hold the 1-based frame numbers).
        phases: the phases (indices into ``T``) wanted; default all.

    Returns:
        ``{t: [SourceFrame of slice z for z in 0..Z-1]}``: the SOP Instance UID, series and (for a
        multi-frame file) frame number each SEG frame of phase ``t`` references.

    Raises:
        ValueError: no source DICOM images, a classic multi-frame source (not supported), or frame
            numbers that do not match the multi-frame file (the message names the file).

    Example:
        >>> frames = source_frames(read_study("enhanced/"), [0])  # doctest: +SKIP
        >>> frames[0][3].frame_number  # doctest: +SKIP
        61

    """
    sources = _Sources(study)
    return {t: sources.frames(t) for t in (range(study.n_phases) if phases is None else phases)}


def _segment_descriptions(hd: Any, algorithm_name: str, algorithm_version: str) -> list[Any]:
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name, version=algorithm_version, family=codes.cid7162.ArtificialIntelligence
    )
    common = {
        "algorithm_type": hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        "algorithm_identification": algorithm,
    }
    # label value -> (category, type, anatomic region or None): the table of the module docstring
    coding = {
        CardiacLabel.LV: (codes.SCT.Tissue, codes.SCT.Blood, codes.SCT.LeftVentricle),
        CardiacLabel.MYO: (codes.SCT.AnatomicalStructure, codes.SCT.LeftVentricleMyocardium, None),
        CardiacLabel.RV: (codes.SCT.Tissue, codes.SCT.Blood, codes.SCT.RightVentricle),
    }
    return [
        hd.seg.SegmentDescription(
            segment_number=int(label),
            segment_label=SEGMENT_LABELS[int(label)],
            segmented_property_category=category,
            segmented_property_type=kind,
            anatomic_regions=None if region is None else [region],
            **common,
        )
        for label, (category, kind, region) in coding.items()
    ]


def write_dicom_seg(
    study: CineStudy,
    labels: Mapping[int, LabelArray],
    out_dir: PathLike,
    algorithm_name: str,
    algorithm_version: str,
    roles: Mapping[int, str] | None = None,
    overwrite: bool = False,
    series_number: int = 9900,
) -> DicomSegResult:
    """Write one DICOM SEG instance per labelled phase, referencing the study's source DICOM images.

    The source may be one series of single-frame images, one series per slice position, or one Enhanced MR
    multi-frame file (see the module docstring for how each is referenced).

    Args:
        study: a study read from DICOM (``source_files`` set; ``instance_numbers`` for a multi-frame source).
        labels: phase index -> ``(Z, Y, X)`` label map on the study's grid (0 BG, 1 LV, 2 MYO, 3 RV).
        out_dir: folder for the files ``seg_t<NN>[_ED|_ES].dcm`` (created).
        algorithm_name: Algorithm Name of the segments (e.g. ``"cardiacseg Cardiac cine segmentation"``).
        algorithm_version: Algorithm Version (e.g. package, bundle version and weights hash).
        roles: phase index -> ``"ED"``/``"ES"``, added to file names and content descriptions.
        overwrite: replace existing files.
        series_number: Series Number of the new SEG series.

    Returns:
        The :class:`DicomSegResult`.

    Raises:
        ValueError: the study has no source DICOM images (e.g. read from NIfTI), a source is a classic
            multi-frame file (NumberOfFrames > 1 without functional groups), the images of a phase are not on
            one grid (orientation, pixel spacing or matrix differ: the reader resampled them), a
            multi-frame file's frame numbers do not match the study, a label map does not match the grid, or
            highdicom is missing; messages name the file.
        FileExistsError: a SEG file exists and ``overwrite`` is False.

    Example:
        >>> result = write_dicom_seg(study, labels, "out/dicom_seg", "cardiacseg", "0.1.0")  # doctest: +SKIP
        >>> result.files[0].name  # doctest: +SKIP
        'seg_t00.dcm'

    """
    sources = _Sources(study)
    hd = require_highdicom()
    out = Path(out_dir)
    roles = roles or {}
    targets = {t: out / f"seg_t{t:02d}{'_' + roles[t] if roles.get(t) else ''}.dcm" for t in sorted(labels)}
    for target in targets.values():
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite to replace it")
    descriptions = _segment_descriptions(hd, algorithm_name, algorithm_version)
    result = DicomSegResult(series_instance_uid=str(hd.UID()))
    for t, target in targets.items():
        label = np.asarray(labels[t])
        if label.shape != study.image.shape[1:]:
            raise ValueError(
                f"label map of phase {t} has shape {label.shape}, the study {study.image.shape[1:]}"
            )
        frames = sources.frames(t)
        paths = list(dict.fromkeys(f.path for f in frames))  # distinct files, slice order
        headers = [sources.header(p) for p in paths]
        _same_frame_of_reference(headers, result.notes)
        role = roles.get(t, "")
        sop_uid = hd.UID()
        common: dict[str, Any] = {
            "pixel_array": label.astype(np.uint8),
            "segmentation_type": hd.seg.SegmentationTypeValues.BINARY,
            "segment_descriptions": descriptions,
            "series_instance_uid": result.series_instance_uid,
            "series_number": series_number,
            "sop_instance_uid": sop_uid,
            "instance_number": t + 1,
            "manufacturer": "cardiacseg",
            "manufacturer_model_name": algorithm_name[:64],
            "software_versions": algorithm_version[:64],
            "device_serial_number": "0",
            "content_label": "CARDIACSEG",
            "content_description": f"LV, MYO, RV; cardiac phase {t}{' (' + role + ')' if role else ''}"[:64],
            "series_description": "cardiacseg LV/MYO/RV segmentation",
            "omit_empty_frames": True,
        }
        single_series = len({f.series_instance_uid for f in frames}) == 1
        if single_series and len(paths) == len(frames) and all(f.frame_number is None for f in frames):
            seg = hd.seg.Segmentation(source_images=headers, **common)  # highdicom infers everything
        else:
            seg = _segmentation_with_explicit_references(
                hd, sources, t, frames, headers, common, result.notes
            )
        with atomic_path(target, overwrite=overwrite) as tmp:
            seg.save_as(tmp)
        result.files[t] = target
        result.sop_instance_uids[t] = str(sop_uid)
    return result


def _add_note(notes: list[str], note: str) -> None:
    if note not in notes:
        notes.append(note)


def _same_frame_of_reference(headers: Sequence[Any], notes: list[str]) -> None:
    """Give the in-memory copies of one phase's headers the first one's Frame of Reference UID."""
    frames_of_reference = {str(ds.get("FrameOfReferenceUID", "")) for ds in headers}
    if len(frames_of_reference) > 1:
        for ds in headers:
            ds.FrameOfReferenceUID = headers[0].FrameOfReferenceUID
        _add_note(
            notes,
            f"the source images carry {len(frames_of_reference)} different Frame of Reference UIDs "
            "(an anonymisation artefact); the SEG uses the first slice's",
        )


def _shared_group_copy(ds: Any, geometry: Sequence[FrameGeometry], path: str, notes: list[str]) -> None:
    """Put equal per-frame orientation / pixel measures of an Enhanced header copy into its shared group."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    if not ds.get("SharedFunctionalGroupsSequence"):
        ds.SharedFunctionalGroupsSequence = DicomSequence([Dataset()])
    shared = ds.SharedFunctionalGroupsSequence[0]
    moved = []
    if "PlaneOrientationSequence" not in shared:
        if not np.allclose([g.iop for g in geometry], geometry[0].iop, atol=1e-4):
            raise ValueError(
                f"{path}: the frames have different ImageOrientationPatient; a DICOM SEG of them needs one"
            )
        item = Dataset()
        item.ImageOrientationPatient = list(geometry[0].iop)
        shared.PlaneOrientationSequence = DicomSequence([item])
        moved.append("orientation")
    if "PixelMeasuresSequence" not in shared:
        spacing = [g.pixel_spacing for g in geometry if g.pixel_spacing is not None]
        if (
            len(spacing) < len(geometry)
            or not np.allclose(spacing, spacing[0], rtol=1e-4)
            or len({g.slice_thickness for g in geometry}) > 1
        ):
            raise ValueError(f"{path}: the frames have different or no PixelSpacing/SliceThickness")
        item = Dataset()
        item.PixelSpacing = list(spacing[0])
        if geometry[0].slice_thickness is not None:
            item.SliceThickness = geometry[0].slice_thickness
        shared.PixelMeasuresSequence = DicomSequence([item])
        moved.append("pixel measures")
    if moved:
        _add_note(
            notes,
            f"{path}: the per-frame {' and '.join(moved)} (equal in every frame) were put in the shared "
            "functional group of the copy handed to highdicom",
        )


def _segmentation_with_explicit_references(
    hd: Any,
    sources: _Sources,
    t: int,
    frames: Sequence[SourceFrame],
    headers: Sequence[Any],
    common: dict[str, Any],
    notes: list[str],
) -> Any:
    """SEG of phase ``t`` whose sources span several series or one multi-frame file.

    highdicom gets the frame geometry from the source headers (positions, orientation, pixel measures),
    the first file as ``source_images`` and the others as ``further_source_images`` (so the top-level
    Source Image Sequence and the Referenced Series Sequence list every source image with its series);
    each frame's Derivation Image Sequence is then set to exactly its own source image (and frame).
    """
    planes = [sources.plane(t, z) for z in range(len(frames))]
    _, iop0, (spacing0, thickness0), _ = planes[0]
    expected = tuple(int(n) for n in common["pixel_array"].shape[1:])
    for z, (_, iop, (spacing, _), shape) in enumerate(planes):
        where = frames[z].path + (f" frame {frames[z].frame_number}" if frames[z].frame_number else "")
        if shape != expected:
            raise ValueError(f"{where}: {shape[0]}x{shape[1]} pixels, the study's grid {expected}")
        if not (np.allclose(iop, iop0, atol=1e-4) and np.allclose(spacing, spacing0, rtol=1e-4)):
            raise ValueError(
                f"{where}: orientation/pixel spacing differ from {frames[0].path} (the reader resampled "
                f"this image onto the study's grid); a DICOM SEG frame must lie on its source image's grid"
            )
    for path, ds in zip(dict.fromkeys(f.path for f in frames), headers, strict=True):
        if sources.multiframe(path):
            _shared_group_copy(ds, sources.geometry(path), path, notes)
    patient = hd.CoordinateSystemNames.PATIENT
    seg = hd.seg.Segmentation(
        source_images=headers[:1],
        further_source_images=list(headers[1:]) or None,
        plane_positions=[hd.PlanePositionSequence(patient, ipp) for ipp, _, _, _ in planes],
        plane_orientation=hd.PlaneOrientationSequence(patient, iop0),
        pixel_measures=hd.PixelMeasuresSequence(spacing0, thickness0),
        **common,
    )
    _reference_frames(hd, seg, frames, [np.asarray(p[0], dtype=np.float64) for p in planes])
    if len({f.series_instance_uid for f in frames}) > 1:
        _add_note(
            notes,
            "the slices come from different series (one series per slice): each phase's SEG references "
            "every slice's series, and each frame its own source image",
        )
    if any(f.frame_number is not None for f in frames):
        _add_note(notes, "multi-frame source: each SEG frame references its source frame by frame number")
    return seg


def _reference_frames(hd: Any, seg: Any, frames: Sequence[SourceFrame], positions: Sequence[Any]) -> None:
    """Set every SEG frame's Derivation Image Sequence to its own source image (and frame number)."""
    from pydicom.dataset import Dataset

    def code(value: str, meaning: str) -> Any:
        return hd.sr.CodedConcept(value=value, scheme_designator="DCM", meaning=meaning)

    stack = np.stack(positions)
    for k, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ipp = np.asarray([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        distance = np.linalg.norm(stack - ipp, axis=1)
        z = int(np.argmin(distance))
        if distance[z] > 1e-2:  # highdicom writes the positions given; this would be a bug
            raise ValueError(f"SEG frame {k + 1} at {ipp.tolist()} matches no source slice position")
        source = frames[z]
        ref = Dataset()
        ref.ReferencedSOPClassUID = source.sop_class_uid
        ref.ReferencedSOPInstanceUID = source.sop_instance_uid
        if source.frame_number is not None:
            ref.ReferencedFrameNumber = source.frame_number
        ref.PurposeOfReferenceCodeSequence = [code("121322", "Source image for image processing operation")]
        ref.SpatialLocationsPreserved = "YES"
        derivation = Dataset()
        derivation.DerivationCodeSequence = [code("113076", "Segmentation")]
        derivation.SourceImageSequence = [ref]
        item.DerivationImageSequence = [derivation]
    by_file: dict[str, list[int]] = {}
    for f in frames:
        if f.frame_number is not None:
            by_file.setdefault(f.sop_instance_uid, []).append(f.frame_number)
    for ref in seg.SourceImageSequence:  # PS3.3 C.12.4: the frames used, when not all of a file's
        numbers = by_file.get(str(ref.ReferencedSOPInstanceUID))
        if numbers:
            ref.ReferencedFrameNumber = sorted(numbers)


def segment_frames(
    seg_file: PathLike,
    source_sop_instance_uids: Sequence[str],
    source_frame_numbers: Sequence[int | None] | None = None,
) -> LabelArray:
    """Read a SEG written by :func:`write_dicom_seg` back as a ``(Z, Y, X)`` label map.

    Args:
        seg_file: the SEG file.
        source_sop_instance_uids: SOP Instance UID of each source slice, in the study's ``Z`` order (for a
            multi-frame source the same UID repeated; the slices may come from different series).
        source_frame_numbers: for a multi-frame source, the 1-based frame number of each slice
            (:attr:`SourceFrame.frame_number`); ``None`` for single-frame images.

    Returns:
        The label map (0 where no segment), frames placed by their referenced source instance (and frame).

    Raises:
        ValueError: highdicom is missing, or the two lists differ in length.

    Example:
        >>> refs = source_frames(study, [t])[t]  # doctest: +SKIP
        >>> lab = segment_frames(  # doctest: +SKIP
        ...     "seg_t00.dcm", [r.sop_instance_uid for r in refs], [r.frame_number for r in refs]
        ... )

    """
    hd = require_highdicom()
    seg = hd.seg.segread(str(seg_file))
    options: dict[str, Any] = {
        "combine_segments": True,
        "skip_overlap_checks": False,
        "assert_missing_frames_are_empty": True,  # frames without labels are omitted when writing
    }
    uids = [str(u) for u in source_sop_instance_uids]
    if source_frame_numbers is None or all(n is None for n in source_frame_numbers):
        pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, **options)
        return np.asarray(pixels, dtype=np.uint8)
    if len(source_frame_numbers) != len(uids):
        raise ValueError(
            f"{seg_file}: {len(source_frame_numbers)} frame numbers for {len(uids)} source instances"
        )
    out = np.zeros((len(uids), int(seg.Rows), int(seg.Columns)), dtype=np.uint8)
    for uid in dict.fromkeys(uids):
        where = [z for z, u in enumerate(uids) if u == uid]
        numbers = [source_frame_numbers[z] for z in where]
        if any(n is None for n in numbers):
            raise ValueError(f"{seg_file}: source {uid} has frame numbers for some slices only")
        pixels = seg.get_pixels_by_source_frame(
            source_sop_instance_uid=uid,
            source_frame_numbers=[int(n) for n in numbers if n is not None],
            **options,
        )
        out[where] = np.asarray(pixels, dtype=np.uint8)
    return out
