from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardiacseg.io import read_ssl4mis_study


@pytest.fixture(scope="session")
def acdc_slice(acdc_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """A real mid-ventricular ACDC ED slice (Y, X) in [0, 1] with internal labels, 192 x 192 around the heart.

    Square, as after the heart crop, so that 90-degree rotations keep the shape.
    """
    study = read_ssl4mis_study(acdc_dir, "patient001")
    z = 5
    ys, xs = np.nonzero(study.labels[0][z])
    cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
    y0 = int(np.clip(cy - 96, 0, study.image.shape[2] - 192))
    x0 = int(np.clip(cx - 96, 0, study.image.shape[3] - 192))
    window = (slice(y0, y0 + 192), slice(x0, x0 + 192))
    return study.image[0, z][window], study.labels[0][z][window]
