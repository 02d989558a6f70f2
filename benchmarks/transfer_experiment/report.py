"""Put a transfer-experiment's results into docs/ and print its summary as a Markdown table.

Usage::

    python benchmarks/transfer_experiment/report.py OUT KEY [--extra FILE.json]

adds ``OUT``'s summary rows (with ``experiment = KEY``) to ``docs/benchmarks/transfer_experiment.csv``,
its summary, learning curves and ``--extra`` (e.g. zero-shot Dice, timings) under ``KEY`` in
``docs/benchmarks/transfer_experiment.json``, copies the two PNGs to
``docs/images/transfer_KEY_{raw,smoothed}.png``, and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _f(value: str | None, digits: int = 3) -> str:
    return "" if value in ("", None) else f"{float(str(value)):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("key")
    parser.add_argument("--extra", type=Path)
    args = parser.parse_args()
    bench, images = REPO / "docs" / "benchmarks", REPO / "docs" / "images"
    with (args.out / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    with (args.out / "learning_curves.csv").open() as f:
        curves = list(csv.DictReader(f))
    doc_json = bench / "transfer_experiment.json"
    content = json.loads(doc_json.read_text()) if doc_json.is_file() else {}
    content[args.key] = {
        "summary": json.loads((args.out / "summary.json").read_text()),
        "grid": json.loads((args.out / "grid.json").read_text()),
        "learning_curves": curves,
    }
    if args.extra is not None:
        content[args.key]["extra"] = json.loads(args.extra.read_text())
    doc_json.write_text(json.dumps(content, indent=1) + "\n")
    doc_csv = bench / "transfer_experiment.csv"
    old = []
    if doc_csv.is_file():
        with doc_csv.open() as f:
            old = [r for r in csv.DictReader(f) if r["experiment"] != args.key]
    fields = ["experiment", *rows[0].keys()]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(old + [dict(r, experiment=args.key) for r in rows])
    doc_csv.write_text(buffer.getvalue())
    for kind in ("raw", "smoothed"):
        png = args.out / f"learning_curves_{kind}.png"
        if png.is_file():
            shutil.copy(png, images / f"transfer_{args.key}_{kind}.png")
    print(
        "| arm | train images | epochs | start point: mean (LV/MYO/RV) | convergence (images) "
        "| peak: mean (LV/MYO/RV) | peak at (images) | minutes |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if not r["start_dice"]:
            print(f"| {r['arm']} | {r['train_images']} | | not run ({r['status']}) | | | | |")
            continue
        parts = [s for s in ("lv", "myo", "rv") if r.get(f"start_{s}")]
        start = "/".join(_f(r[f"start_{s}"], 2) for s in parts)
        peak = "/".join(_f(r[f"peak_{s}"], 2) for s in parts)
        minutes = _f(str(float(r["seconds"]) / 60), 1) if r["seconds"] else ""
        print(
            f"| {r['arm']} | {r['train_images']} | {r['epochs']} | {_f(r['start_dice'])} ({start}) | "
            f"{r['convergence_images']} | {_f(r['peak_dice'])} ({peak}) | {r['peak_images']} | {minutes} |"
        )


if __name__ == "__main__":
    main()
