"""Training and evaluation engines (MONAI Ignite workflows configured by bundles) and their pipelines."""

from __future__ import annotations

from cardiacseg.engines.pipelines import train_transforms, val_transforms
from cardiacseg.engines.precision import AutocastInferer, training_memory_format
from cardiacseg.engines.slice_range import (
    evaluate_slice_range,
    predict_probabilities,
    save_half_state_dict,
    slice_range_evaluator,
    slice_range_train_transforms,
    slice_range_trainer,
    slice_range_val_transforms,
    zscore_items,
)
from cardiacseg.engines.workflow import training_workflow

__all__ = [
    "AutocastInferer",
    "evaluate_slice_range",
    "predict_probabilities",
    "save_half_state_dict",
    "slice_range_evaluator",
    "slice_range_train_transforms",
    "slice_range_trainer",
    "slice_range_val_transforms",
    "train_transforms",
    "training_memory_format",
    "training_workflow",
    "val_transforms",
    "zscore_items",
]
