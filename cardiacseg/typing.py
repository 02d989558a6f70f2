"""Shared type aliases."""

from __future__ import annotations

import os
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

PathLike: TypeAlias = str | os.PathLike[str]
FloatArray: TypeAlias = npt.NDArray[np.float32]
LabelArray: TypeAlias = npt.NDArray[np.uint8]
Affine: TypeAlias = npt.NDArray[np.float64]
#: Spacing in mm in array order of a study's spatial axes: (slice z, row y, column x).
SpacingZYX: TypeAlias = tuple[float, float, float]
