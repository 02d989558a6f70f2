from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cardiacseg.io import NiftiReadError, read_nifti_study, write_nifti


def test_4d_roundtrip_keeps_geometry_and_axis_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arr = rng.random((5, 3, 20, 30)).astype(np.float32)  # T Z Y X
    aff = np.array([[0, -1.4, 0, 10], [1.3, 0, 0, -5], [0, 0, 8.0, 2], [0, 0, 0, 1]])
    p = write_nifti(tmp_path / "cine.nii.gz", arr, affine=aff)
    img = nib.load(p)  # independent reader: nibabel stores X Y Z T
    assert img.shape == (30, 20, 3, 5)
    assert np.asarray(img.dataobj)[7, 4, 2, 1] == arr[1, 2, 4, 7]
    np.testing.assert_allclose(img.affine, aff)
    study = read_nifti_study(p)
    np.testing.assert_array_equal(study.image, arr)
    assert study.spacing_mm == pytest.approx((8.0, 1.4, 1.3))
    np.testing.assert_allclose(study.affine, aff)


def test_3d_and_no_overwrite(tmp_path: Path) -> None:
    arr = np.zeros((4, 10, 12), np.uint8)
    arr[1, 2, 3] = 2
    p = write_nifti(tmp_path / "lab.nii.gz", arr, spacing_mm=(6.0, 1.0, 0.5))
    study = read_nifti_study(p)
    assert study.image.shape == (1, 4, 10, 12) and study.image[0, 1, 2, 3] == 2
    assert study.spacing_mm == pytest.approx((6.0, 1.0, 0.5))
    before = p.read_bytes()
    with pytest.raises(FileExistsError):
        write_nifti(p, arr + 1)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["lab.nii.gz"]  # no temp files left


def test_unknown_geometry_is_none(tmp_path: Path) -> None:
    p = write_nifti(tmp_path / "nogeo.nii.gz", np.ones((2, 3, 3), np.float32))
    assert read_nifti_study(p).spacing_mm is None


def test_corrupt_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(NiftiReadError, match=r"broken\.nii\.gz"):
        read_nifti_study(bad)
