"""Copy a transfer-experiment's results into docs/ and print its summary as a Markdown table.

Usage::

    python benchmarks/transfer_experiment/report.py OUT NAME

copies ``OUT/summary.csv`` to ``docs/benchmarks/NAME.csv``, ``OUT/summary.json`` to
``docs/benchmarks/NAME.json``, ``OUT/learning_curves.csv`` to ``docs/benchmarks/NAME_curves.csv`` and
the two PNGs to ``docs/images/transfer_NAME_{raw,smoothed}.png``, then prints the table.
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _f(value: str, digits: int = 3) -> str:
    return "" if value in ("", None) else f"{float(value):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("name")
    args = parser.parse_args()
    bench, images = REPO / "docs" / "benchmarks", REPO / "docs" / "images"
    shutil.copy(args.out / "summary.csv", bench / f"{args.name}.csv")
    shutil.copy(args.out / "summary.json", bench / f"{args.name}.json")
    shutil.copy(args.out / "learning_curves.csv", bench / f"{args.name}_curves.csv")
    for kind in ("raw", "smoothed"):
        png = args.out / f"learning_curves_{kind}.png"
        if png.is_file():
            shutil.copy(png, images / f"transfer_{args.name}_{kind}.png")
    with (args.out / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    print(
        "| arm | start | subset | n | train images | epochs | start point (mean; LV/MYO/RV) | convergence "
        "(images) | peak (mean; LV/MYO/RV) | peak at (images) | minutes |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if not r["start_dice"]:
            print(
                f"| {r['arm']} | {r['start']} | {r['subset']} | {r['n']} | {r['train_images']} | | not run | | | | |"
            )
            continue
        parts = [s for s in ("lv", "myo", "rv") if r.get(f"start_{s}")]
        start = "/".join(_f(r[f"start_{s}"], 2) for s in parts)
        peak = "/".join(_f(r[f"peak_{s}"], 2) for s in parts)
        minutes = _f(str(float(r["seconds"]) / 60), 1) if r["seconds"] else ""
        print(
            f"| {r['arm']} | {r['start']} | {r['subset']} | {r['n']} | {r['train_images']} | {r['epochs']} | "
            f"{_f(r['start_dice'])} ({start}) | {r['convergence_images']} | {_f(r['peak_dice'])} ({peak}) | "
            f"{r['peak_images']} | {minutes} |"
        )


if __name__ == "__main__":
    main()
