"""What the slice-range classifier adds to a whole-study ``cardiacseg segment`` run (issue 16: <= 10 %).

Runs ``cardiacseg segment STUDY --fast --quiet`` with ``--slice-range all`` and with ``--slice-range
classifier`` in fresh processes, interleaved, ``--repeat`` times each, timing process start to outputs
written (what a user waits for), and reports best and median seconds and the classifier's share of the
best run. The CPU model and its bfloat16 flags are stated (the machine may be shared: compare the ratio).

Usage (from the repository root)::

    .venv/bin/python benchmarks/slice_range_speed.py --study ../shared/data/sunnybrook/dicoms/SCD0000101 \\
        --repeat 3 --output docs/benchmarks/slice_range_speed.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import cpu_bf16_flags, cpu_model  # benchmarks/ is on sys.path when run

CLI = str(Path(sys.executable).parent / "cardiacseg")
MODES = ("all", "classifier")


def run_once(study: Path, mode: str) -> float:
    """Seconds from process start to outputs written for one ``segment`` run."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [CLI, "segment", str(study), "-o", out, "--fast", "--quiet", "--slice-range", mode]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    """Time both modes and write the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, required=True, help="a cine study (DICOM folder or NIfTI)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode (interleaved)")
    parser.add_argument("--output", type=Path, help="markdown file to write")
    args = parser.parse_args()
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(args.repeat):
        for mode in MODES:
            times[mode].append(run_once(args.study, mode))
    best = {m: min(v) for m, v in times.items()}
    share = 100.0 * (best["classifier"] - best["all"]) / best["all"]
    lines = [
        "# Slice-range classifier: its share of a whole-study `cardiacseg segment` run",
        "",
        f"Measured {datetime.date.today()} by `benchmarks/slice_range_speed.py --repeat {args.repeat}` on "
        f"{cpu_model()} ({cpu_bf16_flags()}; {os.cpu_count()} logical CPUs, possibly shared: compare the "
        f"ratio). Study: `{args.study.name}`; `cardiacseg segment STUDY --fast --quiet`, process start to "
        "outputs written, fresh process per run, the two modes interleaved.",
        "",
        "| `--slice-range` | best s | median s |",
        "|---|---|---|",
    ]
    lines += [f"| `{m}` | {best[m]:.2f} | {statistics.median(times[m]):.2f} |" for m in MODES]
    med = {m: statistics.median(v) for m, v in times.items()}
    med_share = 100.0 * (med["classifier"] - med["all"]) / med["all"]
    lines += [
        "",
        f"The classifier adds {best['classifier'] - best['all']:.2f} s to the best run ({share:+.1f} %) and "
        f"{med['classifier'] - med['all']:.2f} s to the median ({med_share:+.1f} %). It classifies the "
        "slices of ED and ES only; loading its bundle (MONAI ConfigParser, the encoder, 10.8 MB of weights) "
        "is included, and with an unknown stack direction the 2.5D network runs both channel orders.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
