"""What counts as a study (io.discover): layouts built in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from cardiacseg.io.discover import discover_studies, read_study
from tests.io.test_dicom_steps import _cine


def test_discover_studies_layouts(tmp_path: Path) -> None:
    """DICOM studies, ACDC folders and NIfTI files are studies; label files and the output folder are not."""
    (tmp_path / "in" / "dicom_a" / "series1").mkdir(parents=True)
    _cine(tmp_path / "in" / "dicom_a" / "series1")
    (tmp_path / "in" / "dicom_a" / "notes.txt").write_text("not an image")
    (tmp_path / "in" / "empty.dcm").write_bytes(b"")  # not an image: not a study
    (tmp_path / "in" / "nested" / "patient001").mkdir(parents=True)
    (tmp_path / "in" / "nested" / "patient001" / "Info.cfg").write_text("ED: 1\nES: 12\n")
    (tmp_path / "in" / "nested" / "patient001" / "patient001_frame01.nii.gz").write_bytes(b"")
    (tmp_path / "in" / "x.nii.gz").write_bytes(b"")
    (tmp_path / "in" / "x_gt.nii.gz").write_bytes(b"")
    (tmp_path / "in" / "more").mkdir()
    (tmp_path / "in" / "more" / "x.nii").write_bytes(b"")
    (tmp_path / "in" / "out" / "x").mkdir(parents=True)
    (tmp_path / "in" / "out" / "x" / "labels.nii.gz").write_bytes(b"")
    (tmp_path / "in" / "out" / "y.nii.gz").write_bytes(b"")
    found = discover_studies([tmp_path / "in"], exclude=[tmp_path / "in" / "out"])
    got = sorted((s.name, s.kind, s.path.relative_to(tmp_path / "in").as_posix()) for s in found)
    assert got == [
        ("dicom_a", "dicom", "dicom_a/series1"),
        ("patient001", "acdc", "nested/patient001"),
        ("x", "nifti", "more/x.nii"),
        ("x_2", "nifti", "x.nii.gz"),
    ]
    dicom = next(s for s in found if s.kind == "dicom")
    assert len(dicom.files) == 12  # the images; notes.txt lies outside the study's folder
    assert dicom.read().image.shape == (4, 3, 4, 4)


def test_a_folder_holding_one_study_is_named_after_the_folder(tmp_path: Path) -> None:
    for k in range(3):  # one series per slice position, in sub-folders
        (tmp_path / "case" / f"sax_{k}").mkdir(parents=True)
    series = [(generate_uid(), k + 1) for k in range(3)]
    from tests.io.test_dicom_steps import _write

    for k in range(3):
        for t in range(4):
            _write(
                tmp_path / "case" / f"sax_{k}",
                f"{t}.dcm",
                z_mm=8.0 * k,
                trigger=40.0 * t,
                series=series[k],
                value=k,
                instance=t + 1,
            )
    (found,) = discover_studies([tmp_path / "case"])
    assert found.name == "case" and found.path == tmp_path / "case"
    study = read_study(tmp_path / "case")
    assert study.image.shape == (4, 3, 4, 4) and "3 series 1-3" in study.source


def test_no_study_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no study found"):
        read_study(tmp_path)
    with pytest.raises(ValueError, match="unrecognised input"):
        read_study(tmp_path / "readme.txt")
