"""What adversarial augmentation (configs/adversarial.json) costs per training epoch on this CPU.

The bundle's training route (``train.json``, its defaults: crop 160, patch 128, batch 16, nnU-Net
augmentation) on the same real ACDC patients, one epoch at a time, alternating plain and adversarial runs
(``adversarial_steps`` 2 and 1) so that both see the same machine load; reports seconds per epoch and the
ratio. Writes ``docs/benchmarks/adversarial_cost.md`` and ``.json``.

Usage::

    python benchmarks/adversarial_cost.py [--patients 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cardiacseg.engines import training_workflow
from cardiacseg.io.ssl4mis import list_ssl4mis_patients

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "acdc_ssl4mis"
OUT = REPO / "docs" / "benchmarks"
BUNDLE = REPO / "cardiacseg" / "cardiac_cine_seg"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_bf16_flags, cpu_model  # noqa: E402


def one_epoch(files: tuple[str, ...], patients: list[str], steps: int | None) -> float:
    """Seconds of one training epoch (no validation) with these config files."""
    extra = {} if steps is None else {"adversarial_steps": steps}
    with tempfile.TemporaryDirectory() as tmp:
        wf = training_workflow(
            BUNDLE,
            config_files=files,
            data_root=str(DATA),
            ckpt_dir=tmp,
            epochs=1,
            val_interval=100,
            mlflow_tracking=False,
            train_patients=patients,
            val_patients=patients[:1],
            **extra,
        )
        trainer = wf.parser.get_parsed_content("train#trainer")
        start = time.perf_counter()
        trainer.run()
        seconds = time.perf_counter() - start
        wf.finalize()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    patients = list_ssl4mis_patients(DATA)[: args.patients]
    arms = {
        "plain": (("train.json",), None),
        "adversarial, 1 step": (("train.json", "adversarial.json"), 1),
        "adversarial, 2 steps (default)": (("train.json", "adversarial.json"), 2),
    }
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(args.repeats):
        for name, (files, steps) in arms.items():
            times[name].append(round(one_epoch(files, patients, steps), 1))
            print(name, times[name][-1], flush=True)
    plain = float(np.median(times["plain"]))
    rows = [
        {
            "arm": name,
            "seconds_per_epoch": ts,
            "median": float(np.median(ts)),
            "ratio": float(np.median(ts)) / plain,
        }
        for name, ts in times.items()
    ]
    result = {"cpu": f"{cpu_model()} ({cpu_bf16_flags()})", "patients": patients, "rows": rows}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "adversarial_cost.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# Cost of adversarial augmentation per training epoch",
        "",
        f"`python benchmarks/adversarial_cost.py` on {result['cpu']}, fp32; train.json defaults (crop 160, "
        f"patch 128, batch 16, nnU-Net augmentation) on the ED/ES slices of {len(patients)} ACDC patients; "
        "one epoch without validation; arms alternated so they share the machine's load.",
        "",
        "| arm | seconds per epoch (runs) | median | ratio to plain |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['seconds_per_epoch']} | {r['median']:.1f} | {r['ratio']:.2f} |")
    (OUT / "adversarial_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
