"""Training and evaluation engines (MONAI Ignite workflows configured by bundles) and their pipelines."""

from __future__ import annotations

from cardiacseg.engines.builders import build_evaluator, build_trainer
from cardiacseg.engines.pipelines import train_transforms, val_transforms

__all__ = [
    "build_evaluator",
    "build_trainer",
    "train_transforms",
    "val_transforms",
]
