from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from cardiacseg.clinical import compute_cardiac_indices
from cardiacseg.enums import CardiacLabel, CurationKind
from cardiacseg.io import ContourFormatError, read_dicom_cine, read_sunnybrook_link, read_sunnybrook_study
from tests.conftest import SUNNYBROOK, independent_sunnybrook_volumes

pytestmark = pytest.mark.realdata


@pytest.mark.parametrize("patient", sorted(SUNNYBROOK))
def test_reader_geometry_matches_headers(sunnybrook_dir: Path, patient: str) -> None:
    folder = sunnybrook_dir / "dicoms" / patient
    study = read_dicom_cine(folder)
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(folder.iterdir())]
    locations = {tuple(round(float(v), 2) for v in h.ImagePositionPatient) for h in headers}
    assert study.n_phases == 20 == int(headers[0].CardiacNumberOfImages)
    assert study.n_slices == len(locations) == len(headers) // 20
    # slice spacing: distance between neighbouring IPPs, not the SliceLocation step
    ipps = np.array(sorted(locations))
    dists = np.sort(np.linalg.norm(ipps[1:] - ipps[:-1], axis=1))
    assert study.spacing_mm is not None
    assert study.spacing_mm[0] == pytest.approx(float(np.median(dists)), abs=0.01)
    assert study.spacing_mm[0] == pytest.approx(10.0, abs=0.05)
    loc_steps = np.abs(np.diff(sorted({float(h.SliceLocation) for h in headers})))
    assert abs(float(np.median(loc_steps)) - study.spacing_mm[0]) > 2.0  # the pitfall the reader avoids
    assert study.curation.has(CurationKind.SLICE_LOCATION_MISMATCH)
    ps = [float(v) for v in headers[0].PixelSpacing]
    assert study.spacing_mm[1:] == pytest.approx(tuple(ps))
    # phases sorted by trigger time within every slice; slices sorted along the normal
    assert study.source_files is not None
    names = sorted(folder.iterdir())
    trig = {str(folder / f.name): float(h.TriggerTime) for f, h in zip(names, headers, strict=True)}
    for z in range(study.n_slices):
        times = [trig[study.source_files[t][z]] for t in range(study.n_phases)]
        assert times == sorted(times)
    assert study.slice_positions_mm is not None
    assert np.all(np.diff(study.slice_positions_mm) > 0)
    # affine: voxel (0, 0, z) maps to the IPP of slice z (LPS -> RAS flips x and y)
    assert study.affine is not None
    for z in (0, study.n_slices - 1):
        h = pydicom.dcmread(study.source_files[0][z], stop_before_pixels=True)
        ras = np.array([float(v) for v in h.ImagePositionPatient]) * np.array([-1, -1, 1])
        np.testing.assert_allclose(study.affine @ np.array([0, 0, z, 1.0]), [*ras, 1.0], atol=0.05)
    # pixel values are the stored pixels (rescale identity here)
    d = pydicom.dcmread(study.source_files[3][4])
    np.testing.assert_array_equal(study.image[3, 4], d.pixel_array.astype(np.float32))


@pytest.mark.parametrize("patient", sorted(SUNNYBROOK))
def test_volumes_match_independent_polygon_fill(sunnybrook_dir: Path, patient: str) -> None:
    dicoms = sunnybrook_dir / "dicoms" / patient
    contours = sunnybrook_dir / "contourfiles" / SUNNYBROOK[patient]
    study = read_sunnybrook_study(dicoms, contours)
    idx = compute_cardiac_indices(study)
    ref = independent_sunnybrook_volumes(dicoms, contours)
    assert idx.lv_edv_ml == pytest.approx(ref["edv"], rel=0.005)
    assert idx.lv_esv_ml == pytest.approx(ref["esv"], rel=0.005)
    assert idx.lv_ef_percent == pytest.approx(ref["ef"], rel=0.005)
    assert idx.lv_mass_g == pytest.approx(ref["mass"], rel=0.005)
    assert idx.rv_ef_percent is None and "rv_ef_percent" in idx.unavailable
    # ED carries myocardium, ES only LV; labels are internal values
    assert (study.labels[idx.ed_phase] == CardiacLabel.MYO).any()
    assert not (study.labels[idx.es_phase] == CardiacLabel.MYO).any()
    assert set(np.unique(study.labels[idx.ed_phase]).tolist()) <= {0, 1, 2}


def test_link_csv(sunnybrook_dir: Path) -> None:
    link = read_sunnybrook_link(sunnybrook_dir / "link.csv")
    assert link["SCD0000101"] == "SC-HF-I-1" and link["SCD0000201"] == "SC-HF-I-2"


def test_contour_for_unknown_image_names_the_file(sunnybrook_dir: Path, tmp_path: Path) -> None:
    study = read_dicom_cine(sunnybrook_dir / "dicoms" / "SCD0000101")
    bad = tmp_path / "i-contours" / "IM-0001-9999-icontour-manual.txt"
    bad.parent.mkdir()
    bad.write_text("10 10\n20 10\n20 20\n")
    from cardiacseg.io import read_sunnybrook_contours

    with pytest.raises(ContourFormatError, match="IM-0001-9999"):
        read_sunnybrook_contours(tmp_path, study)
