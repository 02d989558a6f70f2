"""Data helpers: the synthetic phantom (datalists and splits arrive with the engines)."""

from __future__ import annotations

from cardiacseg.data.synthetic import PhantomTruth, make_cine_phantom

__all__ = ["PhantomTruth", "make_cine_phantom"]
