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

Each frame references its source image (SOP Instance UID); frames without any label are omitted.
Source headers are read without their pixels and never modified: the in-memory copies handed to
highdicom drop date/time values that are not valid DICOM (anonymised exports hold e.g. ``00000000``) and,
when the images of one phase carry different Frame of Reference UIDs (seen in anonymised exports such as
Sunnybrook's, one per image), use the first one; :class:`DicomSegResult` says so.

Needs the optional dependency highdicom (``pip install "cardiacseg[dicom]"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardiacseg.enums import CardiacLabel
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import LabelArray, PathLike
from cardiacseg.utils.atomic import atomic_path

__all__ = [
    "SEGMENT_LABELS",
    "DicomSegResult",
    "require_highdicom",
    "sanitized_source",
    "segment_frames",
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

    Args:
        study: a study read from classic single-frame DICOM images (``source_files`` set).
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
        ValueError: the study has no source DICOM images (e.g. read from NIfTI), its source is an Enhanced
            multi-frame file or one series per slice (not supported yet: highdicom's Segmentation needs
            its source frames in one series), a label map does not match the grid, or highdicom is
            missing.
        FileExistsError: a SEG file exists and ``overwrite`` is False.

    Example:
        >>> result = write_dicom_seg(study, labels, "out/dicom_seg", "cardiacseg", "0.1.0")  # doctest: +SKIP

    """
    if study.source_files is None:
        raise ValueError(
            f"{study.source}: no source DICOM images (read from NIfTI or HDF5): a DICOM SEG needs the "
            "DICOM images it segments"
        )
    files_tz = [list(row) for row in study.source_files]
    if any(len(set(row)) < len(row) for row in files_tz):
        raise ValueError(
            f"{study.source}: the source is a multi-frame DICOM file; DICOM SEG output supports classic "
            "single-frame images only (not yet Enhanced MR)"
        )
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
        sources = [sanitized_source(f) for f in files_tz[t]]
        series = {str(ds.SeriesInstanceUID) for ds in sources}
        if len(series) > 1:
            raise ValueError(
                f"{study.source}: phase {t} comes from {len(series)} series (one per slice); DICOM SEG "
                "output supports a cine stored as one series only (not yet one series per slice)"
            )
        frames_of_reference = {str(ds.get("FrameOfReferenceUID", "")) for ds in sources}
        if len(frames_of_reference) > 1:
            for ds in sources:
                ds.FrameOfReferenceUID = sources[0].FrameOfReferenceUID
            note = (
                f"the source images carry {len(frames_of_reference)} different Frame of Reference UIDs "
                "(an anonymisation artefact); the SEG uses the first slice's"
            )
            if note not in result.notes:
                result.notes.append(note)
        role = roles.get(t, "")
        sop_uid = hd.UID()
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=label.astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=result.series_instance_uid,
            series_number=series_number,
            sop_instance_uid=sop_uid,
            instance_number=t + 1,
            manufacturer="cardiacseg",
            manufacturer_model_name=algorithm_name[:64],
            software_versions=algorithm_version[:64],
            device_serial_number="0",
            content_label="CARDIACSEG",
            content_description=f"LV, MYO, RV; cardiac phase {t}{' (' + role + ')' if role else ''}"[:64],
            series_description="cardiacseg LV/MYO/RV segmentation",
            omit_empty_frames=True,
        )
        with atomic_path(target, overwrite=overwrite) as tmp:
            seg.save_as(tmp)
        result.files[t] = target
        result.sop_instance_uids[t] = str(sop_uid)
    return result


def segment_frames(seg_file: PathLike, source_sop_instance_uids: Sequence[str]) -> LabelArray:
    """Read a SEG written by :func:`write_dicom_seg` back as a ``(Z, Y, X)`` label map.

    Args:
        seg_file: the SEG file.
        source_sop_instance_uids: SOP Instance UID of each source slice, in the study's ``Z`` order.

    Returns:
        The label map (0 where no segment), frames placed by their referenced source instance.

    Raises:
        ValueError: highdicom is missing.

    """
    hd = require_highdicom()
    seg = hd.seg.segread(str(seg_file))
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=list(source_sop_instance_uids),
        combine_segments=True,
        skip_overlap_checks=False,
        assert_missing_frames_are_empty=True,  # frames without labels are omitted when writing
    )
    return np.asarray(pixels, dtype=np.uint8)
