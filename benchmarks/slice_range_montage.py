"""Slice-range classes on the ACDC copy: class counts per phase, ambiguous stacks, one montage per class.

Reads every patient of ``../shared/data/acdc_ssl4mis``, derives the OAP / IN / OBS class of each ED and ES
slice with :func:`cardiacseg.data.slice_range_labels` (one direction per patient from both phases), prints
the counts as a Markdown table and writes ``docs/images/slice_range_{oap,in,obs}.png``: 12 random slices of
the class (different patients first), shown as the label-free heart crop a classifier sees, captioned
``patient phase slice/number of slices``. Run from the repository root::

    .venv/bin/python benchmarks/slice_range_montage.py [--data ../shared/data/acdc_ssl4mis] [--out docs/images]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from cardiacseg.data import slice_range_items, slice_range_labels, stack_direction
from cardiacseg.enums import SliceRange
from cardiacseg.io import list_ssl4mis_patients, read_ssl4mis_study

REPO = Path(__file__).resolve().parents[1]


def class_counts(root: Path) -> tuple[dict[str, Counter[int]], list[str], dict[str, int], Counter[str]]:
    """Counts per phase, the ambiguous stacks (with reason), per-phase direction checks, gap slices."""
    counts: dict[str, Counter[int]] = {"ED": Counter(), "ES": Counter()}
    ambiguous: list[str] = []
    single = {"agree": 0, "disagree": 0, "ambiguous": 0}
    gaps: Counter[str] = Counter()
    for pid in list_ssl4mis_patients(root):
        study = read_ssl4mis_study(root, pid)
        direction = stack_direction([study.labels[t] for t in sorted(study.labels)])
        if direction.ambiguous:
            ambiguous.append(f"{pid}: {direction.reason}; cues {direction.cues}")
        for t, ph in ((study.ed_phase, "ED"), (study.es_phase, "ES")):
            assert t is not None
            alone = stack_direction(study.labels[t])
            single["agree" if alone.apex_to_base == direction.apex_to_base else "disagree"] += 1
            single["ambiguous"] += int(alone.ambiguous)
            out = slice_range_labels(study.labels[t], direction)
            counts[ph].update(int(c) for c in out.classes)
            gaps[ph] += len(out.gaps)
    return counts, ambiguous, single, gaps


def pick(items: list[dict[str, Any]], label: int, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` random items of a class, one per patient first, then from patients already used."""
    rng = np.random.default_rng(seed)
    pool = [items[i] for i in rng.permutation(len(items)) if items[i]["label"] == label]
    first: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    seen: set[str] = set()
    for d in pool:
        (rest if d["patient"] in seen else first).append(d)
        seen.add(d["patient"])
    return (first + rest)[:n]


def montage(chosen: list[dict[str, Any]], n_slices: dict[str, int], title: str, path: Path) -> None:
    """A 3 x 4 grid of crops with small captions, saved as a small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 4, figsize=(6.4, 5.0), dpi=80)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, d in zip(axes.ravel(), chosen, strict=False):
        img = d["image"][d["image"].shape[0] // 2].T  # (X, Y) -> shown as stored (rows, columns)
        lo, hi = np.percentile(img, (1, 99.5))
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="bilinear")
        caption = f"{d['patient'][-3:]} {d['phase']} z{d['slice']}/{n_slices[d['patient']] - 1}"
        ax.text(3, 12, caption, color="yellow", fontsize=6.5)
    fig.suptitle(title, fontsize=8)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.94, bottom=0.01, wspace=0.03, hspace=0.03)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    """Print the counts and write the three montages."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "acdc_ssl4mis")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    counts, ambiguous, single, gaps = class_counts(args.data)
    print("| phase | OAP | IN | OBS | slices |\n|---|---|---|---|---|")
    for ph in ("ED", "ES"):
        c = counts[ph]
        print(f"| {ph} | {c[0]} | {c[1]} | {c[2]} | {sum(c.values())} |")
    print(f"\nambiguous stacks ({len(ambiguous)}):", *ambiguous, sep="\n  ")
    print(f"one phase alone vs both phases: {single}; gap slices: {dict(gaps)}")

    items = slice_range_items(args.data, crop_size=160, context=0)
    n_slices = Counter(d["patient"] for d in items if d["phase"] == "ED")
    args.out.mkdir(parents=True, exist_ok=True)
    for cls in SliceRange:
        chosen = pick(items, int(cls), 12, args.seed)
        path = args.out / f"slice_range_{cls.name.lower()}.png"
        title = f"{cls.name}, 12 ACDC slices (label-free 160 px heart crop; z0 = base)"
        montage(chosen, dict(n_slices), title, path)
        print(
            f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}: {path.stat().st_size // 1024} KB"
        )


if __name__ == "__main__":
    main()
