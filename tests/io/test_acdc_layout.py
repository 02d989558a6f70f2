from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cardiacseg.data.synthetic import make_cine_phantom
from cardiacseg.enums import CardiacLabel
from cardiacseg.io import (
    AcdcFormatError,
    read_acdc_info,
    read_acdc_patient,
    read_ssl4mis_study,
    read_study,
    write_acdc_patient,
)


def _oblique_affine(spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    z, y, x = spacing_zyx
    c, s = np.cos(0.4), np.sin(0.4)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([x, y, z])
    aff[:3, 3] = [-120.0, 35.5, 12.25]
    return aff


@pytest.mark.realdata
def test_acdc_layout_roundtrip_real_arrays(acdc_dir: Path, tmp_path: Path) -> None:
    src = read_ssl4mis_study(acdc_dir, "patient001")
    spacing = (10.0, 1.5625, 1.5625)
    study = replace(src, spacing_mm=spacing, affine=_oblique_affine(spacing), phase_ids=(0, 11))
    folder = write_acdc_patient(tmp_path / "patient001", study, group="DCM", height_cm=184.0, weight_kg=95.0)
    info = read_acdc_info(folder / "Info.cfg")
    assert (info.ed_frame, info.es_frame, info.group) == (1, 12, "DCM")
    # the files use ACDC values: LV is 3, RV is 1 (checked with nibabel, not with cardiacseg)
    gt = nib.load(folder / "patient001_frame12_gt.nii.gz")
    raw = np.asarray(gt.dataobj)
    assert raw.shape == tuple(reversed(study.image.shape[1:]))
    es_internal = study.labels[1]
    np.testing.assert_array_equal(raw.transpose(2, 1, 0) == 3, es_internal == CardiacLabel.LV)
    np.testing.assert_array_equal(raw.transpose(2, 1, 0) == 1, es_internal == CardiacLabel.RV)
    np.testing.assert_allclose(gt.affine, study.affine)
    # voxel (x=5, y=7, z=2) lands where the affine says
    world = nib.affines.apply_affine(gt.affine, [5, 7, 2])
    np.testing.assert_allclose(world, study.affine[:3, :3] @ [5, 7, 2] + study.affine[:3, 3])

    back = read_study(folder)
    np.testing.assert_array_equal(back.image, study.image)
    assert back.spacing_mm == pytest.approx(spacing)
    np.testing.assert_allclose(back.affine, study.affine, atol=1e-5)
    assert (back.ed_phase, back.es_phase, back.phase_ids) == (0, 1, (0, 11))
    for t in (0, 1):
        np.testing.assert_array_equal(back.labels[t], study.labels[t])


def test_acdc_layout_4d_roundtrip(tmp_path: Path) -> None:
    phantom, _ = make_cine_phantom(n_phases=6, n_slices=4, shape=(128, 128), lv_radius_mm=18, wall_mm=6)
    study = replace(phantom, labels={0: phantom.labels[0], 3: phantom.labels[3]}, ed_phase=0, es_phase=3)
    folder = write_acdc_patient(tmp_path / "patient101", study)
    assert (folder / "patient101_4d.nii.gz").exists()
    back = read_acdc_patient(folder)
    assert back.image.shape == study.image.shape
    assert (back.ed_phase, back.es_phase) == (0, 3)
    np.testing.assert_array_equal(back.labels[3], study.labels[3])
    with pytest.raises(FileExistsError, match=r"Info\.cfg"):
        write_acdc_patient(folder, study)


def test_acdc_errors_name_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "patient007"
    folder.mkdir()
    with pytest.raises(AcdcFormatError, match=r"Info\.cfg"):
        read_acdc_patient(folder)
    (folder / "Info.cfg").write_text("ED: 1\nES: 9\n")
    with pytest.raises(AcdcFormatError, match=r"frame 1"):
        read_acdc_patient(folder)
    (folder / "Info.cfg").write_text("ED 1\n")
    with pytest.raises(AcdcFormatError, match=r"Info\.cfg:1"):
        read_acdc_patient(folder)
