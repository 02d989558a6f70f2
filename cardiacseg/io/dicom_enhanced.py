"""Frame geometry of multi-frame DICOM images: Enhanced MR functional groups and classic multi-frame cines.

An *Enhanced MR Image* (SOP Class 1.2.840.10008.5.1.4.1.1.4.1, PS3.3 A.36.2) holds a whole cine in one
file. The per-frame description does not live in top-level attributes but in the *Multi-frame Functional
Groups* module (PS3.3 C.7.6.16): every functional group macro is either in the one item of
``SharedFunctionalGroupsSequence`` (valid for all frames) or in each item of
``PerFrameFunctionalGroupsSequence`` (one item per frame, in pixel-data order). The macros read here:

=============================================  =====================================================
Functional group (PS3.3)                       Attributes
=============================================  =====================================================
Plane Position (Patient), C.7.6.16.2.3         ``PlanePositionSequence/ImagePositionPatient``
Plane Orientation (Patient), C.7.6.16.2.4      ``PlaneOrientationSequence/ImageOrientationPatient``
Pixel Measures, C.7.6.16.2.1                   ``PixelMeasuresSequence/PixelSpacing, SliceThickness``
Cardiac Synchronization, C.7.6.16.2.7          ``CardiacSynchronizationSequence/``
                                               ``NominalCardiacTriggerDelayTime``
Frame Content, C.7.6.16.2.2                    ``FrameContentSequence/TemporalPositionIndex,``
                                               ``InStackPositionNumber, StackID, DimensionIndexValues``
Pixel Value Transformation, C.7.6.16.2.9       ``PixelValueTransformationSequence/RescaleSlope,``
                                               ``RescaleIntercept``
MR Image Frame Type, C.8.13.5.1                ``MRImageFrameTypeSequence/FrameType``
=============================================  =====================================================

The MR-specific functional groups are defined in PS3.3 C.8.13 (Enhanced MR Image module C.8.13.1, MR
functional group macros C.8.13.5). Legacy Converted Enhanced MR (…4.1.1.4.4, PS3.3 A.36.2 /
C.8.13.x) uses the same macros, plus ``UnassignedPerFrameConvertedAttributesSequence`` (C.7.6.16.2.25)
for classic attributes such as ``TriggerTime`` that have no functional group of their own.

Supported, and how:

* **Enhanced / Legacy Converted Enhanced MR** (any frame order): each attribute is looked up in the
  frame's own functional group first and in the shared group second, so a per-frame value overrides
  the shared one and each macro may sit in either place. Rescale slope/intercept default to 1/0 (the
  identity) when neither the groups nor the top level carry them. Frames of several stacks (``StackID``)
  or frame types are all returned; choosing among them is the caller's job.
* **Classic multi-frame** (``NumberOfFrames > 1`` without functional groups, e.g. an older "cine in one
  file" export under the MR Image IOD with the Multi-frame module C.7.6.6): read only as a *single
  slice position over time*: the top-level ``ImagePositionPatient`` / ``ImageOrientationPatient`` are
  shared by every frame, and the frame times come from ``FrameTimeVector`` (cumulative increments,
  C.7.6.5.1.2) or ``FrameTime`` (constant interval), offset by the top-level ``TriggerTime`` when
  present (otherwise times are relative to the first frame).

Refused with :class:`EnhancedDicomError` (a :class:`ValueError` naming the file, what is missing and
for how many frames): an Enhanced file whose frames lack position or orientation in both places, a
``PerFrameFunctionalGroupsSequence`` whose item count differs from ``NumberOfFrames``, malformed
(non-numeric, wrong count, non-finite, non-positive spacing) values, a classic multi-frame file without
IPP/IOP or without frame times, and a classic multi-frame whose ``FrameIncrementPointer`` says the
frames vary by something other than time (e.g. ``SliceLocationVector``: several positions in one file
with no per-frame position).

Geometric consistency (orthonormal orientation, regular slice spacing, a full phase × slice grid) is
not judged here: it belongs to the cine assembly steps that classic single-frame series go through too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag

__all__ = [
    "ENHANCED_MR_SOP_CLASSES",
    "EnhancedDicomError",
    "FrameGeometry",
    "classic_multiframe_geometry",
    "enhanced_frame_geometry",
    "is_classic_multiframe",
    "is_enhanced_multiframe",
]

#: SOP Classes whose images always describe their frames with functional groups (PS3.4 B.5).
ENHANCED_MR_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.3": "Enhanced MR Color Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image Storage",
}

# Functional group sequences whose presence in a functional-groups item marks real content. Some
# classic single-frame exports (the Sunnybrook GE/OsiriX files among them) carry a vestigial
# PerFrameFunctionalGroupsSequence with one empty item: that is not an enhanced image.
_FUNCTIONAL_GROUPS = (
    "PlanePositionSequence",
    "PlaneOrientationSequence",
    "PixelMeasuresSequence",
    "FrameContentSequence",
    "CardiacSynchronizationSequence",
    "PixelValueTransformationSequence",
    "MRImageFrameTypeSequence",
    "UnassignedPerFrameConvertedAttributesSequence",
    "UnassignedSharedConvertedAttributesSequence",
)

_FRAME_TIME = Tag(0x0018, 0x1063)
_FRAME_TIME_VECTOR = Tag(0x0018, 0x1065)

_T = TypeVar("_T")


class EnhancedDicomError(ValueError):
    """A multi-frame DICOM file whose frames cannot be described; the message names the file."""


@dataclass(frozen=True)
class FrameGeometry:
    """Geometry, timing and rescale of one frame of a multi-frame image.

    Attributes:
        frame_index: 0-based index into the first axis of the pixel array (``ds.pixel_array``).
        ipp: ImagePositionPatient of the frame's first pixel (mm, LPS patient coordinates).
        iop: ImageOrientationPatient: row direction cosines, then column direction cosines.
        pixel_spacing: (row spacing, column spacing) in mm, i.e. PixelSpacing as stored; None if absent.
        slice_thickness: SliceThickness in mm; None if absent.
        trigger_ms: NominalCardiacTriggerDelayTime (ms after the R wave), or a frame's own
            TriggerTime (Legacy Converted), or the classic multi-frame frame time; None if unknown.
        temporal_index: FrameContentSequence/TemporalPositionIndex (1-based); None if absent.
        stack_position: FrameContentSequence/InStackPositionNumber (1-based); None if absent.
        rescale_slope: RescaleSlope (1.0 when not given anywhere).
        rescale_intercept: RescaleIntercept (0.0 when not given anywhere).
        stack_id: FrameContentSequence/StackID; None if absent.
        dimension_index_values: FrameContentSequence/DimensionIndexValues; None if absent.
        frame_type: MRImageFrameTypeSequence/FrameType (e.g. ORIGINAL/PRIMARY/M/NONE); None if absent.

    """

    frame_index: int
    ipp: tuple[float, float, float]
    iop: tuple[float, float, float, float, float, float]
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    trigger_ms: float | None
    temporal_index: int | None
    stack_position: int | None
    rescale_slope: float
    rescale_intercept: float
    stack_id: str | None = None
    dimension_index_values: tuple[int, ...] | None = None
    frame_type: tuple[str, ...] | None = None


# --------------------------------------------------------------------------------------------------
# detection


def _number_of_frames(ds: Dataset) -> int | None:
    """Return ``NumberOfFrames`` as an int, or None when absent or unreadable."""
    value = ds.get("NumberOfFrames")
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _has_group_content(ds: Dataset, keyword: str) -> bool:
    """Whether a functional-groups sequence has at least one item holding a known functional group."""
    seq = ds.get(keyword)
    if not seq:
        return False
    return any(any(group in item for group in _FUNCTIONAL_GROUPS) for item in seq)


def is_enhanced_multiframe(ds: pydicom.Dataset) -> bool:
    """Whether ``ds`` describes its frames with functional groups (PS3.3 C.7.6.16).

    True for the Enhanced / Legacy Converted Enhanced MR SOP Classes and for any image whose
    ``PerFrameFunctionalGroupsSequence`` or ``SharedFunctionalGroupsSequence`` holds a functional group.
    A classic single-frame image with a vestigial, empty ``PerFrameFunctionalGroupsSequence`` (seen in
    GE/OsiriX exports, e.g. Sunnybrook) is *not* enhanced.

    Args:
        ds: A dataset, read with or without pixel data.

    Returns:
        True when the frames must be described by :func:`enhanced_frame_geometry`'s functional-group path.

    Example:
        >>> from pydicom.dataset import Dataset
        >>> ds = Dataset()
        >>> ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # classic MR Image Storage
        >>> is_enhanced_multiframe(ds)
        False
        >>> ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
        >>> is_enhanced_multiframe(ds)
        True

    """
    if str(ds.get("SOPClassUID", "")) in ENHANCED_MR_SOP_CLASSES:
        return True
    return _has_group_content(ds, "PerFrameFunctionalGroupsSequence") or _has_group_content(
        ds, "SharedFunctionalGroupsSequence"
    )


def is_classic_multiframe(ds: pydicom.Dataset) -> bool:
    """Whether ``ds`` has ``NumberOfFrames > 1`` but no functional groups (Multi-frame module C.7.6.6).

    Args:
        ds: A dataset, read with or without pixel data.

    Returns:
        True for a classic multi-frame image.

    """
    n = _number_of_frames(ds)
    return n is not None and n > 1 and not is_enhanced_multiframe(ds)


# --------------------------------------------------------------------------------------------------
# value parsing


class _MalformedValueError(Exception):
    """Internal: a value that is present but cannot be used."""


def _floats(value: Any, count: int) -> tuple[float, ...]:
    """Parse a multi-valued numeric element into ``count`` finite floats."""
    items: Sequence[Any] = value if isinstance(value, (list, tuple, MultiValue)) else [value]
    if len(items) != count:
        raise _MalformedValueError(f"{len(items)} values instead of {count}")
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError) as exc:
        raise _MalformedValueError(f"not numeric ({items!r})") from exc
    if not all(math.isfinite(v) for v in out):
        raise _MalformedValueError(f"not finite ({out})")
    return out


def _float(value: Any) -> float:
    return _floats(value, 1)[0]


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise _MalformedValueError(f"not an integer ({value!r})") from exc


def _floats3(value: Any) -> tuple[float, ...]:
    return _floats(value, 3)


def _floats6(value: Any) -> tuple[float, ...]:
    return _floats(value, 6)


def _positive_pair(value: Any) -> tuple[float, float]:
    row, col = _floats(value, 2)
    if row <= 0 or col <= 0:
        raise _MalformedValueError(f"not positive ({row}, {col})")
    return row, col


def _ints(value: Any) -> tuple[int, ...]:
    items: Sequence[Any] = value if isinstance(value, (list, tuple, MultiValue)) else [value]
    return tuple(_int(v) for v in items)


def _strs(value: Any) -> tuple[str, ...]:
    items: Sequence[Any] = value if isinstance(value, (list, tuple, MultiValue)) else [value]
    return tuple(str(v) for v in items)


# --------------------------------------------------------------------------------------------------
# functional groups


def _first_item(ds: Dataset | None, keyword: str) -> Dataset | None:
    """First item of sequence ``keyword`` in ``ds``, or None when the sequence is absent or empty."""
    if ds is None:
        return None
    seq = ds.get(keyword)
    if not seq:
        return None
    item = seq[0]
    return item if isinstance(item, Dataset) else None


def _lookup(
    frame: Dataset | None, shared: Dataset | None, group: str, keyword: str
) -> tuple[Any, bool] | None:
    """Value of ``group/keyword``: the frame's own first, then the shared one.

    Returns:
        (value, found_per_frame), or None when neither place has a non-empty value.

    """
    for where, per_frame in ((frame, True), (shared, False)):
        item = _first_item(where, group)
        if item is not None and keyword in item:
            value = item[keyword].value
            if value is not None and value != "" and not (isinstance(value, list) and not value):
                return value, per_frame
    return None


class _Collector:
    """Collects per-attribute problems over all frames, to raise one message with counts."""

    def __init__(self, path: str, n_frames: int) -> None:
        self.path = path
        self.n_frames = n_frames
        self.missing: dict[str, list[int]] = {}
        self.malformed: dict[str, list[tuple[int, str]]] = {}

    def get(
        self,
        frame_index: int,
        frame: Dataset | None,
        shared: Dataset | None,
        group: str,
        keyword: str,
        parse: Callable[[Any], _T],
        *,
        required: bool,
        fallback: Dataset | None = None,
    ) -> _T | None:
        """Parse ``group/keyword`` for one frame; record a problem and return None when unusable."""
        found = _lookup(frame, shared, group, keyword)
        value: Any
        if found is not None:
            value = found[0]
        elif fallback is not None and keyword in fallback and fallback[keyword].value not in (None, ""):
            value = fallback[keyword].value
        else:
            if required:
                self.missing.setdefault(f"{group}/{keyword}", []).append(frame_index)
            return None
        try:
            return parse(value)
        except _MalformedValueError as exc:
            self.malformed.setdefault(f"{group}/{keyword}", []).append((frame_index, str(exc)))
            return None

    def raise_if_any(self) -> None:
        """Raise one :class:`EnhancedDicomError` listing every problem, with frame counts."""
        lines = [
            f"{len(frames)} of {self.n_frames} frames have no {name} (neither per-frame nor shared)"
            for name, frames in self.missing.items()
        ]
        lines += [
            f"{len(items)} of {self.n_frames} frames have a malformed {name} "
            f"(first: frame {items[0][0]}: {items[0][1]})"
            for name, items in self.malformed.items()
        ]
        if lines:
            raise EnhancedDicomError(f"{self.path}: " + "; ".join(lines))


def _functional_group_geometry(ds: Dataset, path: str, n_frames: int) -> list[FrameGeometry]:
    per_frame_seq = ds.get("PerFrameFunctionalGroupsSequence")
    per_frame: list[Dataset | None]
    if per_frame_seq:
        if len(per_frame_seq) != n_frames:
            raise EnhancedDicomError(
                f"{path}: PerFrameFunctionalGroupsSequence has {len(per_frame_seq)} items but "
                f"NumberOfFrames is {n_frames}"
            )
        per_frame = list(per_frame_seq)
    else:
        per_frame = [None] * n_frames
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    if shared_seq is not None and len(shared_seq) > 1:
        raise EnhancedDicomError(
            f"{path}: SharedFunctionalGroupsSequence has {len(shared_seq)} items (PS3.3 C.7.6.16 allows one)"
        )
    shared: Dataset | None = shared_seq[0] if shared_seq else None

    # Rescale may sit at the top level in some exports; geometry never falls back to the top level.
    top_level_rescale = ds if ("RescaleSlope" in ds or "RescaleIntercept" in ds) else None
    c = _Collector(path, n_frames)
    frames: list[FrameGeometry] = []
    for k, frame in enumerate(per_frame):
        get = partial(c.get, k, frame, shared)
        ipp = get("PlanePositionSequence", "ImagePositionPatient", _floats3, required=True)
        iop = get("PlaneOrientationSequence", "ImageOrientationPatient", _floats6, required=True)
        spacing = get("PixelMeasuresSequence", "PixelSpacing", _positive_pair, required=False)
        thickness = get("PixelMeasuresSequence", "SliceThickness", _float, required=False)
        trigger = get(
            "CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime", _float, required=False
        )
        if trigger is None:  # Legacy Converted Enhanced: the classic TriggerTime, kept per frame
            trigger = get(
                "UnassignedPerFrameConvertedAttributesSequence", "TriggerTime", _float, required=False
            )
        temporal = get("FrameContentSequence", "TemporalPositionIndex", _int, required=False)
        stack_pos = get("FrameContentSequence", "InStackPositionNumber", _int, required=False)
        stack_id = get("FrameContentSequence", "StackID", str, required=False)
        div = get("FrameContentSequence", "DimensionIndexValues", _ints, required=False)
        frame_type = get("MRImageFrameTypeSequence", "FrameType", _strs, required=False)
        rescale = "PixelValueTransformationSequence"
        slope = get(rescale, "RescaleSlope", _float, required=False, fallback=top_level_rescale)
        intercept = get(rescale, "RescaleIntercept", _float, required=False, fallback=top_level_rescale)
        if ipp is None or iop is None:
            continue  # reported by the collector
        frames.append(
            FrameGeometry(
                frame_index=k,
                ipp=(ipp[0], ipp[1], ipp[2]),
                iop=(iop[0], iop[1], iop[2], iop[3], iop[4], iop[5]),
                pixel_spacing=spacing,
                slice_thickness=thickness,
                trigger_ms=trigger,
                temporal_index=temporal,
                stack_position=stack_pos,
                rescale_slope=1.0 if slope is None else slope,
                rescale_intercept=0.0 if intercept is None else intercept,
                stack_id=stack_id,
                dimension_index_values=div,
                frame_type=frame_type,
            )
        )
    c.raise_if_any()
    return frames


# --------------------------------------------------------------------------------------------------
# classic multi-frame


def _increment_pointers(ds: Dataset) -> list[Any]:
    value = ds.get("FrameIncrementPointer")
    if value is None:
        return []
    return [Tag(v) for v in value] if isinstance(value, (list, MultiValue)) else [Tag(value)]


def classic_multiframe_geometry(ds: pydicom.Dataset, path: str) -> list[FrameGeometry]:
    """Frames of a classic multi-frame image read as one slice position over time.

    Supported only when every frame shares the top-level ``ImagePositionPatient`` and
    ``ImageOrientationPatient`` and the frames are times: ``FrameIncrementPointer`` (if present) points to
    ``FrameTime`` or ``FrameTimeVector`` (PS3.3 C.7.6.6), and one of them is present. Frame ``k`` is at
    ``TriggerTime + sum(FrameTimeVector[:k+1])`` or ``TriggerTime + k * FrameTime`` (TriggerTime taken as
    0 when absent: times are then relative to the first frame).

    Args:
        ds: The dataset (pixel data not needed).
        path: The file name, used in error messages.

    Returns:
        One :class:`FrameGeometry` per frame, ``temporal_index`` 1..N, ``stack_position`` None.

    Raises:
        EnhancedDicomError: Position/orientation or frame times missing or malformed, or frames that vary
            by something other than time.

    """
    n = _number_of_frames(ds)
    if n is None or n < 1:
        raise EnhancedDicomError(f"{path}: NumberOfFrames is missing or not a positive integer")
    pointers = _increment_pointers(ds)
    others = [p for p in pointers if p not in (_FRAME_TIME, _FRAME_TIME_VECTOR)]
    if others:
        names = ", ".join(keyword_for_tag(p) or str(p) for p in others)
        raise EnhancedDicomError(
            f"{path}: classic multi-frame image whose {n} frames vary by {names} (FrameIncrementPointer); "
            "only a single position over time (FrameTime / FrameTimeVector) is supported"
        )
    problems: list[str] = []
    geometry: dict[str, tuple[float, ...]] = {}
    for keyword, count in (("ImagePositionPatient", 3), ("ImageOrientationPatient", 6)):
        if keyword not in ds or ds[keyword].value in (None, ""):
            problems.append(f"{n} of {n} frames have no {keyword} (classic multi-frame, top level)")
            continue
        try:
            geometry[keyword] = _floats(ds[keyword].value, count)
        except _MalformedValueError as exc:
            problems.append(f"{n} of {n} frames have a malformed {keyword} ({exc})")
    times: list[float] | None = None
    try:
        base = _float(ds.TriggerTime) if ds.get("TriggerTime") not in (None, "") else 0.0
        if ds.get("FrameTimeVector") not in (None, ""):
            increments = _floats(ds.FrameTimeVector, n)
            times, acc = [], base
            for inc in increments:
                acc += inc
                times.append(acc)
        elif ds.get("FrameTime") not in (None, ""):
            step = _float(ds.FrameTime)
            times = [base + k * step for k in range(n)]
        else:
            problems.append(
                f"{n} of {n} frames have no frame time (neither FrameTimeVector nor FrameTime): "
                "cannot tell the frames are phases of one position"
            )
    except _MalformedValueError as exc:
        problems.append(f"malformed frame timing ({exc})")
    spacing: tuple[float, float] | None = None
    thickness: float | None = None
    slope, intercept = 1.0, 0.0
    try:
        if ds.get("PixelSpacing") not in (None, ""):
            spacing = _positive_pair(ds.PixelSpacing)
        if ds.get("SliceThickness") not in (None, ""):
            thickness = _float(ds.SliceThickness)
        if ds.get("RescaleSlope") not in (None, ""):
            slope = _float(ds.RescaleSlope)
        if ds.get("RescaleIntercept") not in (None, ""):
            intercept = _float(ds.RescaleIntercept)
    except _MalformedValueError as exc:
        problems.append(f"malformed spacing or rescale ({exc})")
    if problems or times is None:
        raise EnhancedDicomError(f"{path}: " + "; ".join(problems))
    ipp, iop = geometry["ImagePositionPatient"], geometry["ImageOrientationPatient"]
    return [
        FrameGeometry(
            frame_index=k,
            ipp=(ipp[0], ipp[1], ipp[2]),
            iop=(iop[0], iop[1], iop[2], iop[3], iop[4], iop[5]),
            pixel_spacing=spacing,
            slice_thickness=thickness,
            trigger_ms=times[k],
            temporal_index=k + 1,
            stack_position=None,
            rescale_slope=slope,
            rescale_intercept=intercept,
        )
        for k in range(n)
    ]


# --------------------------------------------------------------------------------------------------
# entry point


def enhanced_frame_geometry(ds: pydicom.Dataset, path: str) -> list[FrameGeometry]:
    """Describe every frame of a multi-frame image (position, orientation, spacing, timing, rescale).

    Enhanced images (see :func:`is_enhanced_multiframe`) are read from their functional groups
    (PS3.3 C.7.6.16, MR macros C.8.13.5): for each attribute the frame's own
    ``PerFrameFunctionalGroupsSequence`` item wins over ``SharedFunctionalGroupsSequence``. Classic
    multi-frame images go to :func:`classic_multiframe_geometry`. Frames are returned in pixel-data
    order; no sorting is implied or needed (use ``stack_position`` / ``temporal_index`` / ``ipp`` /
    ``trigger_ms`` to arrange them).

    Args:
        ds: The dataset (read with ``stop_before_pixels=True`` is enough).
        path: The file name, used in error messages.

    Returns:
        One :class:`FrameGeometry` per frame, ``frame_index`` 0..NumberOfFrames-1.

    Raises:
        EnhancedDicomError: A single-frame image, an inconsistent frame count, or frames without a
            usable position/orientation (the message names ``path``, the attribute and how many frames).

    Example:
        >>> from pydicom.dataset import Dataset
        >>> from pydicom.sequence import Sequence
        >>> def item(**kw):
        ...     d = Dataset()
        ...     for k, v in kw.items():
        ...         setattr(d, k, v)
        ...     return d
        >>> ds = Dataset()
        >>> ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
        >>> ds.NumberOfFrames = 2
        >>> orient = item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])
        >>> ds.SharedFunctionalGroupsSequence = Sequence([item(PlaneOrientationSequence=Sequence([orient]))])
        >>> ds.PerFrameFunctionalGroupsSequence = Sequence(
        ...     [item(PlanePositionSequence=Sequence([item(ImagePositionPatient=[0, 0, z])])) for z in (0, 8)]
        ... )
        >>> [f.ipp[2] for f in enhanced_frame_geometry(ds, "cine.dcm")]
        [0.0, 8.0]

    """
    n = _number_of_frames(ds)
    if is_enhanced_multiframe(ds):
        if n is None or n < 1:
            raise EnhancedDicomError(f"{path}: enhanced image without a valid NumberOfFrames")
        return _functional_group_geometry(ds, path, n)
    if n is not None and n > 1:
        return classic_multiframe_geometry(ds, path)
    raise EnhancedDicomError(
        f"{path}: not a multi-frame image (no functional groups, NumberOfFrames {n}); "
        "read it as a classic single-frame image"
    )
