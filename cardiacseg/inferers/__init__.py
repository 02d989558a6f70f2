"""Prediction only: slice-wise 2D prediction of whole studies, TTA, ensembles (batches: workflows)."""

from __future__ import annotations

from cardiacseg.inferers.predictor import TTA_MODES, SlicePredictor, assumed_pixel_spacing

__all__ = [
    "TTA_MODES",
    "SlicePredictor",
    "assumed_pixel_spacing",
]
