from __future__ import annotations

import numpy as np
import pytest

from cardiacseg.metrics import dice_score, segmentation_metrics


def test_shifted_square_by_hand() -> None:
    a = np.zeros((40, 40), np.uint8)
    a[10:30, 10:30] = 1
    b = np.zeros_like(a)
    b[12:32, 10:30] = 1  # 2 px = 3 mm shift along the first axis
    lv = segmentation_metrics(b, a, (1.5, 1.5))[0]
    assert lv.dice == pytest.approx(2 * 18 * 20 / 800)
    assert lv.hd95 == pytest.approx(3.0) and lv.unit == "mm"
    px = segmentation_metrics(b, a)[0]
    assert px.hd95 == pytest.approx(2.0) and px.unit == "voxel"


def test_empty_structures() -> None:
    a = np.zeros((5, 5), np.uint8)
    m = segmentation_metrics(a, a, (1.0, 1.0))
    assert all(np.isnan(c.dice) and np.isnan(c.hd95) for c in m)
    assert dice_score(np.ones(3, bool), np.zeros(3, bool)) == 0.0
    with pytest.raises(ValueError, match="shape"):
        segmentation_metrics(a, np.zeros((4, 4), np.uint8))
