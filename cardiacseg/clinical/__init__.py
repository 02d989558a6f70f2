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

__all__ = [
    "MYOCARDIAL_DENSITY_G_PER_ML",
    "CardiacIndices",
    "PhaseVolumes",
    "compute_cardiac_indices",
    "compute_label_volumes",
    "detect_ed_es",
    "per_slice_table",
]
