"""Test-data builders: clinical DICOM export layouts rebuilt from a real classic single-frame folder.

Every builder reads a folder of classic single-frame images (e.g. the shared Sunnybrook study), writes
to a destination the caller owns (a pytest ``tmp_path``), and never modifies its input. Personal tags
are replaced where a builder makes a new object (``PatientName`` 'Anonymous', birth date emptied).

Builders:
    write_enhanced_mr: the whole cine as ONE Enhanced MR Image (multi-frame, functional groups).
    write_without_preamble: every image without the 128-byte preamble / File Meta, implicit VR LE.
    write_series_per_slice: one series per slice position in ``sax_<k>/`` sub-folders (Kaggle DSB).
    write_single_phase_stack: one image per slice position as a new series ('LGE' planned on the cine).
    strip_tags: copies with some top-level attributes removed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

ENHANCED_MR_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4.1")

# attributes copied from the source into every new object (patient, study, equipment, frame of reference)
_COPIED = (
    "SpecificCharacterSet",
    "PatientID",
    "PatientSex",
    "PatientAge",
    "PatientWeight",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "Modality",
    "SeriesDate",
    "SeriesTime",
    "SeriesNumber",
    "SeriesDescription",
    "Manufacturer",
    "ManufacturerModelName",
    "DeviceSerialNumber",
    "SoftwareVersions",
    "InstitutionName",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
    "PatientPosition",
    "BodyPartExamined",
    "ContentDate",
    "ContentTime",
    "AcquisitionNumber",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
)
_PIXEL_KEYS = _COPIED[-7:]


# --------------------------------------------------------------------------------------------------
# reading the classic source


@dataclass(frozen=True)
class _Image:
    path: Path
    ds: Dataset
    position: tuple[float, float, float]
    orientation: tuple[float, ...]
    trigger_ms: float


def _check_destination(src: Path, dst: Path) -> None:
    src_r, dst_r = src.resolve(), dst.resolve()
    if dst_r == src_r or src_r in dst_r.parents:
        raise ValueError(
            f"destination {dst} is inside the source {src}: builders never write into their input"
        )


def _dicom_files(src: Path) -> list[tuple[Path, Dataset]]:
    """All DICOM files directly in ``src`` (sorted by name), read with pixel data."""
    out: list[tuple[Path, Dataset]] = []
    for f in sorted(p for p in src.iterdir() if p.is_file()):
        try:
            out.append((f, pydicom.dcmread(f)))
        except (InvalidDicomError, OSError):
            continue
    if not out:
        raise ValueError(f"{src}: no DICOM files")
    return out


def _trigger(ds: Dataset) -> float:
    for keyword in ("TriggerTime", "NominalCardiacTriggerDelayTime"):
        if ds.get(keyword) not in (None, ""):
            return float(ds[keyword].value)
    raise ValueError(f"{ds.filename}: no TriggerTime / NominalCardiacTriggerDelayTime")


def _classic_images(src: Path) -> list[_Image]:
    images = []
    for f, ds in _dicom_files(src):
        if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
            raise ValueError(f"{f}: no ImagePositionPatient / ImageOrientationPatient")
        pos = tuple(float(v) for v in ds.ImagePositionPatient)
        images.append(
            _Image(
                f,
                ds,
                (pos[0], pos[1], pos[2]),
                tuple(float(v) for v in ds.ImageOrientationPatient),
                _trigger(ds),
            )
        )
    return images


def _slices(images: list[_Image]) -> list[list[_Image]]:
    """Images grouped by slice position, positions ordered along the slice normal, phases by trigger."""
    iop = np.asarray(images[0].orientation)
    normal = np.cross(iop[:3], iop[3:])
    groups: dict[tuple[float, float, float], list[_Image]] = {}
    for im in images:
        groups.setdefault(tuple(round(v, 3) for v in im.position), []).append(im)  # type: ignore[arg-type]
    ordered = sorted(groups.values(), key=lambda g: float(np.dot(g[0].position, normal)))
    return [
        sorted(g, key=lambda im: (im.trigger_ms, int(im.ds.get("InstanceNumber", 0) or 0))) for g in ordered
    ]


def _drop_group_lengths(ds: Dataset) -> None:
    """Remove (gggg,0000) group lengths: retired, and wrong once anything is re-encoded."""
    for tag in [t for t in ds.keys() if t.element == 0]:
        del ds[tag]


def _copy_attrs(src: Dataset, dst: Dataset, keywords: Iterable[str]) -> None:
    for keyword in keywords:
        if keyword in src:
            dst[keyword] = src[keyword]


def _item(**attrs: object) -> Dataset:
    ds = Dataset()
    for keyword, value in attrs.items():
        if value is not None:
            setattr(ds, keyword, value)
    return ds


def _seq(**attrs: object) -> Sequence:
    return Sequence([_item(**attrs)])


def _file_meta(ds: Dataset, transfer_syntax: UID) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _dt(date: object, time: object) -> str | None:
    """DICOM DT from DA + TM; only the year ('YYYY', a valid reduced-precision DT) when the date is not
    a real date (Sunnybrook's de-identified '20120000'); None when not even the year is known."""
    d, t = str(date or ""), str(time or "")
    try:
        datetime.strptime(d, "%Y%m%d")
    except ValueError:
        return d[:4] if d[:4].isdigit() else None
    return d + t if t else None


# --------------------------------------------------------------------------------------------------
# Enhanced MR


def write_enhanced_mr(
    src_folder: Path,
    dst_file: Path,
    *,
    shared_geometry: bool = True,
    transfer_syntax: str = ExplicitVRLittleEndian,
    frame_order: str = "slice_major",
    seed: int = 0,
) -> Path:
    """Write a classic single-frame cine folder as ONE Enhanced MR Image (PS3.3 A.36.2).

    Frames follow ``frame_order``: 'slice_major' (slice by slice along the normal, phases by trigger
    time inside each slice) or 'random' (a seeded shuffle, so readers cannot rely on the order). Shared
    functional groups: Pixel Value Transformation, MR Image Frame Type, MR Timing/Echo/FOV/Averages/Receive
    Coil, Frame Anatomy and, when ``shared_geometry`` (and the values agree), Pixel Measures and Plane
    Orientation; otherwise those two are written per frame. Per-frame groups: Plane Position, Cardiac
    Synchronization (NominalCardiacTriggerDelayTime = the source TriggerTime), Frame Content (StackID
    '1', InStackPositionNumber along the normal, TemporalPositionIndex = trigger rank in its slice,
    DimensionIndexValues), and any group whose values differ between source images.

    Args:
        src_folder: Classic single-frame images with IPP, IOP and TriggerTime (one parallel stack).
        dst_file: The file to write (its parent is created).
        shared_geometry: Put Plane Orientation and Pixel Measures in the shared groups.
        transfer_syntax: Uncompressed (Explicit/Implicit VR LE, Deflated) or any syntax
            ``Dataset.compress`` can encode here (e.g. RLE Lossless).
        frame_order: 'slice_major' or 'random'.
        seed: Seed of the 'random' order.

    Returns:
        ``dst_file``.
    """
    _check_destination(src_folder, dst_file)
    if frame_order not in ("slice_major", "random"):
        raise ValueError(f"frame_order must be 'slice_major' or 'random', not {frame_order!r}")
    slices = _slices(_classic_images(src_folder))
    first = slices[0][0].ds
    frames = [
        (stack_pos, temporal, im)
        for stack_pos, group in enumerate(slices, start=1)
        for temporal, im in enumerate(group, start=1)
    ]
    if frame_order == "random":
        random.Random(seed).shuffle(frames)
    for _, _, im in frames:
        for keyword in _PIXEL_KEYS:
            if im.ds.get(keyword) != first.get(keyword):
                raise ValueError(f"{im.path}: {keyword} differs from {slices[0][0].path}")

    ds = Dataset()
    _copy_attrs(first, ds, _COPIED)
    ds.SOPClassUID = ENHANCED_MR_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Anonymous"
    ds.PatientBirthDate = ""
    ds.InstanceNumber = 1
    ds.NumberOfFrames = len(frames)
    image_type = [str(v) for v in first.get("ImageType", ["ORIGINAL", "PRIMARY"])][:4]
    image_type += ["OTHER", "NONE"][len(image_type) - 2 :] if len(image_type) < 4 else []
    ds.ImageType = image_type
    acq_dt = _dt(first.get("AcquisitionDate"), first.get("AcquisitionTime"))
    # Enhanced MR Image module (C.8.13.1) and MR Image and Spectroscopy Instance macro (C.8.13.2)
    ds.AcquisitionDateTime = acq_dt
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.ComplexImageComponent = "MAGNITUDE"
    ds.AcquisitionContrast = "UNKNOWN"
    ds.ContentQualification = "PRODUCT"
    ds.ResonantNucleus = str(first.get("ImagedNucleus", "1H") or "1H")
    ds.KSpaceFiltering = "NONE"
    if first.get("MagneticFieldStrength") not in (None, ""):
        ds.MagneticFieldStrength = first.MagneticFieldStrength
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    # MR Pulse Sequence module (C.8.13.4): only what the source states or 'UNKNOWN'-like defined terms
    ds.PulseSequenceName = str(first.get("SequenceName", "") or "UNKNOWN")[:16]
    ds.MRAcquisitionType = str(first.get("MRAcquisitionType", "2D") or "2D")
    scanning = {str(v) for v in first.get("ScanningSequence", [])} if "ScanningSequence" in first else set()
    ds.EchoPulseSequence = "GRADIENT" if "GR" in scanning else "SPIN" if "SE" in scanning else "BOTH"
    ds.MultipleSpinEcho = "NO"
    ds.MultiPlanarExcitation = "NO"
    ds.PhaseContrast = "NO"
    ds.TimeOfFlightContrast = "NO"
    ds.SteadyStatePulseSequence = "NONE"
    ds.EchoPlanarPulseSequence = "NO"
    ds.SaturationRecovery = "NO"
    ds.SpectrallySelectedSuppression = "NONE"
    ds.OversamplingPhase = "NONE"
    ds.GeometryOfKSpaceTraversal = "RECTILINEAR"
    ds.RectilinearPhaseEncodeReordering = "UNKNOWN"
    ds.SegmentedKSpaceTraversal = "SINGLE"
    ds.NumberOfKSpaceTrajectories = 1
    # Cardiac Synchronization module (C.7.6.18.1)
    ds.CardiacSynchronizationTechnique = (
        "PROSPECTIVE" if "CG" in str(first.get("ScanOptions", "")) else "NONE"
    )
    ds.CardiacSignalSource = "ECG"
    rr_nominal = _opt_float(first, "NominalInterval")
    if rr_nominal is not None:
        ds.CardiacRRIntervalSpecified = rr_nominal
    ds.IntervalsAcquired = int(first.get("IntervalsAcquired") or 0) or None
    ds.IntervalsRejected = None
    ds.LowRRValue = None
    ds.HighRRValue = None
    ds.ReferringPhysicianName = first.get("ReferringPhysicianName", "")
    ds.AcquisitionContextSequence = Sequence()
    ds.CardiacBeatRejectionTechnique = "NONE"

    # Multi-frame Dimension module (C.7.6.17): stack, position in stack, temporal position
    org_uid = generate_uid()
    ds.DimensionOrganizationSequence = _seq(DimensionOrganizationUID=org_uid)
    ds.DimensionOrganizationType = "3D_TEMPORAL"
    ds.DimensionIndexSequence = Sequence(
        [
            _item(
                DimensionOrganizationUID=org_uid,
                DimensionIndexPointer=Tag(pointer),
                FunctionalGroupPointer=Tag("FrameContentSequence"),
                DimensionDescriptionLabel=label,
            )
            for pointer, label in (
                ("StackID", "Stack ID"),
                ("InStackPositionNumber", "In-Stack Position Number"),
                ("TemporalPositionIndex", "Temporal Position Index"),
            )
        ]
    )

    # functional groups (C.7.6.16): shared where all source images agree, else per frame
    def values(keyword: str) -> list[object]:
        return [im.ds.get(keyword) for _, _, im in frames]

    def agree(keyword: str) -> bool:
        return len({str(v) for v in values(keyword)}) == 1

    shared = Dataset()
    per_frame_keys: list[str] = []
    measures_shared = shared_geometry and agree("PixelSpacing") and agree("SliceThickness")
    orientation_shared = shared_geometry and agree("ImageOrientationPatient")
    rescale_shared = agree("RescaleSlope") and agree("RescaleIntercept")
    if measures_shared:
        shared.PixelMeasuresSequence = _seq(
            PixelSpacing=first.get("PixelSpacing"), SliceThickness=first.get("SliceThickness")
        )
    else:
        per_frame_keys.append("PixelMeasuresSequence")
    if orientation_shared:
        shared.PlaneOrientationSequence = _seq(ImageOrientationPatient=first.ImageOrientationPatient)
    else:
        per_frame_keys.append("PlaneOrientationSequence")
    if rescale_shared:
        shared.PixelValueTransformationSequence = _rescale_seq(first)
    else:
        per_frame_keys.append("PixelValueTransformationSequence")
    shared.MRImageFrameTypeSequence = _seq(
        FrameType=image_type,
        PixelPresentation="MONOCHROME",
        VolumetricProperties="VOLUME",
        VolumeBasedCalculationTechnique="NONE",
        ComplexImageComponent="MAGNITUDE",
        AcquisitionContrast="UNKNOWN",
    )
    shared.MRTimingAndRelatedParametersSequence = _seq(
        RepetitionTime=_opt_float(first, "RepetitionTime"),
        FlipAngle=_opt_float(first, "FlipAngle"),
        EchoTrainLength=int(first.get("EchoTrainLength", 1) or 1),
        RFEchoTrainLength=1,
        GradientEchoTrainLength=1,
        SpecificAbsorptionRateSequence=_seq(
            SpecificAbsorptionRateDefinition="IEC_WHOLE_BODY",
            SpecificAbsorptionRateValue=_opt_float(first, "SAR"),
        )
        if first.get("SAR") not in (None, "")
        else None,
    )
    shared.MREchoSequence = _seq(EffectiveEchoTime=_opt_float(first, "EchoTime"))
    acq_matrix = [int(v) for v in first.get("AcquisitionMatrix", [])] if "AcquisitionMatrix" in first else []
    shared.MRFOVGeometrySequence = _seq(
        InPlanePhaseEncodingDirection={"COL": "COLUMN", "ROW": "ROW"}.get(
            str(first.get("InPlanePhaseEncodingDirection", "")), "OTHER"
        ),
        MRAcquisitionFrequencyEncodingSteps=max(acq_matrix[:2]) if len(acq_matrix) == 4 else None,
        MRAcquisitionPhaseEncodingStepsInPlane=max(acq_matrix[2:]) if len(acq_matrix) == 4 else None,
        PercentSampling=_opt_float(first, "PercentSampling"),
        PercentPhaseFieldOfView=_opt_float(first, "PercentPhaseFieldOfView"),
    )
    shared.MRAveragesSequence = _seq(NumberOfAverages=_opt_float(first, "NumberOfAverages") or 1.0)
    shared.MRReceiveCoilSequence = _seq(
        ReceiveCoilName=str(first.get("ReceiveCoilName", "") or ""),
        ReceiveCoilManufacturerName="",
        ReceiveCoilType="MULTICOIL",
        MultiCoilDefinitionSequence=_seq(
            MultiCoilElementName=str(first.get("ReceiveCoilName", "") or "COIL"), MultiCoilElementUsed="YES"
        ),
        QuadratureReceiveCoil="NO",
    )
    shared.MRTransmitCoilSequence = _seq(
        TransmitCoilName="BODY", TransmitCoilManufacturerName="", TransmitCoilType="BODY"
    )
    shared.MRModifierSequence = _seq(
        InversionRecovery="NO",
        FlowCompensation="NONE",
        T2Preparation="NO",
        SpectrallySelectedExcitation="NONE",
        SpatialPresaturation="NONE",
        PartialFourier="NO",
        ParallelAcquisition="NO",
    )
    shared.MRImagingModifierSequence = _seq(
        MagnetizationTransfer="NONE",
        BloodSignalNulling="NO",
        Tagging="NONE",
        TransmitterFrequency=_opt_float(first, "ImagingFrequency"),
        PixelBandwidth=_opt_float(first, "PixelBandwidth"),
    )
    heart = _item(CodeValue="80891009", CodingSchemeDesignator="SCT", CodeMeaning="Heart")
    shared.FrameAnatomySequence = _seq(AnatomicRegionSequence=Sequence([heart]), FrameLaterality="U")
    ds.SharedFunctionalGroupsSequence = Sequence([shared])

    per_frame = []
    arrays = []
    for stack_pos, temporal, im in frames:
        item = Dataset()
        item.PlanePositionSequence = _seq(ImagePositionPatient=im.ds.ImagePositionPatient)
        item.CardiacSynchronizationSequence = _seq(
            NominalCardiacTriggerDelayTime=im.trigger_ms, RRIntervalTimeNominal=rr_nominal
        )
        frame_dt = _dt(im.ds.get("AcquisitionDate"), im.ds.get("AcquisitionTime")) or acq_dt or ""
        item.FrameContentSequence = _seq(
            StackID="1",
            InStackPositionNumber=stack_pos,
            TemporalPositionIndex=temporal,
            DimensionIndexValues=[1, stack_pos, temporal],
            FrameAcquisitionNumber=int(im.ds.get("AcquisitionNumber", 1) or 1),
            FrameAcquisitionDateTime=frame_dt or None,
            FrameReferenceDateTime=frame_dt or None,
            FrameAcquisitionDuration=_opt_float(im.ds, "RepetitionTime") or 0.0,
        )
        if "PixelMeasuresSequence" in per_frame_keys:
            item.PixelMeasuresSequence = _seq(
                PixelSpacing=im.ds.get("PixelSpacing"), SliceThickness=im.ds.get("SliceThickness")
            )
        if "PlaneOrientationSequence" in per_frame_keys:
            item.PlaneOrientationSequence = _seq(ImageOrientationPatient=im.ds.ImageOrientationPatient)
        if "PixelValueTransformationSequence" in per_frame_keys:
            item.PixelValueTransformationSequence = _rescale_seq(im.ds)
        per_frame.append(item)
        arrays.append(np.asarray(im.ds.pixel_array))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)

    stack = np.stack(arrays)
    tsyntax = UID(transfer_syntax)
    if tsyntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian):
        ds.PixelData = stack.astype(stack.dtype.newbyteorder("<")).tobytes()
        ds["PixelData"].VR = "OW" if int(first.BitsAllocated) > 8 else "OB"
        ds.file_meta = _file_meta(ds, tsyntax)
    else:
        ds.file_meta = _file_meta(ds, ExplicitVRLittleEndian)
        ds.compress(tsyntax, stack, generate_instance_uid=False)
        ds.LossyImageCompression = "00"
    dst_file.parent.mkdir(parents=True, exist_ok=True)
    save_dicom(ds, dst_file)
    return dst_file


PYDICOM3 = int(pydicom.__version__.split(".")[0]) >= 3
"""pydicom 3 here; the MONAI Label environment (``make label``) pins pydicom 2.4, where the same tests run."""


def save_dicom(
    ds: Dataset,
    dst: Path | BytesIO,
    *,
    file_format: bool = True,
    implicit_vr: bool | None = None,
    little_endian: bool | None = None,
) -> None:
    """``ds.save_as`` under pydicom 3 (``enforce_file_format``) and 2.4 (``write_like_original``).

    Args:
        ds: the data set.
        dst: file path or buffer.
        file_format: write the preamble and File Meta (DICOM Part 10 file); ``False`` writes what is there.
        implicit_vr: encoding of the data set (default: from the File Meta transfer syntax).
        little_endian: byte order (default: from the File Meta transfer syntax).
    """
    if PYDICOM3:
        kwargs: dict[str, bool] = {"enforce_file_format": file_format}
        if implicit_vr is not None:
            kwargs["implicit_vr"] = implicit_vr
        if little_endian is not None:
            kwargs["little_endian"] = little_endian
        ds.save_as(dst, **kwargs)
        return
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    ds.is_implicit_VR = implicit_vr if implicit_vr is not None else bool(tsyntax and tsyntax.is_implicit_VR)
    ds.is_little_endian = (
        little_endian if little_endian is not None else not tsyntax or tsyntax.is_little_endian
    )
    ds.save_as(dst, write_like_original=not file_format)


def _opt_float(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    return None if value in (None, "") else float(value)


def _rescale_seq(ds: Dataset) -> Sequence:
    return _seq(
        RescaleSlope=_opt_float(ds, "RescaleSlope") or 1.0,
        RescaleIntercept=_opt_float(ds, "RescaleIntercept") or 0.0,
        RescaleType=str(ds.get("RescaleType", "") or "US"),
    )


# --------------------------------------------------------------------------------------------------
# classic layouts


def write_without_preamble(src: Path, dst: Path) -> Path:
    """Write each image of ``src`` into ``dst`` as a bare data set: no preamble/File Meta, implicit VR LE.

    This is what older consoles wrote (ACR-NEMA style streams). In pydicom 3 the preamble and the File
    Meta are only written when present unless ``enforce_file_format=True`` (``dcmwrite`` docs), so the
    data set is written with ``preamble = None``, an empty ``file_meta`` and
    ``implicit_vr=True, little_endian=True``. Group lengths are dropped (they would be wrong once the
    VR fields disappear). Read the output with ``pydicom.dcmread(path, force=True)``.

    Args:
        src: A folder of DICOM files (only those directly inside are written).
        dst: The destination folder (created); file names are kept.

    Returns:
        ``dst``.
    """
    _check_destination(src, dst)
    dst.mkdir(parents=True, exist_ok=True)
    for f, ds in _dicom_files(src):
        ds.preamble = None
        ds.file_meta = FileMetaDataset()
        _drop_group_lengths(ds)
        save_dicom(ds, dst / f.name, file_format=False, implicit_vr=True, little_endian=True)
    return dst


def _renumbered(ds: Dataset, series_uid: str, series_number: int, instance_number: int) -> Dataset:
    """``ds`` as a new instance of another series (new SOPInstanceUID, File Meta kept in step)."""
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "Anonymous"
    _drop_group_lengths(ds)
    tsyntax = (
        ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian) if hasattr(ds, "file_meta") else None
    )
    ds.file_meta = _file_meta(ds, UID(tsyntax or ExplicitVRLittleEndian))
    return ds


def write_series_per_slice(src: Path, dst: Path) -> Path:
    """Write one series per slice position into ``dst/sax_<k>/`` (the Kaggle DSB / Siemens layout).

    Slices are numbered ``k = 1..S`` along the slice normal; each gets its own SeriesInstanceUID,
    ``SeriesNumber = k`` and ``SeriesDescription 'sax_<k>'``; images get new SOPInstanceUIDs and
    ``InstanceNumber`` = trigger rank 1..T. Pixels, geometry and trigger times are unchanged.

    Args:
        src: A classic single-frame cine folder.
        dst: The destination folder (created).

    Returns:
        ``dst``.
    """
    _check_destination(src, dst)
    for k, group in enumerate(_slices(_classic_images(src)), start=1):
        folder = dst / f"sax_{k}"
        folder.mkdir(parents=True, exist_ok=True)
        series_uid = generate_uid()
        for t, im in enumerate(group, start=1):
            ds = _renumbered(im.ds, series_uid, k, t)
            ds.SeriesDescription = f"sax_{k}"
            save_dicom(ds, folder / f"IM-{k:04d}-{t:04d}.dcm")
    return dst


def write_single_phase_stack(src: Path, dst: Path, series_number: int = 100, *, phase: int = 0) -> Path:
    """Write one image per slice position as a new single-phase series (an LGE stack planned on the cine).

    The image of trigger rank ``phase`` (0 = first) at each position is copied with a new
    SeriesInstanceUID, ``SeriesNumber = series_number``, SeriesDescription 'LGE', SequenceName
    'LGE_PSIR', series/acquisition/content times 20 minutes later than the cine, and new
    SOPInstanceUIDs. Same positions, orientation and pixels. Files are named ``lge_<k>.dcm`` so the stack
    may share a folder with a copy of the cine. Note: Sunnybrook's cine is series 300, so the default
    ``series_number`` is *lower* than the cine's although the stack is later in time.

    Args:
        src: A classic single-frame cine folder.
        dst: The destination folder (created).
        series_number: SeriesNumber of the new stack.
        phase: Which trigger rank to take at each position.

    Returns:
        ``dst``.
    """
    _check_destination(src, dst)
    dst.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    for k, group in enumerate(_slices(_classic_images(src)), start=1):
        ds = _renumbered(group[phase].ds, series_uid, series_number, k)
        ds.SeriesDescription = "LGE"
        ds.SequenceName = "LGE_PSIR"
        for keyword in ("SeriesTime", "AcquisitionTime", "ContentTime"):
            if ds.get(keyword):
                ds[keyword].value = _later(str(ds[keyword].value), minutes=20)
        save_dicom(ds, dst / f"lge_{k}.dcm")
    return dst


def _later(tm: str, *, minutes: int) -> str:
    """A DICOM TM value ``minutes`` later (same day, clipped at 23:59:59)."""
    try:
        t = datetime.strptime(tm.split(".")[0][:6].ljust(6, "0"), "%H%M%S")
    except ValueError:
        return tm
    later = min(t + timedelta(minutes=minutes), t.replace(hour=23, minute=59, second=59))
    return later.strftime("%H%M%S")


def strip_tags(src: Path, dst: Path, tags: Iterable[str | int | BaseTag]) -> Path:
    """Copy ``src`` (a file, or a folder recursively) to ``dst`` with the given top-level tags removed.

    Files that are not DICOM are skipped; everything else (encoding, preamble, File Meta) is written
    as read.

    Args:
        src: A DICOM file or a folder of them.
        dst: The destination file (when ``src`` is a file) or folder.
        tags: Keywords ('ImagePositionPatient') or tags (0x00200032).

    Returns:
        ``dst``.
    """
    _check_destination(src, dst)
    wanted = [Tag(t) for t in tags]
    pairs = [(src, dst)] if src.is_file() else [(f, dst / f.relative_to(src)) for f in sorted(src.rglob("*"))]
    for f, out in pairs:
        if not f.is_file():
            continue
        try:
            ds = pydicom.dcmread(f)
        except (InvalidDicomError, OSError):
            continue
        for tag in wanted:
            if tag in ds:
                del ds[tag]
        _drop_group_lengths(ds)
        out.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(out)
    return dst
