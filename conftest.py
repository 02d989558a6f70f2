"""Root pytest configuration: leave out what the core environment cannot import.

``cardiacseg/label`` imports MONAI Label, which lives in its own environment (``make label``); its
doctests are collected only where MONAI Label is installed. The app itself is tested over HTTP by
tests/label/test_label_server.py from the core environment.
"""

from __future__ import annotations

import importlib.util

collect_ignore = [] if importlib.util.find_spec("monailabel") else ["cardiacseg/label"]
