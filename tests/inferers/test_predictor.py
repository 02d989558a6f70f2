from __future__ import annotations

import torch
from torch import nn

from cardiacseg.data.synthetic import make_cine_phantom
from cardiacseg.enums import CardiacLabel
from cardiacseg.inferers import SlicePredictor
from cardiacseg.metrics import dice_score


class _BrightIsLV(nn.Module):
    """A fixed 'network': LV wherever a slice is brighter than halfway between its mean and maximum.

    In the phantom that is exactly the blood pools (LV and RV), whatever the per-slice normalisation.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bg = torch.zeros_like(x)
        threshold = (x.amax(dim=(2, 3), keepdim=True) + x.mean(dim=(2, 3), keepdim=True)) / 2
        return torch.cat([bg, x - threshold, bg - 100, bg - 100], dim=1)


def test_prediction_lands_on_the_input_grid() -> None:
    """Resampling 1.0 -> 1.5 mm, the heart crop and their inverses put predictions back on the anatomy."""
    study, _ = make_cine_phantom(
        n_phases=6, n_slices=4, shape=(200, 180), spacing_mm=(8.0, 1.0, 1.0), noise=0.02
    )
    predictor = SlicePredictor(_BrightIsLV(), target_spacing_mm=1.5, crop_size=128, batch_size=8)
    labels = predictor.predict(study, [0, 3])
    for t in (0, 3):
        assert labels[t].shape == study.labels[t].shape
        truth = (study.labels[t] == CardiacLabel.LV) | (study.labels[t] == CardiacLabel.RV)
        assert dice_score(labels[t] == CardiacLabel.LV, truth) > 0.95
