"""Training and evaluation engines (MONAI Ignite workflows configured by bundles) and their pipelines."""

from __future__ import annotations

from cardiacseg.engines.pipelines import train_transforms, val_transforms
from cardiacseg.engines.workflow import training_workflow

__all__ = [
    "train_transforms",
    "training_workflow",
    "val_transforms",
]
