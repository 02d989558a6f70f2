"""Cost of curated cine reading vs a plain pydicom loop over the same files (same process).

Usage: python benchmarks/dicom_read.py [DICOM_FOLDER]   (default: the packaged demo study)
Reports seconds per study and the ratio cardiacseg / plain pydicom (stack pixels sorted by InstanceNumber).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pydicom

from cardiacseg.demo import demo_study_path
from cardiacseg.io import read_dicom_cine


def plain(folder: Path) -> np.ndarray:
    ds = [pydicom.dcmread(f) for f in folder.iterdir()]
    ds.sort(key=lambda d: int(d.InstanceNumber))
    return np.stack([d.pixel_array.astype(np.float32) for d in ds])


def best_of(fn, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else demo_study_path() / "dicom"
    base = best_of(lambda: plain(folder))
    ours = best_of(lambda: read_dicom_cine(folder))
    n = len(list(folder.iterdir()))
    print(
        f"{folder} ({n} files): plain pydicom {base:.3f} s, cardiacseg {ours:.3f} s, ratio {ours / base:.2f}"
    )
