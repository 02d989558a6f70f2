"""Inference over whole studies: slice-wise 2D prediction (TTA and ensembles: inference issue)."""

from __future__ import annotations

from cardiacseg.inferers.predictor import SlicePredictor

__all__ = ["SlicePredictor"]
