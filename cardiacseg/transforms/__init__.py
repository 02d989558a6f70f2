"""MONAI transforms for cardiac cine MRI (array and dictionary versions) and augmentation presets.

Layout: channel-first ``(C, X, Y)`` slices or ``(C, X, Y, Z)`` stacks (see :mod:`.utils`).
"""

from __future__ import annotations

from cardiacseg.transforms.intensity import (
    CLAHE,
    CLAHEd,
    N4BiasFieldCorrection,
    N4BiasFieldCorrectiond,
    PercentileNormalize,
    PercentileNormalized,
    RandLighting,
    RandLightingd,
    SliceZScore,
    SliceZScored,
    percentile_zscore,
)
from cardiacseg.transforms.motion import (
    RandRespiratoryMotion,
    RandRespiratoryMotiond,
    RandSliceMisalignment,
    RandSliceMisalignmentd,
)
from cardiacseg.transforms.presets import PRESETS, get_preset
from cardiacseg.transforms.spatial import (
    HeartCrop,
    HeartCropd,
    InPlaneSpacing,
    InPlaneSpacingd,
    NormalizeSAXOrientation,
    NormalizeSAXOrientationd,
    locate_heart,
)
from cardiacseg.transforms.utils import (
    SPACING_UNKNOWN,
    label_to_metatensor,
    slice_to_metatensor,
    study_to_metatensor,
)

__all__ = [
    "CLAHE",
    "PRESETS",
    "SPACING_UNKNOWN",
    "CLAHEd",
    "HeartCrop",
    "HeartCropd",
    "InPlaneSpacing",
    "InPlaneSpacingd",
    "N4BiasFieldCorrection",
    "N4BiasFieldCorrectiond",
    "NormalizeSAXOrientation",
    "NormalizeSAXOrientationd",
    "PercentileNormalize",
    "PercentileNormalized",
    "RandLighting",
    "RandLightingd",
    "RandRespiratoryMotion",
    "RandRespiratoryMotiond",
    "RandSliceMisalignment",
    "RandSliceMisalignmentd",
    "SliceZScore",
    "SliceZScored",
    "get_preset",
    "label_to_metatensor",
    "locate_heart",
    "percentile_zscore",
    "slice_to_metatensor",
    "study_to_metatensor",
]
