from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardiacseg.data.synthetic import make_cine_phantom
from cardiacseg.io import read_ssl4mis_study


@pytest.fixture(scope="session", params=["acdc", "phantom"])
def acdc_slice(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray]:
    """A mid-ventricular ED slice (Y, X) in [0, 1] with internal labels, 192 x 192 around the heart.

    Square, as after the heart crop, so that 90-degree rotations keep the shape. Each test using it runs
    on a real ACDC slice (skipped, with the reason, without the shared data) and on the synthetic cine
    phantom, so a clone without ``../shared`` still tests the transform contracts.
    """
    if request.param == "phantom":
        phantom, _ = make_cine_phantom(n_phases=2, n_slices=6, shape=(192, 192), spacing_mm=(8.0, 1.5, 1.5))
        img = phantom.image[0, 3]
        img = (img - img.min()) / (img.max() - img.min())
        return img.astype(np.float32), phantom.labels[0][3]
    acdc_dir: Path = request.getfixturevalue("acdc_dir")
    study = read_ssl4mis_study(acdc_dir, "patient001")
    z = 5
    ys, xs = np.nonzero(study.labels[0][z])
    cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
    y0 = int(np.clip(cy - 96, 0, study.image.shape[2] - 192))
    x0 = int(np.clip(cx - 96, 0, study.image.shape[3] - 192))
    window = (slice(y0, y0 + 192), slice(x0, x0 + 192))
    return study.image[0, z][window], study.labels[0][z][window]
