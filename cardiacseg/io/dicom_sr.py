"""DICOM SR measurement report (TID 1500) of the clinical indices, referencing the DICOM SEG (highdicom).

One Comprehensive 3D SR per study holding a TID 1500 Measurement Report. Volumes and mass of a
structure at one phase are TID 1411 volumetric ROI groups that reference their segment in the SEG of
that phase (ED or ES, with a TID 1502 time point context naming the phase); stroke volumes and ejection
fractions are TID 1501 groups. Units are UCUM (``ml``, ``g``, ``%``). The observer is the algorithm
(device): name and version give the package, bundle and weights checksum.

Each Referenced Segment lists the source images of the segment's frames, as the SEG's per-frame
Derivation Image Sequences name them: one item per source instance, with every referenced frame number
when the source is a multi-frame file (highdicom's ``ReferencedSegment.from_segmentation`` would keep only
the first frame of each instance). The evidence (Current Requested Procedure Evidence) lists the SEGs and
each source file once, under its own series: for a one-series-per-slice export every slice's series, for
an Enhanced MR file that one instance.

Concept codes: LOINC where DICOM's cardiac codes have one for MR (LV EDV 18026-5, LV ESV 18148-7, LV EF by
MR 8811-2, RV EF by MR 8818-7), SNOMED CT for stroke volumes (90096001, RV 429483009); LV mass, RV EDV
and RV ESV have no MR code in DICOM's code lists (LOINC's LV mass codes name echo methods), so they use
the private coding scheme ``99CARDIACSEG`` (PS3.3 8.2: local codes), with the meaning in words.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cardiacseg.enums import CardiacLabel
from cardiacseg.io.dicom_seg import DicomSegResult, require_highdicom, sanitized_source
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import PathLike
from cardiacseg.utils.atomic import atomic_path

__all__ = ["PRIVATE_SCHEME", "SR_CONCEPTS", "read_dicom_sr_measurements", "write_dicom_sr"]

#: Coding scheme designator of cardiacseg's local codes.
PRIVATE_SCHEME = "99CARDIACSEG"

#: index key -> (code value, scheme, meaning, UCUM unit, structure segment, phase role or "")
SR_CONCEPTS: dict[str, tuple[str, str, str, str, int | None, str]] = {
    "lv_edv_ml": ("18026-5", "LN", "Left Ventricular End Diastolic Volume", "ml", int(CardiacLabel.LV), "ED"),
    "lv_esv_ml": ("18148-7", "LN", "Left Ventricular End Systolic Volume", "ml", int(CardiacLabel.LV), "ES"),
    "lv_mass_g": (
        "LVMASS",
        PRIVATE_SCHEME,
        "Left ventricular myocardial mass",
        "g",
        int(CardiacLabel.MYO),
        "ED",
    ),
    "rv_edv_ml": (
        "RVEDV",
        PRIVATE_SCHEME,
        "Right ventricular end diastolic volume",
        "ml",
        int(CardiacLabel.RV),
        "ED",
    ),
    "rv_esv_ml": (
        "RVESV",
        PRIVATE_SCHEME,
        "Right ventricular end systolic volume",
        "ml",
        int(CardiacLabel.RV),
        "RV ES",
    ),
    "lv_sv_ml": ("90096001", "SCT", "Stroke Volume", "ml", None, ""),
    "lv_ef_percent": ("8811-2", "LN", "Left ventricular Ejection fraction by MRI", "%", None, ""),
    "rv_sv_ml": ("429483009", "SCT", "Right ventricular stroke volume", "ml", None, ""),
    "rv_ef_percent": ("8818-7", "LN", "Right ventricular Ejection fraction by MRI", "%", None, ""),
}

_UNITS = {"ml": "milliliter", "g": "gram", "%": "percent"}


def _code(hd: Any, value: str, scheme: str, meaning: str) -> Any:
    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _measurement(hd: Any, key: str, value: float, algorithm: Any) -> Any:
    """TID 300 numeric measurement of one index of :data:`SR_CONCEPTS`."""
    code, scheme, meaning, unit, _, _ = SR_CONCEPTS[key]
    return hd.sr.Measurement(
        name=_code(hd, code, scheme, meaning),
        value=value,
        unit=_code(hd, unit, "UCUM", _UNITS[unit]),
        algorithm_id=algorithm,
    )


def _referenced_segment(hd: Any, seg: Any, segment: int) -> Any:
    """TID 1411 Referenced Segment of one segment of a SEG, with the source images of its frames.

    Each source image is named once with every frame of it that the segment's frames derive from (a
    multi-frame cine file: all the phase's frames holding the segment); highdicom's ``from_segmentation``
    keeps only the first frame per source instance. Single-frame sources carry no frame numbers, as
    ``from_segmentation`` writes them.
    """
    by_instance: dict[str, tuple[str, list[int]]] = {}
    for item in seg.PerFrameFunctionalGroupsSequence:
        if int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber) != segment:
            continue
        for derivation in item.get("DerivationImageSequence", []):
            for ref in derivation.get("SourceImageSequence", []):
                entry = by_instance.setdefault(
                    str(ref.ReferencedSOPInstanceUID), (str(ref.ReferencedSOPClassUID), [])
                )
                if "ReferencedFrameNumber" in ref:
                    value = ref.ReferencedFrameNumber
                    numbers = value if ref["ReferencedFrameNumber"].VM > 1 else [value]
                    entry[1].extend(int(n) for n in numbers if int(n) not in entry[1])
    if not by_instance:  # no per-frame references (not written by cardiacseg): highdicom's fallbacks
        return hd.sr.ReferencedSegment.from_segmentation(seg, segment_number=segment)
    return hd.sr.ReferencedSegment(
        sop_class_uid=str(seg.SOPClassUID),
        sop_instance_uid=str(seg.SOPInstanceUID),
        segment_number=segment,
        source_images=[
            hd.sr.SourceImageForSegmentation(
                referenced_sop_class_uid=sop_class,
                referenced_sop_instance_uid=uid,
                referenced_frame_numbers=sorted(numbers) or None,
            )
            for uid, (sop_class, numbers) in by_instance.items()
        ],
    )


def write_dicom_sr(
    study: CineStudy,
    values: Mapping[str, float | None],
    ed_phase: int,
    es_phase: int,
    seg: DicomSegResult,
    out_file: PathLike,
    algorithm_name: str,
    algorithm_version: str,
    overwrite: bool = False,
    series_number: int = 9901,
    rv_es_phase: int | None = None,
) -> Path:
    """Write the measurement report of one study.

    Args:
        study: the study read from DICOM (``source_files`` set).
        values: the indices by key of :data:`SR_CONCEPTS` (``None`` values are left out).
        ed_phase: index of end-diastole in the study's ``T`` axis.
        es_phase: index of end-systole.
        seg: the SEG written for the study (:func:`~cardiacseg.io.dicom_seg.write_dicom_seg`), with the ED
            and ES phases.
        out_file: the SR file to write.
        algorithm_name: the algorithm's name (observer device name; TID 4019 algorithm name).
        algorithm_version: its version (package, bundle version and weights checksum).
        overwrite: replace an existing file.
        series_number: Series Number of the SR.
        rv_es_phase: the RV's own end-systole (``CardiacIndices.rv_es_phase``), where RV ESV is measured;
            default the LV's.

    Returns:
        The written file.

    Raises:
        ValueError: no SEG for ED or ES, no source DICOM, or highdicom missing.
        FileExistsError: the file exists and ``overwrite`` is False.

    Example:
        >>> write_dicom_sr(study, idx, 18, 7, seg, "out/sr.dcm", "cardiacseg", "0.1.0")  # doctest: +SKIP

    """
    hd = require_highdicom()
    from pydicom.sr.codedict import codes

    if study.source_files is None:
        raise ValueError(f"{study.source}: no source DICOM images: a DICOM SR needs them")
    target = Path(out_file)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite to replace it")
    phase = {"ED": ed_phase, "ES": es_phase, "RV ES": es_phase if rv_es_phase is None else rv_es_phase}
    missing = [p for p in phase.values() if p not in seg.files]
    if missing:
        raise ValueError(f"no DICOM SEG for phase(s) {missing}: write the SEG of ED and ES (and RV ES) first")
    seg_by_phase = {t: hd.seg.segread(str(seg.files[t])) for t in set(phase.values())}
    # one header per source file: a multi-frame file holds every (t, z) image, so it is evidence once
    sources = {t: [sanitized_source(f) for f in dict.fromkeys(study.source_files[t])] for t in seg_by_phase}
    for datasets in sources.values():  # the SEG was written with the first slice's frame of reference
        for ds in datasets:
            ds.FrameOfReferenceUID = datasets[0].FrameOfReferenceUID
    segs = {role: seg_by_phase[t] for role, t in phase.items()}
    algorithm = hd.sr.AlgorithmIdentification(name=algorithm_name[:64], version=algorithm_version[:64])
    groups: list[Any] = []
    for key, (_, _, meaning, _, segment, role) in SR_CONCEPTS.items():
        v = values.get(key)
        if v is None or segment is None:
            continue
        t = phase[role]
        measurement = _measurement(hd, key, float(v), algorithm)
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{meaning} ({role})"),
                referenced_segment=_referenced_segment(hd, segs[role], segment),
                time_point_context=hd.sr.TimePointContext(time_point=f"{role}: cardiac phase {t}"),
                finding_type=codes.SCT.Heart,
                algorithm_id=algorithm,
                measurements=[measurement],
            )
        )
    derived = [
        _measurement(hd, key, float(v), algorithm)
        for key, concept in SR_CONCEPTS.items()
        if concept[4] is None and (v := values.get(key)) is not None
    ]
    if derived:
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="cardiac function"),
                finding_type=codes.SCT.Heart,
                algorithm_id=algorithm,
                measurements=derived,
            )
        )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(),
            name=algorithm_name[:64],
            manufacturer_name="cardiacseg",
            model_name=algorithm_version[:64],
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=_code(hd, "CARDIACMR", PRIVATE_SCHEME, "Cardiac MR cine short-axis analysis"),
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
    evidence = list(seg_by_phase.values())
    for datasets in sources.values():
        evidence += datasets
    evidence = list({str(ds.SOPInstanceUID): ds for ds in evidence}.values())
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="cardiacseg",
        series_description="cardiacseg cardiac function report",
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
    from pydicom.dataset import Dataset

    coding_scheme = Dataset()  # declare the local coding scheme (PS3.3 C.12.1.1.4)
    coding_scheme.CodingSchemeDesignator = PRIVATE_SCHEME
    coding_scheme.CodingSchemeName = "cardiacseg local codes"
    coding_scheme.CodingSchemeResponsibleOrganization = "cardiacseg"
    sr.CodingSchemeIdentificationSequence = [coding_scheme]
    with atomic_path(target, overwrite=overwrite) as tmp:
        sr.save_as(tmp)
    return target


def read_dicom_sr_measurements(sr_file: PathLike) -> dict[str, float]:
    """Read back the numbers of an SR written by :func:`write_dicom_sr`, by index key.

    Args:
        sr_file: the SR file.

    Returns:
        ``{index key: value}`` for every measurement found.

    Raises:
        ValueError: highdicom missing.

    """
    hd = require_highdicom()
    import pydicom

    sr = hd.sr.srread(str(sr_file)) if hasattr(hd.sr, "srread") else pydicom.dcmread(str(sr_file))
    by_code = {(c[0], c[1]): key for key, c in SR_CONCEPTS.items()}
    out: dict[str, float] = {}

    def walk(items: Any) -> None:
        for item in items:
            if item.get("ValueType") == "NUM" and "MeasuredValueSequence" in item:
                name = item.ConceptNameCodeSequence[0]
                key = by_code.get((str(name.CodeValue), str(name.CodingSchemeDesignator)))
                if key is not None:
                    out[key] = float(item.MeasuredValueSequence[0].NumericValue)
            if "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(sr.ContentSequence)
    return out
