from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import ndimage

from cardiacseg.clinical import compute_cardiac_indices
from cardiacseg.enums import CardiacLabel
from cardiacseg.io import Ssl4misFormatError, list_ssl4mis_patients, read_ssl4mis_frame, read_ssl4mis_study

pytestmark = pytest.mark.realdata


def _slice_files(acdc_dir: Path, patient: str, frame: int) -> dict[int, Path]:
    out = {}
    for f in (acdc_dir / "data").glob(f"{patient}_frame{frame:02d}_slice_*.h5"):
        out[int(f.stem.rsplit("_", 1)[1])] = f
    return out


def _adjacent_similarity(stack: np.ndarray) -> float:
    return float(
        np.mean([np.corrcoef(stack[k].ravel(), stack[k + 1].ravel())[0, 1] for k in range(len(stack) - 1)])
    )


def test_75_patients(acdc_dir: Path) -> None:
    patients = list_ssl4mis_patients(acdc_dir)
    assert len(patients) == 75


def test_per_slice_restack_is_the_whole_stack(acdc_dir: Path) -> None:
    patients = list_ssl4mis_patients(acdc_dir)
    sliced = [p for p in patients if _slice_files(acdc_dir, p, 1)]
    whole = [p for p in patients if (acdc_dir / "data" / f"{p}_frame01.h5").exists()]
    assert sliced and whole
    with h5py.File(acdc_dir / "data" / f"{whole[0]}_frame01.h5") as h:
        ref_image = h["image"][()]
    checked = 0
    for p in sliced:
        files = _slice_files(acdc_dir, p, 1)
        image, label = read_ssl4mis_frame(acdc_dir, p, 1)
        # same form as a whole-stack file: (Z, H, W) float32 / uint8, one slice per file
        assert image.ndim == 3 == ref_image.ndim and image.dtype == ref_image.dtype == np.float32
        assert image.shape[0] == len(files) and label.shape == image.shape and label.dtype == np.uint8
        # slice k of the stack is file _slice_{k+1}
        for k in (0, len(files) // 2, len(files) - 1):
            with h5py.File(files[k + 1]) as h:
                np.testing.assert_array_equal(image[k], h["image"][()])
        # the volume was min-max scaled as a whole: one of its slices reaches 1.0
        assert image.max() == pytest.approx(1.0) and image.min() == pytest.approx(0.0)
        if len(files) >= 10:
            lexicographic = sorted(range(1, len(files) + 1), key=str)
            lex = np.stack([image[k - 1] for k in lexicographic])
            assert _adjacent_similarity(image) > _adjacent_similarity(lex)
            checked += 1
    assert checked >= 5


def test_acdc_labels_mapped_to_internal_on_real_data(acdc_dir: Path) -> None:
    """ACDC 3 = LV lies inside the myocardium ring; ACDC 1 = RV lies outside it."""
    for p in list_ssl4mis_patients(acdc_dir)[:10]:
        with_raw = acdc_dir / "data" / f"{p}_frame01.h5"
        _, label = read_ssl4mis_frame(acdc_dir, p, 1)
        if with_raw.exists():
            with h5py.File(with_raw) as h:
                raw = h["label"][()]
            np.testing.assert_array_equal(label == CardiacLabel.LV, raw == 3)
            np.testing.assert_array_equal(label == CardiacLabel.RV, raw == 1)
        lv_sum = rv_sum = 0.0
        n = 0
        for z in range(label.shape[0]):
            lv = label[z] == CardiacLabel.LV
            rv = label[z] == CardiacLabel.RV
            myo = label[z] == CardiacLabel.MYO
            if lv.sum() < 20 or rv.sum() < 20:
                continue
            lv_ring = ndimage.binary_dilation(lv, iterations=2) & ~lv
            rv_ring = ndimage.binary_dilation(rv, iterations=2) & ~rv
            lv_sum += (myo & lv_ring).sum() / lv_ring.sum()
            rv_sum += (myo & rv_ring).sum() / rv_ring.sum()
            n += 1
        assert n > 0
        assert lv_sum / n > 0.8, p  # LV blood pool is enclosed by myocardium
        assert rv_sum / n < 0.5, p  # RV touches the septum only


def test_ef_spacing_free_from_ground_truth(acdc_dir: Path) -> None:
    for p in list_ssl4mis_patients(acdc_dir)[:8]:
        study = read_ssl4mis_study(acdc_dir, p)
        idx = compute_cardiac_indices(study)
        # independent: count ACDC value 3 (LV) and 1 (RV) in the raw files
        counts = {}
        for frame in (1, 2):
            whole = acdc_dir / "data" / f"{p}_frame{frame:02d}.h5"
            files = (
                [whole]
                if whole.exists()
                else sorted((acdc_dir / "data").glob(f"{p}_frame{frame:02d}_slice_*.h5"))
            )
            lv = rv = 0
            for f in files:
                with h5py.File(f) as h:
                    lab = h["label"][()]
                lv += int((lab == 3).sum())
                rv += int((lab == 1).sum())
            counts[frame] = (lv, rv)
        assert idx.volumes_available is False and idx.lv_edv_ml is None and idx.lv_mass_g is None
        assert "spacing" in idx.unavailable["lv_edv_ml"]
        assert idx.lv_ef_percent == pytest.approx(100 * (counts[1][0] - counts[2][0]) / counts[1][0])
        assert idx.rv_ef_percent == pytest.approx(100 * (counts[1][1] - counts[2][1]) / counts[1][1])


def test_missing_patient_is_a_clear_error(acdc_dir: Path) -> None:
    with pytest.raises(Ssl4misFormatError, match="patient999"):
        read_ssl4mis_frame(acdc_dir, "patient999", 1)
