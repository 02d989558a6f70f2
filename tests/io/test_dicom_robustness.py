"""DICOM robustness on real Sunnybrook files copied to a temporary folder."""

from __future__ import annotations

import hashlib
import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from cardiacseg.enums import CurationKind
from cardiacseg.io import DicomReadError, list_dicom_series, read_dicom_cine, read_study

pytestmark = pytest.mark.realdata

PHASES = 20


def _instance(slice_1based: int, phase_1based: int) -> int:
    return (slice_1based - 1) * PHASES + phase_1based


def _hash_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def original(sunnybrook_dir: Path):  # type: ignore[no-untyped-def]
    folder = sunnybrook_dir / "dicoms" / "SCD0000101"
    before = _hash_tree(folder)
    study = read_dicom_cine(folder)
    assert _hash_tree(folder) == before  # the shared input is never modified
    return folder, study


@pytest.fixture()
def copy(original, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    dst = tmp_path / "study"
    shutil.copytree(original[0], dst)
    return dst


def _z_of_instance(study, instance: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    t, z = np.argwhere(study.instance_numbers == instance)[0]
    return int(t), int(z)


def test_shuffled_names_stray_file_and_inputs_unchanged(original, copy: Path) -> None:  # type: ignore[no-untyped-def]
    files = sorted(copy.iterdir())
    names = [f"img_{i:04d}" for i in range(len(files))]
    random.Random(7).shuffle(names)
    sub = copy / "nested"
    sub.mkdir()
    for f, n in zip(files, names, strict=True):
        f.rename(sub / n)
    (copy / "notes.txt").write_text("not a DICOM file\n")
    before = _hash_tree(copy)
    study = read_dicom_cine(copy)
    assert _hash_tree(copy) == before
    np.testing.assert_array_equal(study.image, original[1].image)
    assert study.spacing_mm == pytest.approx(original[1].spacing_mm)
    ignored = study.curation.of_kind(CurationKind.IGNORED_FILE)
    assert ignored and any(f.endswith("notes.txt") for f in ignored[0].files)


def test_second_series_is_reported_and_selectable(original, copy: Path) -> None:  # type: ignore[no-untyped-def]
    # a single-slice "long-axis" cine: same images, orthogonal orientation, own series
    uid = generate_uid()
    out = copy / "la"
    out.mkdir()
    for p in range(1, PHASES + 1):
        ds = pydicom.dcmread(copy / f"{_instance(6, p)}.dcm")
        ds.SeriesInstanceUID = uid
        ds.SeriesNumber = 400
        ds.SOPInstanceUID = generate_uid()
        iop = [float(v) for v in ds.ImageOrientationPatient]
        normal = np.cross(iop[:3], iop[3:])
        ds.ImageOrientationPatient = [*iop[:3], *[float(v) for v in normal]]
        ds.save_as(out / f"la_{p}.dcm")
    before = _hash_tree(copy)
    study = read_dicom_cine(copy)
    assert _hash_tree(copy) == before
    assert study.image.shape == original[1].image.shape
    extra = study.curation.of_kind(CurationKind.EXTRA_SERIES)
    assert extra and uid in extra[0].message and len(extra[0].files) == PHASES
    series = list_dicom_series(copy)
    assert {s.series_uid for s in series} >= {uid} and len(series) == 2
    la = read_dicom_cine(copy, series_uid=uid)
    assert la.image.shape == (PHASES, 1, 256, 256)
    with pytest.raises(DicomReadError, match="not found"):
        read_dicom_cine(copy, series_uid="1.2.3.4")


def test_deleted_slice_is_reported(original, copy: Path) -> None:  # type: ignore[no-untyped-def]
    for p in range(1, PHASES + 1):
        (copy / f"{_instance(6, p)}.dcm").unlink()
    study = read_dicom_cine(copy)
    assert study.n_slices == original[1].n_slices - 1
    issues = study.curation.of_kind(CurationKind.MISSING_SLICE)
    assert len(issues) == 1 and issues[0].severity == "warning"
    assert "1 slice(s) missing" in issues[0].message
    # the neighbours of the gap are named: slices 5 and 7 of the acquisition
    named = {int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber) for f in issues[0].files}
    assert {(n - 1) // PHASES + 1 for n in named} == {5, 7}
    assert study.spacing_mm is not None and study.spacing_mm[0] == pytest.approx(10.0, abs=0.05)


def test_deleted_phase_is_dropped_and_reported(original, copy: Path) -> None:  # type: ignore[no-untyped-def]
    gone = _instance(3, 7)
    (copy / f"{gone}.dcm").unlink()
    study = read_dicom_cine(copy)
    assert study.n_phases == PHASES - 1 and study.n_slices == original[1].n_slices
    issues = study.curation.of_kind(CurationKind.MISSING_PHASE)
    assert len(issues) == 1 and "[6]" in issues[0].message  # phase 7 (1-based) = index 6
    assert len(issues[0].files) == PHASES - 1
    assert study.phase_ids == tuple(i for i in range(PHASES) if i != 6)
    # every remaining phase holds the original pixels
    orig = original[1]
    for t, pid in enumerate(study.phase_ids):
        np.testing.assert_array_equal(study.image[t], orig.image[pid])


def test_truncated_file_raises_with_name(copy: Path) -> None:
    victim = copy / f"{_instance(4, 2)}.dcm"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(DicomReadError, match=victim.name):
        read_study(copy)


@pytest.mark.parametrize("damage", ["empty", "header_only", "pixel_data_removed"])
def test_damaged_image_file_is_an_error_not_a_dropped_phase(copy: Path, damage: str) -> None:
    """An emptied file, one cut before its pixel data, or one stripped of it: refused, naming the file.

    Before, each was listed as "not a DICOM image" and its phase dropped from every slice (17 of 20 kept),
    which moves ED/ES and can change EF.
    """
    victim = copy / f"{_instance(4, 2)}.dcm"
    ds = pydicom.dcmread(victim)
    if damage == "empty":
        victim.write_bytes(b"")
    elif damage == "header_only":
        data = victim.read_bytes()
        victim.write_bytes(data[: data.rfind(b"\xe0\x7f\x10\x00")])  # up to the (7FE0,0010) Pixel Data tag
    else:
        del ds.PixelData
        ds.save_as(victim)
    with pytest.raises(DicomReadError, match=victim.name) as refused:
        read_study(copy)
    assert ("empty file" if damage == "empty" else "without pixel data") in str(refused.value)


def test_duplicate_instance_in_another_folder_is_read_once(original, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An exact copy of one image in a sibling folder (a repeated export) changes nothing but a warning."""
    root = tmp_path / "export"
    shutil.copytree(original[0], root / "cine")
    (root / "stray").mkdir()
    shutil.copy(root / "cine" / f"{_instance(3, 7)}.dcm", root / "stray" / "9999.dcm")
    study = read_study(root)
    assert np.array_equal(study.image, original[1].image)
    found = study.curation.of_kind(CurationKind.DUPLICATE_INSTANCE)
    assert len(found) == 1 and found[0].severity == "warning"
    assert [Path(f).name for f in found[0].files] == ["9999.dcm"]


def test_repeated_slice_keeps_later_acquisition(original, copy: Path) -> None:  # type: ignore[no-untyped-def]
    uid = generate_uid()
    rep = copy / "repeat"
    rep.mkdir()
    for p in range(1, PHASES + 1):
        ds = pydicom.dcmread(copy / f"{_instance(5, p)}.dcm")
        ds.SeriesInstanceUID = uid
        ds.SeriesNumber = int(ds.SeriesNumber) + 1
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = 1000 + p
        arr = ds.pixel_array.copy()
        arr[:8, :8] = 4000  # marker: we can tell which acquisition was kept
        ds.PixelData = arr.tobytes()
        ds.save_as(rep / f"r{p}.dcm")
    study = read_dicom_cine(copy)
    assert study.n_slices == original[1].n_slices and study.n_phases == PHASES
    issues = study.curation.of_kind(CurationKind.REPEATED_SLICE)
    assert len(issues) == 1 and issues[0].severity == "repaired" and len(issues[0].files) == PHASES
    _t, z = _z_of_instance(study, 1001)
    assert np.all(study.image[:, z, :8, :8] == 4000)
    np.testing.assert_array_equal(study.image[:, z, 8:], original[1].image[:, z, 8:])


def _rotate_90(ds: pydicom.Dataset) -> None:
    """Store the image rotated by 90 degrees with geometry updated accordingly (same anatomy)."""
    arr = ds.pixel_array
    rows, cols = arr.shape
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    u, v = iop[:3], iop[3:]
    ps_r, ps_c = (float(x) for x in ds.PixelSpacing)
    ipp = np.array([float(x) for x in ds.ImagePositionPatient])
    # new[i, j] = old[j, cols - 1 - i]: new columns run along old rows, new rows along -old columns
    new = np.ascontiguousarray(np.rot90(arr, 1))
    new_u, new_v = v, -u
    new_ipp = ipp + (cols - 1) * ps_c * u
    ds.PixelData = new.tobytes()
    ds.Rows, ds.Columns = new.shape
    ds.ImageOrientationPatient = [float(x) for x in (*new_u, *new_v)]
    ds.ImagePositionPatient = [float(x) for x in new_ipp]
    ds.PixelSpacing = [ps_c, ps_r]
    assert (rows, cols) == (new.shape[1], new.shape[0])


def test_rotated_image_is_resampled_back_exactly(original, copy: Path) -> None:  # type: ignore[no-untyped-def]
    target = copy / f"{_instance(7, 3)}.dcm"
    ds = pydicom.dcmread(target)
    _rotate_90(ds)
    ds.save_as(target)
    study = read_dicom_cine(copy)
    issues = study.curation.of_kind(CurationKind.ROTATED_IMAGE)
    assert len(issues) == 1 and issues[0].files == (str(target),)
    np.testing.assert_allclose(study.image, original[1].image, atol=1e-3)


def test_rescaled_image_is_resampled(original, copy: Path) -> None:  # type: ignore[no-untyped-def]
    target = copy / f"{_instance(7, 3)}.dcm"
    ds = pydicom.dcmread(target)
    arr = ds.pixel_array.astype(np.float64)
    small = arr.reshape(128, 2, 128, 2).mean(axis=(1, 3)).round().astype(arr.dtype if False else np.uint16)
    ps = [float(v) for v in ds.PixelSpacing]
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    # centre of the new first pixel = centre of the 2x2 block of old pixels
    ds.ImagePositionPatient = [float(x) for x in ipp + 0.5 * ps[1] * iop[:3] + 0.5 * ps[0] * iop[3:]]
    ds.PixelSpacing = [2 * ps[0], 2 * ps[1]]
    ds.Rows, ds.Columns = small.shape
    ds.PixelData = small.astype(np.uint16).tobytes()
    ds.save_as(target)
    study = read_dicom_cine(copy)
    assert study.image.shape == original[1].image.shape
    assert study.curation.has(CurationKind.RESCALED_IMAGE)
    t, z = _z_of_instance(original[1], _instance(7, 3))
    got, want = study.image[t, z, 1:-1, 1:-1], original[1].image[t, z, 1:-1, 1:-1]
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.97
    # the untouched images are unchanged
    mask = np.ones(study.image.shape[:2], bool)
    mask[t, z] = False
    np.testing.assert_array_equal(study.image[mask], original[1].image[mask])
