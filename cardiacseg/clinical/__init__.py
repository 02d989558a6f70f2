"""Clinical indices, reports and pictures."""

from __future__ import annotations

from cardiacseg.clinical.indices import (
    MYOCARDIAL_DENSITY_G_PER_ML,
    CardiacIndices,
    PhaseVolumes,
    compute_cardiac_indices,
    compute_label_volumes,
    detect_ed_es,
    per_slice_table,
)
from cardiacseg.clinical.qc import QCFlag, quality_flags
from cardiacseg.clinical.slice_range import apply_slice_range, lv_slice_range, myocardial_coverage

__all__ = [
    "MYOCARDIAL_DENSITY_G_PER_ML",
    "CardiacIndices",
    "PhaseVolumes",
    "QCFlag",
    "apply_slice_range",
    "compute_cardiac_indices",
    "compute_label_volumes",
    "detect_ed_es",
    "lv_slice_range",
    "myocardial_coverage",
    "per_slice_table",
    "quality_flags",
]
