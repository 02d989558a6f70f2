"""The DICOM reader's steps on small synthetic frames whose right answer is known by construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from cardiacseg.enums import CurationKind
from cardiacseg.io.dicom import (
    DicomReadError,
    align_phases,
    assemble_images,
    build_affine,
    check_slice_spacing,
    choose_cine_stack,
    drop_repeats,
    parse_dicom_files,
    read_dicom_cine,
)
from cardiacseg.io.study import CurationReport
from tests.io.dicom_builders import save_dicom

STUDY_UID = generate_uid()


def _write(
    folder: Path,
    name: str,
    *,
    z_mm: float,
    trigger: float | None,
    series: tuple[str, int],
    value: int,
    instance: int,
    patient: str = "P1",
    time: str = "100000",
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY"),
    column_sign: float = 1.0,
) -> Path:
    """A 4x4 MR image at z = ``z_mm`` (axial, 1.5 mm pixels) whose pixels all equal ``value``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientID, ds.StudyInstanceUID = patient, STUDY_UID
    ds.SeriesInstanceUID, ds.SeriesNumber = series
    ds.InstanceNumber, ds.AcquisitionTime = instance, time
    ds.ImageOrientationPatient = [1, 0, 0, 0, column_sign, 0]
    ds.ImageType = list(image_type)
    ds.ImagePositionPatient = [-3.0, -3.0, z_mm]
    ds.PixelSpacing = [1.5, 1.5]
    ds.SliceThickness = 8
    if trigger is not None:
        ds.TriggerTime = trigger
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.full((4, 4), value, np.uint16).tobytes()
    path = folder / name
    save_dicom(ds, path)
    return path


def _cine(folder: Path, n_slices: int = 3, n_phases: int = 4, series: tuple[str, int] | None = None) -> None:
    series = series or (generate_uid(), 3)
    for k in range(n_slices):
        for t in range(n_phases):
            _write(
                folder,
                f"c{k}_{t}.dcm",
                z_mm=8.0 * k,
                trigger=40.0 * t,
                series=series,
                value=100 * k + t,
                instance=k * n_phases + t + 1,
            )


def test_parse_and_choose_keep_a_single_phase_stack_apart(tmp_path: Path) -> None:
    _cine(tmp_path)
    lge = (generate_uid(), 9)
    for k in range(3):  # same positions, one image each, a later series
        _write(tmp_path, f"lge{k}.dcm", z_mm=8.0 * k, trigger=None, series=lge, value=999, instance=k + 1)
    report = CurationReport()
    frames = parse_dicom_files(sorted(str(p) for p in tmp_path.iterdir()), report, tmp_path)
    assert len(frames) == 15
    chosen, others = choose_cine_stack(frames, report)
    assert len(chosen) == 12 and len(others) == 3 and {f.series_number for f in others} == {9}
    assert report.has(CurationKind.EXTRA_SERIES)
    study = read_dicom_cine(tmp_path)
    assert study.image.shape == (4, 3, 4, 4) and not (study.image == 999).any()


def test_drop_repeats_keeps_the_later_acquisition_of_the_same_kind(tmp_path: Path) -> None:
    _cine(tmp_path)
    retake = (generate_uid(), 7)
    for t in range(4):  # slice 1 acquired again, later
        _write(
            tmp_path, f"r{t}.dcm", z_mm=8.0, trigger=40.0 * t, series=retake, value=500 + t, instance=t + 1
        )
    report = CurationReport()
    frames = parse_dicom_files(sorted(str(p) for p in tmp_path.iterdir()), report, tmp_path)
    chosen, _ = choose_cine_stack(frames, report)
    assert len(chosen) == 16  # the retake is the same kind: it joins the stack
    slices, pos = drop_repeats(chosen, chosen[0].normal, report)
    assert pos == pytest.approx([0.0, 8.0, 16.0])
    assert {f.series_number for f in slices[1]} == {7}
    assert len(report.of_kind(CurationKind.REPEATED_SLICE)) == 1


def test_align_phases_records_the_order_source_and_drops_missing_phases(tmp_path: Path) -> None:
    _cine(tmp_path)
    (tmp_path / "c2_1.dcm").unlink()  # slice 2 misses phase 1
    report = CurationReport()
    frames = parse_dicom_files(sorted(str(p) for p in tmp_path.iterdir()), report, tmp_path)
    slices, pos = drop_repeats(frames, frames[0].normal, report)
    assignment, kept, times = align_phases(slices, pos, report, tmp_path)
    assert kept == [0, 2, 3] and times == pytest.approx((0.0, 80.0, 120.0))
    assert assignment[2][2].trigger_ms == 80.0
    (order,) = report.of_kind(CurationKind.PHASE_ORDER)
    assert order.severity == "info" and "TriggerTime" in order.message
    assert report.has(CurationKind.MISSING_PHASE)


def test_align_phases_without_trigger_times_warns_and_uses_instance_numbers(tmp_path: Path) -> None:
    series = (generate_uid(), 3)
    for t in (2, 0, 3, 1):  # written out of order
        _write(tmp_path, f"u{t}.dcm", z_mm=0.0, trigger=None, series=series, value=t, instance=t + 1)
        _write(tmp_path, f"v{t}.dcm", z_mm=8.0, trigger=None, series=series, value=10 + t, instance=t + 11)
    study = read_dicom_cine(tmp_path)
    assert study.image[:, 0, 0, 0].tolist() == [0, 1, 2, 3] and study.phase_times_ms is None
    (order,) = study.curation.of_kind(CurationKind.PHASE_ORDER)
    assert order.severity == "warning" and "cannot be verified" in order.message


def test_slice_spacing_gap_and_affine_by_hand(tmp_path: Path) -> None:
    report = CurationReport()
    assert check_slice_spacing([[], [], [], []], [0.0, 8.0, 24.0, 32.0], report) == 8.0
    (gap,) = report.of_kind(CurationKind.MISSING_SLICE)
    assert "1 slice(s) missing" in gap.message
    _cine(tmp_path, n_slices=2, n_phases=2)
    frames = parse_dicom_files(sorted(str(p) for p in tmp_path.iterdir()), CurationReport(), tmp_path)
    spacing, affine = build_affine(frames[0], 8.0, np.array([-3.0, -3.0, 0.0])) or (None, None)
    assert spacing == (8.0, 1.5, 1.5)
    # axial, rows along +y (posterior), columns along +x (left) in LPS -> RAS flips x and y
    np.testing.assert_allclose(
        affine, [[-1.5, 0, 0, 3.0], [0, -1.5, 0, 3.0], [0, 0, 8.0, 0.0], [0, 0, 0, 1]], atol=1e-12
    )


def test_assemble_images_places_every_pixel(tmp_path: Path) -> None:
    _cine(tmp_path)
    report = CurationReport()
    frames = parse_dicom_files(sorted(str(p) for p in tmp_path.iterdir()), report, tmp_path)
    slices, pos = drop_repeats(frames, frames[0].normal, report)
    assignment, kept, _ = align_phases(slices, pos, report, tmp_path)
    image, files, instances, origin = assemble_images(
        slices, assignment, kept, pos, frames[0], report, tmp_path
    )
    expected = np.asarray([[100 * k + t for k in range(3)] for t in range(4)], np.float32)
    np.testing.assert_array_equal(image[:, :, 2, 1], expected)
    assert instances[3, 2] == 2 * 4 + 3 + 1 and files[3][2].endswith("c2_3.dcm")
    np.testing.assert_allclose(origin, [-3.0, -3.0, 0.0])


def test_two_patients_in_one_folder_are_never_one_stack(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    _cine(tmp_path / "a")
    series = (generate_uid(), 3)
    for k in range(3):
        for t in range(4):
            _write(
                tmp_path / "a",
                f"p2_{k}_{t}.dcm",
                z_mm=8.0 * k + 2,
                trigger=40.0 * t,
                series=series,
                value=7,
                instance=k * 4 + t + 1,
                patient="P2",
            )
    study = read_dicom_cine(tmp_path / "a")
    sevens = (study.image == 7).all(axis=(2, 3))  # patient P2's images
    assert study.n_slices == 3 and (sevens.all() or not sevens.any())
    assert "other series" in study.curation.of_kind(CurationKind.EXTRA_SERIES)[0].message


def test_declared_huge_image_is_refused_before_decoding(tmp_path: Path) -> None:
    p = _write(tmp_path, "big.dcm", z_mm=0, trigger=0, series=(generate_uid(), 1), value=1, instance=1)
    from pydicom import dcmread

    ds = dcmread(p)
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 1000
    ds.save_as(p)
    with pytest.raises(ValueError, match=r"big\.dcm.*GiB"):
        parse_dicom_files([str(p)], CurationReport(), tmp_path)


def test_no_images_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DicomReadError, match="no DICOM images found"):
        read_dicom_cine(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_dicom_cine(tmp_path / "nope")


def test_slices_with_different_phase_counts_are_refused(tmp_path: Path) -> None:
    series = (generate_uid(), 3)
    for k, n in enumerate((10, 10, 13)):  # slice 2 re-binned to 13 phases over the same cycle
        for t in range(n):
            _write(
                tmp_path,
                f"m{k}_{t}.dcm",
                z_mm=8.0 * k,
                trigger=600.0 * t / n,
                series=series,
                value=t,
                instance=t + 1,
            )
    with pytest.raises(DicomReadError, match=r"different numbers of phases \(10 phases in 2 slice\(s\), 13"):
        read_dicom_cine(tmp_path)


def test_another_image_kind_in_the_cine_series_is_kept_apart(tmp_path: Path) -> None:
    series = (generate_uid(), 3)
    _cine(tmp_path, series=series)
    for k in range(3):  # an LGE image per position appended to the cine's own series, same trigger as phase 1
        _write(
            tmp_path,
            f"lge{k}.dcm",
            z_mm=8.0 * k,
            trigger=40.0,
            series=series,
            value=999,
            instance=100 + k,
            image_type=("DERIVED", "PRIMARY", "PSIR"),
        )
    study = read_dicom_cine(tmp_path)
    assert study.image.shape == (4, 3, 4, 4) and not (study.image == 999).any()
    (extra,) = study.curation.of_kind(CurationKind.EXTRA_SERIES)
    assert len(extra.files) == 3 and "PSIR" in extra.message


def test_reversed_slice_normal_is_a_warning(tmp_path: Path) -> None:
    series = (generate_uid(), 3)
    for k in range(3):
        for t in range(2):
            _write(
                tmp_path,
                f"c{k}_{t}.dcm",
                z_mm=8.0 * k,
                trigger=40.0 * t,
                series=series,
                value=1,
                instance=k * 2 + t + 1,
                column_sign=-1.0 if k == 1 else 1.0,
            )
    study = read_dicom_cine(tmp_path)
    (mirrored,) = study.curation.of_kind(CurationKind.MIRRORED_IMAGE)
    assert mirrored.severity == "warning" and len(mirrored.files) == 2
