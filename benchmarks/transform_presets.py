"""Per-sample cost of each augmentation preset on 256 x 256 slices (real ACDC slices, 2 threads).

Usage: python benchmarks/transform_presets.py [SHARED_DATA]
Baseline in the same process: a single MONAI RandAffined (rotation, prob 1) on the same samples.
Writes docs/benchmarks/transform_presets.md and prints the table.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from monai.transforms import RandAffined

from cardiacseg.io import read_ssl4mis_study
from cardiacseg.transforms import slice_to_metatensor
from cardiacseg.transforms.presets import PRESETS

torch.set_num_threads(2)


def samples(shared: Path, n: int = 32) -> list[dict[str, torch.Tensor]]:
    study = read_ssl4mis_study(shared / "acdc_ssl4mis", "patient001")
    out = []
    for k in range(n):
        z = k % study.n_slices
        img = np.zeros((256, 256), np.float32)
        lab = np.zeros((256, 256), np.float32)
        h, w = study.image.shape[2:]
        img[:h, :w] = study.image[0, z][:256, :256]
        lab[:h, :w] = study.labels[0][z][:256, :256]
        out.append({"image": slice_to_metatensor(img), "label": slice_to_metatensor(lab)})
    return out


def per_sample_ms(transform, data, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    transform.set_random_state(0)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for d in data:
            transform({k: v.clone() for k, v in d.items()})
        best = min(best, (time.perf_counter() - t0) / len(data))
    return 1000.0 * best


if __name__ == "__main__":
    shared = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    data = samples(shared)
    base = per_sample_ms(
        RandAffined(("image", "label"), prob=1.0, rotate_range=0.3, mode=("bilinear", "nearest")), data
    )
    rows = [("baseline: MONAI RandAffined", base, 1.0)]
    for name, preset in PRESETS.items():
        ms = per_sample_ms(preset(), data)
        rows.append((f"preset {name}", ms, ms / base))
    lines = [
        "| transform (256x256 slice + label, 2 threads) | ms / sample | ratio to baseline |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {ms:.2f} | {r:.2f} |" for n, ms, r in rows]
    table = "\n".join(lines)
    print(table)
    out = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / "transform_presets.md").write_text("# Augmentation preset cost\n\n" + table + "\n")
