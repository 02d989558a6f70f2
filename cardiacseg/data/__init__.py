"""Data helpers: datalists, patient-level splits, slice-range targets and the synthetic test phantom."""

from __future__ import annotations

from cardiacseg.data import datalist
from cardiacseg.data.slice_range import (
    SliceRangeLabels,
    StackDirection,
    patient_folds,
    slice_context,
    slice_range_items,
    slice_range_labels,
    stack_direction,
)
from cardiacseg.data.synthetic import PhantomTruth, make_cine_phantom

__all__ = [
    "PhantomTruth",
    "SliceRangeLabels",
    "StackDirection",
    "datalist",
    "make_cine_phantom",
    "patient_folds",
    "slice_context",
    "slice_range_items",
    "slice_range_labels",
    "stack_direction",
]
