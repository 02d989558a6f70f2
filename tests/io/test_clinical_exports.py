"""Clinical export layouts rebuilt from the real Sunnybrook study: the right study read, or a clear refusal.

Each layout is built in a temp dir from ``SCD0000101`` (20 phases x 12 slices) by the builders in
``tests/io/dicom_builders.py``; the expectation is the unaltered study's EDV/ESV/EF from the same model
(``segment --fast``) within 0.5 %, or the documented refusal / flag (issue 14).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from cardiacseg.enums import CurationKind
from cardiacseg.io import DicomReadError, discover_studies, read_dicom_cine, read_study
from tests.io.dicom_builders import (
    strip_tags,
    write_enhanced_mr,
    write_series_per_slice,
    write_single_phase_stack,
    write_without_preamble,
)

pytestmark = pytest.mark.realdata

STUDY = "SCD0000101"
INDICES = ("lv_edv_ml", "lv_esv_ml", "lv_ef_percent")


def _hash_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def source(sunnybrook_dir: Path) -> Path:
    return sunnybrook_dir / "dicoms" / STUDY


@pytest.fixture(scope="module")
def predictor() -> Any:
    from cardiacseg.cli import FAST_PRESET
    from cardiacseg.demo import shipped_bundle_path
    from cardiacseg.inferers import SlicePredictor

    return SlicePredictor.from_bundle(shipped_bundle_path(), **FAST_PRESET)  # type: ignore[arg-type]


def _segment(inputs: list[Path], out: Path, predictor: Any) -> dict[str, dict[str, Any]]:
    """Run the batch as ``cardiacseg segment`` does; return each study's report."""
    import json

    from cardiacseg.workflows import segment_batch

    result = segment_batch(inputs, out, predictor, progress=False, figures=False)
    assert result.ok, result.failed
    return {name: json.loads((out / name / "report.json").read_text()) for name in result.done}


@pytest.fixture(scope="module")
def reference(source: Path, predictor: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    before = _hash_tree(source)
    reports = _segment([source], tmp_path_factory.mktemp("ref"), predictor)
    assert _hash_tree(source) == before  # the shared input is never modified
    assert list(reports) == [STUDY]
    indices = reports[STUDY]["indices"]
    # the values the issue quotes for segment --fast (EDV 188.3, ESV 131.6, EF 30.1 %), 2 % tolerance
    assert indices["lv_edv_ml"] == pytest.approx(188.3, rel=0.02)
    assert indices["lv_ef_percent"] == pytest.approx(30.1, abs=1.0)
    return dict(indices)


def _same_indices(got: dict[str, Any], ref: dict[str, Any]) -> None:
    for k in INDICES:
        assert got[k] == pytest.approx(ref[k], rel=0.005), k


def test_single_phase_stack_beside_the_cine_is_not_merged(
    source: Path, predictor: Any, reference: dict[str, Any], tmp_path: Path
) -> None:
    study = tmp_path / "study"
    shutil.copytree(source, study / "cine")
    write_single_phase_stack(source, study / "lge", series_number=301)  # later series, same positions
    read = read_study(study)
    assert read.n_phases == 20 and read.n_slices == 12
    extra = read.curation.of_kind(CurationKind.EXTRA_SERIES)
    assert len(extra) == 1 and "LGE" in extra[0].message and len(extra[0].files) == 12
    assert not read.curation.has(CurationKind.REPEATED_SLICE)
    assert all("lge" not in f for row in read.source_files or () for f in row)
    reports = _segment([study], tmp_path / "out", predictor)
    assert list(reports) == ["study"]
    _same_indices(reports["study"]["indices"], reference)


def test_one_series_per_slice_in_sub_folders_is_one_study(
    source: Path, predictor: Any, reference: dict[str, Any], tmp_path: Path
) -> None:
    study = tmp_path / "case"
    write_series_per_slice(source, study)
    # a re-acquired slice in an extra folder: slice 5 again, a later series with the same pixels
    uid = generate_uid()
    (study / "sax_5_retake").mkdir()
    for i, f in enumerate(sorted((study / "sax_5").iterdir()), start=1):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SOPInstanceUID = uid, 50, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(study / "sax_5_retake" / f"IM-{i:04d}.dcm")
    found = discover_studies([study])
    assert [s.name for s in found] == ["case"]
    read = found[0].read()
    assert (read.n_phases, read.n_slices) == (20, 12)
    repeats = read.curation.of_kind(CurationKind.REPEATED_SLICE)
    assert len(repeats) == 1 and "series 50" in repeats[0].message
    reports = _segment([study], tmp_path / "out", predictor)
    assert list(reports) == ["case"]  # one study, not 13 per-slice "studies"
    _same_indices(reports["case"]["indices"], reference)


def test_folder_of_two_patients_is_a_batch_never_mixed(sunnybrook_dir: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for sid in ("SCD0000101", "SCD0000201"):
        for f in (sunnybrook_dir / "dicoms" / sid).iterdir():
            shutil.copy(f, flat / f"{sid}_{f.name}")  # both patients' files in one folder
    found = discover_studies([flat])
    assert sorted(s.patient_id for s in found) == ["SCD0000101", "SCD0000201"]
    assert len({s.name for s in found}) == 2
    for s in found:
        study = s.read()
        ids = {
            str(pydicom.dcmread(f, stop_before_pixels=True).PatientID)
            for row in study.source_files or ()
            for f in row
        }
        assert ids == {s.patient_id}
    with pytest.raises(ValueError, match="holds 2 studies"):
        read_study(flat)
    # sub-folders per patient: the same two studies, named by folder
    found = discover_studies([sunnybrook_dir / "dicoms"])
    assert [s.name for s in found] == ["SCD0000101", "SCD0000201"]


def test_single_slice_position_keeps_geometry_and_claims_no_volumes(
    source: Path, predictor: Any, tmp_path: Path
) -> None:
    full = read_dicom_cine(source)
    one = tmp_path / "one_slice"
    one.mkdir()
    z = 6
    for row in full.source_files or ():
        shutil.copy(row[z], one / Path(row[z]).name)
    study = read_study(one)
    assert (study.n_phases, study.n_slices) == (20, 1)
    assert study.curation.has(CurationKind.SINGLE_SLICE)
    assert study.spacing_mm is not None and full.spacing_mm is not None
    assert study.spacing_mm[1:] == pytest.approx(full.spacing_mm[1:])  # in-plane spacing kept
    assert study.affine is not None and full.affine is not None
    np.testing.assert_allclose(study.affine[:3, :2], full.affine[:3, :2], atol=1e-6)  # in-plane axes
    voxel = full.affine @ np.array([0.0, 0.0, z, 1.0])
    np.testing.assert_allclose(study.affine[:3, 3], voxel[:3], atol=1e-3)  # where that slice is
    report = _segment([one], tmp_path / "out", predictor)["one_slice"]
    for k in (*INDICES, "lv_mass_g"):
        assert report["indices"][k] is None
    assert "single_slice" in {f["code"] for f in report["qc_flags"]}
    import nibabel as nib

    written = nib.load(str(tmp_path / "out" / "one_slice" / "labels.nii.gz"))
    np.testing.assert_allclose(written.affine, study.affine, atol=1e-4)


def test_no_trigger_times_orders_by_instance_number_with_a_warning(
    source: Path, predictor: Any, reference: dict[str, Any], tmp_path: Path
) -> None:
    stripped = strip_tags(source, tmp_path / "untimed", ["TriggerTime", "NominalCardiacTriggerDelayTime"])
    study = read_study(stripped)
    (order,) = study.curation.of_kind(CurationKind.PHASE_ORDER)
    assert order.severity == "warning" and "InstanceNumber" in order.message
    assert study.phase_times_ms is None
    timed = read_study(source).curation.of_kind(CurationKind.PHASE_ORDER)
    assert timed[0].severity == "info" and "TriggerTime" in timed[0].message
    _same_indices(_segment([stripped], tmp_path / "out", predictor)["untimed"]["indices"], reference)


def test_enhanced_multiframe_file(
    source: Path, predictor: Any, reference: dict[str, Any], tmp_path: Path
) -> None:
    path = write_enhanced_mr(source, tmp_path / "enhanced" / "cine.dcm")
    study = read_study(path.parent)
    original = read_dicom_cine(source)
    np.testing.assert_array_equal(study.image, original.image)
    assert study.spacing_mm == pytest.approx(original.spacing_mm)
    assert study.affine is not None and original.affine is not None
    np.testing.assert_allclose(study.affine, original.affine, atol=1e-4)
    _same_indices(_segment([path.parent], tmp_path / "out", predictor)["enhanced"]["indices"], reference)


def test_files_without_preamble(
    source: Path, predictor: Any, reference: dict[str, Any], tmp_path: Path
) -> None:
    bare = write_without_preamble(source, tmp_path / "bare")
    assert (bare / "8.dcm").read_bytes()[128:132] != b"DICM"
    study = read_study(bare)
    np.testing.assert_array_equal(study.image, read_dicom_cine(source).image)
    assert study.curation.has(CurationKind.NO_FILE_META)
    _same_indices(_segment([bare], tmp_path / "out", predictor)["bare"]["indices"], reference)


def test_images_without_position_or_orientation_are_refused_by_name(source: Path, tmp_path: Path) -> None:
    bad = strip_tags(source, tmp_path / "nogeo", ["ImagePositionPatient"])
    with pytest.raises(DicomReadError, match=r"240 DICOM image\(s\) lack ImagePositionPatient") as err:
        read_study(bad)
    assert str(bad) in str(err.value) and ".dcm" in str(err.value)
    # some images without geometry: the rest is read and the others are named
    partial = tmp_path / "partial"
    shutil.copytree(source, partial)
    strip_tags(source / "8.dcm", partial / "8.dcm.tmp", ["ImageOrientationPatient"])
    (partial / "8.dcm.tmp").replace(partial / "8.dcm")
    study = read_study(partial)
    (missing,) = study.curation.of_kind(CurationKind.MISSING_GEOMETRY)
    assert missing.files == (str(partial / "8.dcm"),)


def test_a_failing_write_leaves_no_partial_output(
    source: Path, predictor: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cardiacseg.workflows.segment as study_mod
    from cardiacseg.workflows import segment_batch

    def disk_full(*args: Any, **kwargs: Any) -> list[Path]:
        raise OSError("No space left on device")

    monkeypatch.setattr(study_mod, "write_report", disk_full)  # fails after labels and PNGs are written
    result = segment_batch([source], tmp_path / "out", predictor, progress=False)
    assert list(result.failed) == [STUDY] and "No space left" in result.failed[STUDY]
    assert not any((tmp_path / "out" / STUDY).iterdir())  # labels.nii.gz and PNGs removed again
    assert (tmp_path / "out" / "errors" / f"{STUDY}.txt").exists()
