"""``python -m cardiacseg``."""

from __future__ import annotations

import sys

from cardiacseg.cli import main

sys.exit(main())
