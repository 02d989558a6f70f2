"""Kept for import compatibility: :func:`read_study` lives in :mod:`cardiacseg.io.discover`."""

from __future__ import annotations

from cardiacseg.io.discover import read_study

__all__ = ["read_study"]
