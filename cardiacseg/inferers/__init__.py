"""Inference over whole studies: slice-wise 2D prediction with TTA and ensembles, batches of studies."""

from __future__ import annotations

from cardiacseg.inferers.predictor import TTA_MODES, SlicePredictor, assumed_pixel_spacing
from cardiacseg.inferers.study import BatchResult, segment_batch, segment_study

__all__ = [
    "TTA_MODES",
    "BatchResult",
    "SlicePredictor",
    "assumed_pixel_spacing",
    "segment_batch",
    "segment_study",
]
