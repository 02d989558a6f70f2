"""Inference over whole studies: slice-wise 2D prediction (TTA and ensembles: inference issue)."""

from __future__ import annotations

from cardiacseg.inferers.predictor import SlicePredictor
from cardiacseg.inferers.study import segment_study

__all__ = ["SlicePredictor", "segment_study"]
