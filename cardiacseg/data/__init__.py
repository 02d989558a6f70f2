"""Data helpers: datalists and patient-level splits, and the synthetic phantom for tests."""

from __future__ import annotations

from cardiacseg.data import datalist
from cardiacseg.data.synthetic import PhantomTruth, make_cine_phantom

__all__ = ["PhantomTruth", "datalist", "make_cine_phantom"]
