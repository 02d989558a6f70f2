"""Prediction only: slice-wise 2D prediction of whole studies (TTA, ensembles); slice-range classification."""

from __future__ import annotations

from cardiacseg.inferers.predictor import TTA_MODES, SlicePredictor, assumed_pixel_spacing
from cardiacseg.inferers.slice_range import SliceRangeClassifier, SliceRangePrediction, monotone_slice_labels

__all__ = [
    "TTA_MODES",
    "SlicePredictor",
    "SliceRangeClassifier",
    "SliceRangePrediction",
    "assumed_pixel_spacing",
    "monotone_slice_labels",
]
