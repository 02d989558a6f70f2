"""Motion transforms: array and dictionary versions."""

from __future__ import annotations

from cardiacseg.transforms.motion.array import *  # noqa: F403
from cardiacseg.transforms.motion.dictionary import *  # noqa: F403
