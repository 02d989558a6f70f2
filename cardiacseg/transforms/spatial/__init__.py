"""Spatial transforms: array and dictionary versions."""

from __future__ import annotations

from cardiacseg.transforms.spatial.array import *  # noqa: F403
from cardiacseg.transforms.spatial.dictionary import *  # noqa: F403
