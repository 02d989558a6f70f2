from __future__ import annotations

import gzip
import math
import resource
import time
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from cardiacseg.io import (
    CineStudy,
    NiftiReadError,
    read_dicom_cine,
    read_nifti_array,
    read_nifti_study,
    write_nifti,
)
from cardiacseg.io.limits import InputTooLargeError
from cardiacseg.io.nifti import check_cine_shape, nifti_phase_times_ms


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


# --- issue 14, item 9: implausible layouts, 5D, phase times, malformed headers, memory bounds ---------------


@pytest.fixture(scope="module")
def sunnybrook_cine(sunnybrook_dir: Path) -> CineStudy:
    """The real SCD0000101 cine (20 phases x 12 slices x 256 x 256), read once for this module."""
    return read_dicom_cine(sunnybrook_dir / "dicoms" / "SCD0000101")


def _save(img: nib.Nifti1Image, path: Path) -> Path:
    nib.save(img, str(path))
    return path


@pytest.mark.realdata
def test_cine_saved_in_tzyx_order_is_refused_naming_the_mix_up(
    sunnybrook_cine: CineStudy, tmp_path: Path
) -> None:
    """The (T, Z, Y, X) array saved as is (identity affine), as a user's numpy script would: refused."""
    arr = sunnybrook_cine.image
    assert arr.shape == (20, 12, 256, 256)
    p4 = _save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / "cine_tzyx.nii")
    with pytest.raises(NiftiReadError) as err:
        read_nifti_study(p4)
    msg = str(err.value)
    assert msg.startswith(f"{p4}: implausible cine geometry")
    assert (
        "(20, 12, 256, 256)" in msg
        and "In-plane matrix 20x12 is smaller than the slice/phase axes 256x256" in msg
    )
    assert "(T, Z, Y, X) order; NIfTI expects (X, Y, Z, T)" in msg and "transpose(3, 2, 1, 0)" in msg
    with pytest.raises(NiftiReadError, match=r"cine_tzyx\.nii: implausible"):
        read_nifti_array(p4)  # the array reader (labels, datalists) refuses it too
    # one phase as (Z, Y, X) saved as is: a 12 x 256 in-plane matrix with 256 slices
    p3 = _save(nib.Nifti1Image(arr[0], np.eye(4)), tmp_path / "frame_zyx.nii")
    with pytest.raises(
        NiftiReadError, match=r"frame_zyx\.nii: .*\(Z, Y, X\) order; NIfTI expects \(X, Y, Z\)"
    ):
        read_nifti_study(p3)
    # the user's fix, as the message says, reads the real study back voxel for voxel
    fixed = _save(nib.Nifti1Image(arr.transpose(3, 2, 1, 0), np.eye(4)), tmp_path / "fixed.nii")
    np.testing.assert_array_equal(read_nifti_study(fixed).image, arr)


@pytest.mark.realdata
def test_real_layouts_still_read(sunnybrook_cine: CineStudy, acdc_dir: Path, tmp_path: Path) -> None:
    """Every real short-axis shape passes the plausibility rule: ACDC (all volumes), Sunnybrook, slices."""
    shapes = []
    for f in sorted((acdc_dir / "data").glob("patient*_frame0[12].h5")):
        with h5py.File(f, "r") as h5:
            z, h, w = h5["image"].shape
        shapes.append((w, h, z, 30))  # ACDC cines have up to 30 frames (4D) and ED/ES frames (3D)
        check_cine_shape((w, h, z, 30), f)
        check_cine_shape((w, h, z), f)
        check_cine_shape((w, h, 1), f)  # a single slice
    assert len(shapes) >= 40
    sb = sunnybrook_cine
    p = write_nifti(tmp_path / "sb.nii", sb.image, sb.affine)
    study = read_nifti_study(p)
    np.testing.assert_array_equal(study.image, sb.image)
    assert study.spacing_mm == pytest.approx(sb.spacing_mm, rel=1e-6)
    # a 2D single slice (X, Y) and a 3D single slice (X, Y, 1), with the real in-plane spacing
    ps = float(sb.spacing_mm[1]) if sb.spacing_mm else 1.0
    aff2 = np.diag([ps, ps, 10.0, 1.0])
    two_d = _save(nib.Nifti1Image(sb.image[0, 5].T.copy(), aff2), tmp_path / "slice2d.nii")
    three_d = _save(nib.Nifti1Image(sb.image[0, 5].T[:, :, None].copy(), aff2), tmp_path / "slice3d.nii")
    for f in (two_d, three_d):
        s = read_nifti_study(f)
        np.testing.assert_array_equal(s.image[0, 0], sb.image[0, 5])
        assert s.image.shape == (1, 1, 256, 256) and s.spacing_mm == pytest.approx((10.0, ps, ps))


def test_plausibility_rule_margins() -> None:
    """Accepted: small crops and unusual but real stacks; refused: the swapped-axes signature only."""
    for ok in [(3, 3, 2), (30, 20, 3, 5), (32, 32, 10, 30), (48, 48, 40, 100), (60, 50, 45), (64, 64, 300)]:
        check_cine_shape(ok, "ok.nii")
    for bad in [(30, 10, 216, 256), (12, 256, 256), (30, 10, 48, 48), (20, 12, 64, 1)]:
        with pytest.raises(NiftiReadError, match="implausible"):
            check_cine_shape(bad, "bad.nii")


@pytest.mark.realdata
def test_5d_singleton_forms_read_as_the_4d_study(sunnybrook_cine: CineStudy, tmp_path: Path) -> None:
    xyzt = np.ascontiguousarray(sunnybrook_cine.image.transpose(3, 2, 1, 0))  # (256, 256, 12, 20)
    aff = np.diag([1.367, 1.367, 10.0, 1.0])
    for name, arr5 in (("x_y_z_1_t", xyzt[:, :, :, None, :]), ("x_y_z_t_1", xyzt[..., None])):
        p = _save(nib.Nifti1Image(arr5, aff), tmp_path / f"{name}.nii")
        assert nib.load(p).shape == arr5.shape  # nibabel really stored 5D
        study = read_nifti_study(p)
        np.testing.assert_array_equal(study.image, sunnybrook_cine.image)  # element-wise, (T, Z, Y, X)
        assert study.spacing_mm == pytest.approx((10.0, 1.367, 1.367))
    p6 = _save(nib.Nifti1Image(xyzt[:, :, :, None, None, :], aff), tmp_path / "six.nii")
    np.testing.assert_array_equal(read_nifti_study(p6).image, sunnybrook_cine.image)
    vec = _save(nib.Nifti1Image(np.zeros((64, 64, 4, 5, 3), np.float32), aff), tmp_path / "vector.nii.gz")
    with pytest.raises(NiftiReadError, match=r"vector\.nii\.gz: 5D image of shape \(64, 64, 4, 5, 3\)"):
        read_nifti_study(vec)
    six = _save(nib.Nifti1Image(np.zeros((64, 64, 4, 2, 1, 3), np.float32), aff), tmp_path / "six2.nii.gz")
    with pytest.raises(NiftiReadError, match=r"6D image of shape \(64, 64, 4, 2, 1, 3\)"):
        read_nifti_study(six)


def _cine_img(step: float, unit: str, toffset: float = 0.0, n_t: int = 20) -> nib.Nifti1Image:
    img = nib.Nifti1Image(np.zeros((8, 8, 2, n_t), np.float32), np.diag([1.5, 1.5, 8.0, 1.0]))
    img.header["pixdim"][4] = step  # set directly: nibabel's set_zooms refuses what broken files hold
    img.header.set_xyzt_units("mm", unit)
    img.header["toffset"] = toffset
    return img


@pytest.mark.parametrize(
    ("step", "unit", "toffset", "expected"),
    [
        (0.0383, "sec", 0.019, [19.0, 57.3, 95.6]),  # hand-computed: 19 + k * 38.3 ms
        (38.3, "msec", 0.0, [0.0, 38.3, 76.6]),
        (38300.0, "usec", 1000.0, [1.0, 39.3, 77.6]),
    ],
)
def test_phase_times_from_pixdim4_and_time_unit(
    tmp_path: Path, step: float, unit: str, toffset: float, expected: list[float]
) -> None:
    p = _save(_cine_img(step, unit, toffset), tmp_path / "t.nii.gz")
    times = read_nifti_study(p).phase_times_ms
    assert times is not None and len(times) == 20
    assert times[:3] == pytest.approx(expected, abs=1e-3)
    assert times[19] == pytest.approx(expected[0] + 19 * 38.3, abs=1e-2)


@pytest.mark.parametrize(
    ("step", "unit"),
    [
        (38.3, "unknown"),  # no time unit
        (38.3, "hz"),  # not a time
        (1.0, "msec"),  # nibabel/ITK default, not a real step
        (1.0, "sec"),
        (0.0, "msec"),
        (-38.3, "msec"),
        (float("nan"), "msec"),
        (3.5, "msec"),  # dcm2niix's repetition time: 20 x 3.5 ms is no cardiac cycle
        (0.2, "sec"),  # 20 x 200 ms = 4 s: no cardiac cycle either
    ],
)
def test_untrustworthy_time_step_gives_no_phase_times(tmp_path: Path, step: float, unit: str) -> None:
    p = _save(_cine_img(step, unit), tmp_path / "t.nii.gz")
    assert read_nifti_study(p).phase_times_ms is None
    assert nifti_phase_times_ms(nib.load(p).header, 20) is None


def test_write_nifti_phase_interval_roundtrip_and_no_fake_default(tmp_path: Path) -> None:
    arr = np.zeros((25, 2, 8, 8), np.float32)
    plain = write_nifti(tmp_path / "plain.nii.gz", arr, spacing_mm=(8.0, 1.5, 1.5))
    assert nib.load(plain).header.get_xyzt_units()[1] == "unknown"  # no claim of 1 ms phases
    assert read_nifti_study(plain).phase_times_ms is None
    timed = write_nifti(tmp_path / "timed.nii.gz", arr, spacing_mm=(8.0, 1.5, 1.5), phase_interval_ms=32.0)
    hdr = nib.load(timed).header
    assert hdr.get_xyzt_units() == ("mm", "msec") and float(hdr["pixdim"][4]) == 32.0
    assert read_nifti_study(timed).phase_times_ms == pytest.approx([32.0 * k for k in range(25)])
    with pytest.raises(ValueError, match="phase_interval_ms"):
        write_nifti(tmp_path / "x.nii.gz", arr[0], phase_interval_ms=32.0)
    with pytest.raises(ValueError, match="phase_interval_ms"):
        write_nifti(tmp_path / "y.nii.gz", arr, phase_interval_ms=0.0)


def test_nan_and_inf_voxels_are_refused(tmp_path: Path) -> None:
    arr = np.ones((8, 8, 3), np.float32)
    arr[2, 3, 1], arr[4, 4, 2] = np.nan, np.inf
    p = _save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(
        NiftiReadError,
        match=r"nan\.nii\.gz: 2 of 192 voxels are NaN or infinite \(first at NIfTI index \(2, 3, 1\)\)",
    ):
        read_nifti_study(p)


def _patched(path: Path, arr: np.ndarray, affine: np.ndarray, **fields: object) -> Path:
    """Save a valid .nii, then overwrite header fields in the file as a broken writer would have."""
    nib.save(nib.Nifti1Image(arr, affine), str(path))
    data = path.read_bytes()
    hdr = nib.Nifti1Header(binaryblock=data[:348], check=False)
    for key, value in fields.items():
        hdr[key] = value
    path.write_bytes(hdr.binaryblock + data[348:])
    return path


def test_unusable_geometry_is_unknown_not_invented(tmp_path: Path) -> None:
    arr = np.arange(8 * 6 * 3, dtype=np.float32).reshape(8, 6, 3)
    expected = arr.transpose(2, 1, 0)
    aff = np.diag([1.25, 1.5, 8.0, 1.0])
    nan_row = [np.nan] * 4
    # zero pixdim with a valid sform: spacing from the sform's columns (nibabel alone would say 1 mm)
    p = _patched(tmp_path / "zero_pixdim.nii", arr, aff, pixdim=[1, 0, 0, 0, 1, 1, 1, 1])
    s = read_nifti_study(p)
    assert s.spacing_mm == pytest.approx((8.0, 1.5, 1.25))
    np.testing.assert_array_equal(s.image[0], expected)
    # zero pixdim and qform only: the qform is singular, nothing usable -> unknown, not 1 mm
    p = _patched(
        tmp_path / "zero_q.nii", arr, aff, pixdim=[1, 0, 0, 0, 1, 1, 1, 1], sform_code=0, qform_code=1
    )
    s = read_nifti_study(p)
    assert s.affine is None and s.spacing_mm is None
    # singular sform, no qform: affine unknown, spacing from pixdim; the array reader falls back as documented
    p = _patched(tmp_path / "singular.nii", arr, aff, srow_y=[0.0, 0.0, 0.0, 0.0], qform_code=0)
    s = read_nifti_study(p)
    assert s.affine is None and s.spacing_mm == pytest.approx((8.0, 1.5, 1.25))
    _, fallback, _ = read_nifti_array(p)
    np.testing.assert_allclose(fallback, aff)
    # non-finite sform and qform quaternion, negative/zero pixdim: nothing usable -> both unknown
    p = _patched(
        tmp_path / "nonfinite.nii",
        arr,
        aff,
        srow_x=nan_row,
        quatern_b=np.nan,
        pixdim=[1, -1, 0, 2, 1, 1, 1, 1],
    )
    s = read_nifti_study(p)
    assert s.affine is None and s.spacing_mm is None
    np.testing.assert_array_equal(s.image[0], expected)
    # NaN pixdim, no codes: spacing unknown (never NaN)
    p = _patched(
        tmp_path / "nanpix.nii", arr, aff, pixdim=[1, np.nan, 1.5, 8, 1, 1, 1, 1], sform_code=0, qform_code=0
    )
    assert read_nifti_study(p).spacing_mm is None


def test_truncated_gzip_and_non_scalar_types_name_the_file(tmp_path: Path) -> None:
    good = write_nifti(
        tmp_path / "good.nii.gz", np.random.default_rng(0).random((4, 64, 64)).astype(np.float32)
    )
    data = good.read_bytes()
    for cut in (100, len(data) // 2, len(data) - 10):
        bad = tmp_path / f"cut{cut}.nii.gz"
        bad.write_bytes(data[:cut])
        with pytest.raises(NiftiReadError, match=rf"cut{cut}\.nii\.gz: cannot be read as NIfTI"):
            read_nifti_study(bad)
    raw = tmp_path / "short.nii"
    raw.write_bytes(gzip.decompress(data)[:2000])  # header fine, voxels missing
    with pytest.raises(NiftiReadError, match=r"short\.nii: cannot be read"):
        read_nifti_study(raw)
    rgb = np.zeros((8, 8, 2), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    p = _save(nib.Nifti1Image(rgb, np.eye(4)), tmp_path / "rgb.nii")
    with pytest.raises(NiftiReadError, match=r"rgb\.nii: data type .* is not a scalar image"):
        read_nifti_study(p)
    p = _save(nib.Nifti1Image(np.zeros((8, 8, 2), np.complex64), np.eye(4)), tmp_path / "cplx.nii")
    with pytest.raises(NiftiReadError, match=r"cplx\.nii: data type complex64"):
        read_nifti_study(p)


def test_scaled_integers_read_as_scaled_float32(tmp_path: Path) -> None:
    raw = np.arange(6 * 5 * 2, dtype=np.int16).reshape(6, 5, 2)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(0.5, 10.0)
    study = read_nifti_study(_save(img, tmp_path / "scaled.nii"))
    assert study.image.dtype == np.float32
    np.testing.assert_allclose(study.image[0], (raw * 0.5 + 10.0).transpose(2, 1, 0))  # hand-applied scaling


def test_huge_declared_shape_is_refused_from_the_header(tmp_path: Path) -> None:
    """A header declaring 4096 x 4096 x 40 x 100 int16 (a 268 GB float32 study) with no data behind it."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((4096, 4096, 40, 100))
    hdr.set_data_dtype(np.int16)
    hdr["vox_offset"] = 352
    p = tmp_path / "huge.nii"
    p.write_bytes(hdr.binaryblock + b"\0" * 4 + b"\0" * 1024)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(InputTooLargeError, match=r"huge\.nii: image of NIfTI shape \(4096, 4096, 40, 100\)"):
        read_nifti_study(p)
    assert time.perf_counter() - t0 < 2.0
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 < 50e6  # nothing allocated
    assert math.prod((4096, 4096, 40, 100)) * 4 > 2 * 1024**3
