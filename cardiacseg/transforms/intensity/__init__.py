"""Intensity transforms: array and dictionary versions."""

from __future__ import annotations

from cardiacseg.transforms.intensity.array import *  # noqa: F403
from cardiacseg.transforms.intensity.dictionary import *  # noqa: F403
