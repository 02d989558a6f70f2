"""Enhanced MR multi-frame geometry (functional groups) and the clinical-layout builders.

Real-data tests build their inputs in a temp dir from the shared Sunnybrook study and compare with the
source files' own headers read by pydicom (the independent truth); synthetic tests use hand-set values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from cardiacseg.io.dicom_enhanced import (
    EnhancedDicomError,
    enhanced_frame_geometry,
    is_classic_multiframe,
    is_enhanced_multiframe,
)
from tests.io.dicom_builders import (
    ENHANCED_MR_STORAGE,
    PYDICOM3,
    save_dicom,
    strip_tags,
    write_enhanced_mr,
    write_series_per_slice,
    write_single_phase_stack,
    write_without_preamble,
)

POS_KEY = "PlanePositionSequence/ImagePositionPatient"


def _item(**attrs: object) -> Dataset:
    ds = Dataset()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def _seq(**attrs: object) -> Sequence:
    return Sequence([_item(**attrs)])


# --------------------------------------------------------------------------------------------------
# synthetic: 3 frames of 4x4, hand-set values


def _synthetic(frames: np.ndarray | None = None) -> Dataset:
    """Three frames: two at z=0 (phases 1, 2), one at z=8; rescale only on frame 2; written and re-read."""
    ds = Dataset()
    ds.SOPClassUID = ENHANCED_MR_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.NumberOfFrames = 3
    ds.Rows, ds.Columns = 4, 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SharedFunctionalGroupsSequence = Sequence(
        [
            _item(
                PlaneOrientationSequence=_seq(ImageOrientationPatient=[0, 1, 0, 0, 0, -1]),
                PixelMeasuresSequence=_seq(PixelSpacing=[1.5, 1.25], SliceThickness=8),
                PixelValueTransformationSequence=_seq(RescaleSlope=1, RescaleIntercept=0, RescaleType="US"),
            )
        ]
    )
    per_frame = []
    for z, trigger, temporal, stack_pos in ((0.0, 0.0, 1, 1), (0.0, 40.5, 2, 1), (8.0, 0.0, 1, 2)):
        per_frame.append(
            _item(
                PlanePositionSequence=_seq(ImagePositionPatient=[-10.0, 20.0, z]),
                CardiacSynchronizationSequence=_seq(NominalCardiacTriggerDelayTime=trigger),
                FrameContentSequence=_seq(
                    StackID="1",
                    InStackPositionNumber=stack_pos,
                    TemporalPositionIndex=temporal,
                    DimensionIndexValues=[1, stack_pos, temporal],
                ),
            )
        )
    per_frame[2].PixelValueTransformationSequence = _seq(
        RescaleSlope=2.5, RescaleIntercept=-7, RescaleType="US"
    )
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    pixels = np.arange(48, dtype=np.uint16).reshape(3, 4, 4) if frames is None else frames
    ds.PixelData = pixels.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = BytesIO()
    save_dicom(ds, buffer)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def test_synthetic_three_frames() -> None:
    ds = _synthetic()
    assert is_enhanced_multiframe(ds) and not is_classic_multiframe(ds)
    frames = enhanced_frame_geometry(ds, "tiny.dcm")
    assert [f.frame_index for f in frames] == [0, 1, 2]
    assert [f.ipp for f in frames] == [(-10.0, 20.0, 0.0), (-10.0, 20.0, 0.0), (-10.0, 20.0, 8.0)]
    assert all(f.iop == (0.0, 1.0, 0.0, 0.0, 0.0, -1.0) for f in frames)
    assert all(f.pixel_spacing == (1.5, 1.25) and f.slice_thickness == 8.0 for f in frames)
    assert [f.trigger_ms for f in frames] == [0.0, 40.5, 0.0]
    assert [f.temporal_index for f in frames] == [1, 2, 1]
    assert [f.stack_position for f in frames] == [1, 1, 2]
    assert [f.dimension_index_values for f in frames] == [(1, 1, 1), (1, 1, 2), (1, 2, 1)]
    assert [f.stack_id for f in frames] == ["1", "1", "1"]
    # the per-frame rescale of frame 2 overrides the shared identity
    assert [(f.rescale_slope, f.rescale_intercept) for f in frames] == [(1.0, 0.0), (1.0, 0.0), (2.5, -7.0)]
    assert np.array_equal(ds.pixel_array[2], np.arange(32, 48).reshape(4, 4))


def test_synthetic_per_frame_orientation_and_spacing_override_shared() -> None:
    ds = _synthetic()
    ds.PerFrameFunctionalGroupsSequence[1].PlaneOrientationSequence = _seq(
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0]
    )
    ds.PerFrameFunctionalGroupsSequence[1].PixelMeasuresSequence = _seq(PixelSpacing=[0.7, 0.7])
    frames = enhanced_frame_geometry(ds, "tiny.dcm")
    assert frames[1].iop == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert frames[1].pixel_spacing == (0.7, 0.7)
    assert frames[1].slice_thickness == 8.0  # not in the per-frame item: the shared value still applies
    assert frames[0].iop == frames[2].iop == (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def test_synthetic_groups_only_per_frame_or_only_shared() -> None:
    ds = _synthetic()
    # move orientation to every frame and positions to the shared group: both places are valid
    shared = ds.SharedFunctionalGroupsSequence[0]
    iop = shared.PlaneOrientationSequence
    del shared.PlaneOrientationSequence
    shared.PlanePositionSequence = _seq(ImagePositionPatient=[1, 2, 3])
    for item in ds.PerFrameFunctionalGroupsSequence:
        item.PlaneOrientationSequence = iop
        del item.PlanePositionSequence
    frames = enhanced_frame_geometry(ds, "tiny.dcm")
    assert all(f.ipp == (1.0, 2.0, 3.0) and f.iop[:3] == (0.0, 1.0, 0.0) for f in frames)


def test_synthetic_missing_position_names_file_and_count() -> None:
    ds = _synthetic()
    for item in ds.PerFrameFunctionalGroupsSequence[:2]:
        del item.PlanePositionSequence
    with pytest.raises(EnhancedDicomError, match=rf"^tiny\.dcm: 2 of 3 frames have no {POS_KEY} \(neither"):
        enhanced_frame_geometry(ds, "tiny.dcm")
    assert issubclass(EnhancedDicomError, ValueError)


def test_synthetic_malformed_values_and_frame_count() -> None:
    ds = _synthetic()
    ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = [0, 1]
    with pytest.raises(
        EnhancedDicomError, match=r"3 of 3 frames have a malformed PixelMeasuresSequence/PixelSpacing"
    ):
        enhanced_frame_geometry(ds, "tiny.dcm")
    ds = _synthetic()
    ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient = [1, 2]
    with pytest.raises(EnhancedDicomError, match=r"1 of 3 frames have a malformed .*2 values instead of 3"):
        enhanced_frame_geometry(ds, "tiny.dcm")
    ds = _synthetic()
    ds.NumberOfFrames = 4
    with pytest.raises(EnhancedDicomError, match=r"has 3 items but NumberOfFrames is 4"):
        enhanced_frame_geometry(ds, "tiny.dcm")


def test_legacy_converted_trigger_time_per_frame() -> None:
    ds = _synthetic()
    for item, trigger in zip(ds.PerFrameFunctionalGroupsSequence, (11.0, 22.0, 33.0), strict=True):
        del item.CardiacSynchronizationSequence
        item.UnassignedPerFrameConvertedAttributesSequence = _seq(TriggerTime=trigger)
    assert [f.trigger_ms for f in enhanced_frame_geometry(ds, "x.dcm")] == [11.0, 22.0, 33.0]


def test_single_frame_with_vestigial_per_frame_sequence_is_not_enhanced() -> None:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.PerFrameFunctionalGroupsSequence = Sequence([Dataset()])  # as in the Sunnybrook GE/OsiriX files
    assert not is_enhanced_multiframe(ds) and not is_classic_multiframe(ds)
    with pytest.raises(EnhancedDicomError, match="not a multi-frame image"):
        enhanced_frame_geometry(ds, "single.dcm")


def _classic_multiframe(**attrs: object) -> Dataset:
    ds = _item(
        SOPClassUID="1.2.840.10008.5.1.4.1.1.4",
        NumberOfFrames=4,
        ImagePositionPatient=[5, 6, 7],
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        PixelSpacing=[1.2, 1.1],
        SliceThickness=6,
    )
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def test_classic_multiframe_single_position_over_time() -> None:
    ds = _classic_multiframe(FrameTime=30, FrameIncrementPointer=0x00181063, TriggerTime=10)
    assert is_classic_multiframe(ds) and not is_enhanced_multiframe(ds)
    frames = enhanced_frame_geometry(ds, "old.dcm")
    assert [f.trigger_ms for f in frames] == [10.0, 40.0, 70.0, 100.0]
    assert [f.temporal_index for f in frames] == [1, 2, 3, 4]
    assert all(f.ipp == (5.0, 6.0, 7.0) and f.pixel_spacing == (1.2, 1.1) for f in frames)
    vector = _classic_multiframe(FrameTimeVector=[0, 25, 35, 30], FrameIncrementPointer=0x00181065)
    assert [f.trigger_ms for f in enhanced_frame_geometry(vector, "old.dcm")] == [0.0, 25.0, 60.0, 90.0]


def test_classic_multiframe_refusals() -> None:
    with pytest.raises(EnhancedDicomError, match=r"old\.dcm: 4 of 4 frames have no frame time"):
        enhanced_frame_geometry(_classic_multiframe(), "old.dcm")
    by_position = _classic_multiframe(FrameTime=30, FrameIncrementPointer=0x00201041)
    with pytest.raises(EnhancedDicomError, match="vary by SliceLocation"):
        enhanced_frame_geometry(by_position, "old.dcm")
    no_ipp = _classic_multiframe(FrameTime=30)
    del no_ipp.ImagePositionPatient
    with pytest.raises(EnhancedDicomError, match="4 of 4 frames have no ImagePositionPatient"):
        enhanced_frame_geometry(no_ipp, "old.dcm")


# --------------------------------------------------------------------------------------------------
# real data: the Sunnybrook cine rebuilt as one Enhanced MR file


def _tree_hash(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
    }


@dataclass(frozen=True)
class Source:
    folder: Path
    files: dict[Path, Dataset]  # every source image, read by pydicom: the independent truth
    hashes: dict[str, str]


@pytest.fixture(scope="module")
def source(sunnybrook_dir: Path) -> Source:
    folder = sunnybrook_dir / "dicoms" / "SCD0000101"
    if not folder.is_dir():
        pytest.skip(f"real data not available: {folder} is missing")
    files: dict[Path, Dataset] = {f: pydicom.dcmread(f) for f in sorted(folder.glob("*.dcm"))}
    return Source(folder, files, _tree_hash(folder))


def _key(ipp: tuple[float, ...], trigger_ms: float | None) -> tuple[float, ...]:
    assert trigger_ms is not None
    return (*(round(v, 3) for v in ipp), round(trigger_ms, 2))


def _by_position_and_time(files: dict[Path, Dataset]) -> dict[tuple[float, ...], Path]:
    """Source files keyed by their own (ImagePositionPatient, TriggerTime): one file per key."""
    table = {
        _key(tuple(float(v) for v in ds.ImagePositionPatient), float(ds.TriggerTime)): f
        for f, ds in files.items()
    }
    assert len(table) == len(files)
    return table


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("order", "shared_geometry", "syntax"),
    [("slice_major", True, ExplicitVRLittleEndian), ("random", False, ImplicitVRLittleEndian)],
)
def test_real_enhanced_frames_match_source_headers_and_pixels(
    source: Source, tmp_path: Path, order: str, shared_geometry: bool, syntax: str
) -> None:
    files = source.files
    out = write_enhanced_mr(
        source.folder,
        tmp_path / "cine.dcm",
        shared_geometry=shared_geometry,
        transfer_syntax=syntax,
        frame_order=order,
        seed=3,
    )
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == ENHANCED_MR_STORAGE and ds.file_meta.TransferSyntaxUID == syntax
    assert ds.preamble is not None and ds.PatientName == "Anonymous"
    assert is_enhanced_multiframe(ds)
    frames = enhanced_frame_geometry(ds, str(out))
    assert len(frames) == 240 == int(ds.NumberOfFrames)
    pixels = ds.pixel_array
    table = _by_position_and_time(files)
    used = set()
    for frame in frames:
        f = table[_key(frame.ipp, frame.trigger_ms)]
        src = files[f]
        used.add(f)
        assert np.allclose(frame.iop, [float(v) for v in src.ImageOrientationPatient], atol=1e-6)
        assert frame.pixel_spacing == tuple(float(v) for v in src.PixelSpacing)
        assert frame.slice_thickness == float(src.SliceThickness)
        assert (frame.rescale_slope, frame.rescale_intercept) == (1.0, 0.0)
        assert np.array_equal(pixels[frame.frame_index], src.pixel_array), (
            f"pixels of frame {frame.frame_index}"
        )
        assert pixels.dtype == src.pixel_array.dtype
    assert len(used) == 240
    # the in-file indices are consistent with the source numbering (N = (slice-1)*20 + phase)
    instance = {
        frame.frame_index: int(files[table[_key(frame.ipp, frame.trigger_ms)]].InstanceNumber)
        for frame in frames[:40]
    }
    by_slice: dict[int, set[int]] = {}
    for frame in frames[:40]:
        assert frame.stack_position is not None
        by_slice.setdefault(frame.stack_position, set()).add((instance[frame.frame_index] - 1) // 20)
    assert all(len(s) == 1 for s in by_slice.values())
    if order == "random":
        assert [f.stack_position for f in frames[:20]] != sorted(f.stack_position or 0 for f in frames[:20])


@pytest.fixture(scope="module")
def enhanced(source: Source, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_enhanced_mr(source.folder, tmp_path_factory.mktemp("enh") / "cine.dcm")


@pytest.mark.realdata
def test_real_per_frame_override(enhanced: Path) -> None:
    ds = pydicom.dcmread(enhanced, stop_before_pixels=True)
    shared_iop = tuple(
        float(v) for v in ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0][0x00200037].value
    )
    item = ds.PerFrameFunctionalGroupsSequence[7]
    item.PlaneOrientationSequence = _seq(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])
    item.PixelMeasuresSequence = _seq(PixelSpacing=[0.9, 0.8])
    frames = enhanced_frame_geometry(ds, str(enhanced))
    assert frames[7].iop == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert frames[7].pixel_spacing == (0.9, 0.8)
    assert frames[7].slice_thickness == 10.0  # shared value, not overridden
    assert all(f.iop == shared_iop for i, f in enumerate(frames) if i != 7)


@pytest.mark.realdata
def test_real_missing_position_is_named(enhanced: Path) -> None:
    ds = pydicom.dcmread(enhanced, stop_before_pixels=True)
    for item in ds.PerFrameFunctionalGroupsSequence:
        del item.PlanePositionSequence
    expected = f"{enhanced}: 240 of 240 frames have no {POS_KEY} (neither per-frame nor shared)"
    with pytest.raises(EnhancedDicomError) as info:
        enhanced_frame_geometry(ds, str(enhanced))
    assert str(info.value) == expected
    del ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence
    with pytest.raises(EnhancedDicomError, match=r"240 of 240 frames have no PlaneOrientationSequence"):
        enhanced_frame_geometry(ds, str(enhanced))


@pytest.mark.realdata
def test_real_classic_file_is_not_enhanced(source: Source) -> None:
    files = source.files
    ds = next(iter(files.values()))
    assert "PerFrameFunctionalGroupsSequence" in ds  # the vestigial, empty sequence of this export
    assert not is_enhanced_multiframe(ds) and not is_classic_multiframe(ds)


# --------------------------------------------------------------------------------------------------
# real data: classic layout builders


@pytest.fixture(scope="module")
def three_slices(source: Source, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Slices 1-3 (files 1..60, N = (slice-1)*20 + phase) linked into a temp folder: the builders' input."""
    folder = tmp_path_factory.mktemp("three_slices")
    for n in range(1, 61):
        (folder / f"{n}.dcm").symlink_to(source.folder / f"{n}.dcm")
    return folder


def _positions(headers: Iterable[Dataset]) -> set[tuple[float, ...]]:
    return {tuple(float(v) for v in h.ImagePositionPatient) for h in headers}


@pytest.mark.realdata
def test_write_without_preamble(source: Source, three_slices: Path, tmp_path: Path) -> None:
    out = write_without_preamble(three_slices, tmp_path / "raw")
    written = sorted(out.iterdir())
    assert len(written) == 60
    for f in written[:5]:
        raw = f.read_bytes()
        assert raw[128:132] != b"DICM" and raw[:4] == b"\x08\x00\x05\x00"  # (0008,0005) first, implicit LE
        with pytest.raises(pydicom.errors.InvalidDicomError):
            pydicom.dcmread(f)
        ds = pydicom.dcmread(f, force=True)
        assert ds.preamble is None and "TransferSyntaxUID" not in ds.file_meta
        encoding = ds.original_encoding if PYDICOM3 else (ds.is_implicit_VR, ds.is_little_endian)
        assert encoding == (True, True)  # implicit VR, little endian
        src = source.files[source.folder / f.name]
        assert ds.ImagePositionPatient == src.ImagePositionPatient and ds.TriggerTime == src.TriggerTime
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian  # pixels decode once the syntax is known
        assert np.array_equal(ds.pixel_array, src.pixel_array)


@pytest.mark.realdata
def test_write_series_per_slice(source: Source, three_slices: Path, tmp_path: Path) -> None:
    inputs = [source.files[source.folder / f.name] for f in three_slices.iterdir()]
    out = write_series_per_slice(three_slices, tmp_path / "study")
    assert sorted(p.name for p in out.iterdir()) == ["sax_1", "sax_2", "sax_3"]
    series, positions = set(), set()
    for k in (1, 2, 3):
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted((out / f"sax_{k}").iterdir())]
        assert len(headers) == 20
        assert len({str(h.SeriesInstanceUID) for h in headers}) == 1
        assert {int(h.SeriesNumber) for h in headers} == {k}
        assert len(_positions(headers)) == 1
        assert sorted(int(h.InstanceNumber) for h in headers) == list(range(1, 21))
        assert {str(h.StudyInstanceUID) for h in headers} == {str(d.StudyInstanceUID) for d in inputs}
        series.add(str(headers[0].SeriesInstanceUID))
        positions |= _positions(headers)
    assert len(series) == 3 and not series & {str(d.SeriesInstanceUID) for d in inputs}
    assert positions == _positions(inputs)


@pytest.mark.realdata
def test_write_single_phase_stack(source: Source, three_slices: Path, tmp_path: Path) -> None:
    inputs = [source.files[source.folder / f.name] for f in three_slices.iterdir()]
    out = write_single_phase_stack(three_slices, tmp_path / "lge")
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(out.iterdir())]
    assert len(headers) == 3
    assert {(str(h.SeriesDescription), str(h.SequenceName), int(h.SeriesNumber)) for h in headers} == {
        ("LGE", "LGE_PSIR", 100)
    }
    assert len({str(h.SeriesInstanceUID) for h in headers}) == 1
    assert str(headers[0].SeriesInstanceUID) not in {str(d.SeriesInstanceUID) for d in inputs}
    assert {str(h.StudyInstanceUID) for h in headers} == {str(d.StudyInstanceUID) for d in inputs}
    assert _positions(headers) == _positions(inputs)
    for h in headers:  # the first phase of its own position, acquired later than the cine
        same_position = [d for d in inputs if _positions([d]) == _positions([h])]
        assert float(h.TriggerTime) == min(float(d.TriggerTime) for d in same_position)
        assert str(h.SeriesTime) > str(same_position[0].SeriesTime)


@pytest.mark.realdata
def test_strip_tags(source: Source, three_slices: Path, tmp_path: Path) -> None:
    out = strip_tags(three_slices, tmp_path / "noipp", ["ImagePositionPatient", 0x00200037])
    written = sorted(out.iterdir())
    assert len(written) == 60
    for f in written[:5]:
        ds = pydicom.dcmread(f)
        assert "ImagePositionPatient" not in ds and "ImageOrientationPatient" not in ds
        assert "PixelSpacing" in ds and np.array_equal(
            ds.pixel_array, source.files[source.folder / f.name].pixel_array
        )
    one = strip_tags(source.folder / "1.dcm", tmp_path / "one.dcm", ["PixelSpacing"])
    assert "PixelSpacing" not in pydicom.dcmread(one)
    assert "PixelSpacing" in pydicom.dcmread(source.folder / "1.dcm")
    with pytest.raises(ValueError, match="inside the source"):
        strip_tags(source.folder, source.folder / "x", ["PixelSpacing"])


@pytest.mark.realdata
def test_inputs_unchanged(source: Source) -> None:
    assert _tree_hash(source.folder) == source.hashes
