"""CineSliceInferer reads the spacing of a MONAI-loaded NIfTI as cardiacseg's own reader does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from cardiacseg.inferers import SlicePredictor
from cardiacseg.inferers.cine_inferer import CineSliceInferer
from cardiacseg.io.nifti import read_nifti_study, write_nifti

BUNDLE = Path(__file__).resolve().parents[2] / "cardiacseg" / "cardiac_cine_seg"


def _inferer_probs(path: Path, predictor: SlicePredictor) -> np.ndarray:
    data = Compose([LoadImaged("image", image_only=True), EnsureChannelFirstd("image")])({"image": str(path)})
    with torch.no_grad():
        out = CineSliceInferer(tta="none")(data["image"][None].float(), predictor.network)
    return np.transpose(np.asarray(out[0]), (0, 3, 2, 1))  # (4, Z, Y, X)


def test_nifti_without_geometry_is_unknown_spacing_as_in_the_reader(acdc_dir: Path, tmp_path: Path) -> None:
    """ACDC HDF5 has no spacing: written without geometry, MONAI's loader still gives a 1 mm affine; the
    inferer must not take it for 1 mm pixels but treat it like read_nifti_study (spacing unknown)."""
    from cardiacseg.io.ssl4mis import read_ssl4mis_study

    study = read_ssl4mis_study(acdc_dir, "patient004")
    unknown = write_nifti(tmp_path / "unknown.nii.gz", study.image[0])
    one_mm = write_nifti(tmp_path / "one_mm.nii.gz", study.image[0], spacing_mm=(1.0, 1.0, 1.0))
    predictor = SlicePredictor.from_bundle(BUNDLE, tta="none")
    assert read_nifti_study(unknown).spacing_mm is None
    expected = predictor.predict_probabilities(read_nifti_study(unknown))[0]
    np.testing.assert_allclose(_inferer_probs(unknown, predictor), expected, atol=1e-5)
    # the declared 1 mm file is really read as 1 mm pixels: another resampling, another result
    declared = _inferer_probs(one_mm, predictor)
    assert np.abs(declared - expected).max() > 0.1
    as_read = predictor.predict_probabilities(read_nifti_study(one_mm))[0]
    np.testing.assert_allclose(declared, as_read, atol=1e-5)
