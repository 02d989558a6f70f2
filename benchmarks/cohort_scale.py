"""Cohort throughput on this machine: one process vs Ray workers, and a projection to 100,000 studies.

Usage::

    python benchmarks/cohort_scale.py [--copies 2] [--fast]

The cohort: the two shared Sunnybrook cine DICOM studies (20 phases x 10-12 slices of 256 x 256, the size
of a clinical short-axis cine), each copied ``--copies`` times under its own name in a temporary folder
(throughput only: the copies are segmented as separate studies). Every arm is ``cardiacseg segment`` run
as a user runs it, in its own process, timed from process start to the summary written, with the
defaults (or ``--fast``), progress as lines (stderr is a pipe):

- ``single``: one process, torch's default threads (2 on this machine);
- ``ray, 2 workers x 1 CPU``: ``--ray`` (a local Ray instance started by the command), two actors;
- ``ray, 1 worker x 2 CPUs``: ``--ray --ray-workers 1 --ray-cpus 2``: the same compute as ``single``, so
  the difference is what Ray adds (start-up and per study).

Per-study seconds come from the batch's own timing (single: the progress lines; Ray: the manifest's
``seconds``). Writes ``docs/benchmarks/cohort_scale.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "sunnybrook" / "dicoms"
OUT = REPO / "docs" / "benchmarks"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_bf16_flags, cpu_model  # noqa: E402

STUDIES = ("SCD0000101", "SCD0000201")
CLI = [sys.executable, "-m", "cardiacseg"]


def make_cohort(folder: Path, copies: int) -> int:
    """Copy each shared study ``copies`` times into ``folder``; return the number of studies.

    Copies, not links, with their own study, series and instance UIDs: study discovery resolves links and
    groups files by series UID, so identical copies would be one study.
    """
    import pydicom
    from pydicom.uid import generate_uid

    n = 0
    for study in STUDIES:
        for k in range(copies):
            target = folder / f"{study}_copy{k}"
            shutil.copytree(DATA / study, target)
            uids: dict[str, str] = {}
            for f in sorted(target.rglob("*.dcm")):
                ds = pydicom.dcmread(f)
                for tag in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
                    old = str(getattr(ds, tag))
                    uids.setdefault(old, generate_uid(entropy_srcs=[old, str(k)]))
                    setattr(ds, tag, uids[old])
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                ds.save_as(f)
            n += 1
    return n


def run_arm(cohort: Path, out: Path, extra: list[str]) -> dict[str, Any]:
    """Run one arm as a user would; wall seconds from process start to exit, and per-study seconds."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [*CLI, "segment", str(cohort), "-o", str(out), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    rows = json.loads((out / "batch_summary.json").read_text())
    per_study: list[float] = []
    manifest = out / "cohort_manifest.jsonl"
    if manifest.is_file():
        for line in manifest.read_text().splitlines():
            record = json.loads(line)
            if record["event"] == "done":
                per_study.append(float(record["seconds"]))
    else:
        per_study = [float(s) for s in re.findall(r": done \(([\d.]+) s\)", proc.stderr)]
    done = sum(r["status"] == "done" for r in rows)
    if done != len(per_study):
        raise RuntimeError(f"{done} studies done but {len(per_study)} timings found")
    return {
        "command": " ".join(["cardiacseg", *cmd[3:]]),
        "wall_s": wall,
        "per_study_s": per_study,
        "done": done,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--fast", action="store_true")
    args = parser.parse_args()
    common = ["--fast"] if args.fast else []
    arms = {
        "single process (2 threads)": common,
        "ray, 2 workers x 1 CPU": [*common, "--ray", "--ray-workers", "2", "--ray-cpus", "1"],
        "ray, 1 worker x 2 CPUs": [*common, "--ray", "--ray-workers", "1", "--ray-cpus", "2"],
    }
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cohort = Path(tmp) / "cohort"
        cohort.mkdir()
        n = make_cohort(cohort, args.copies)
        for i, (name, extra) in enumerate(arms.items()):
            # progress lines (not bars) for the single arm: its per-study seconds are read from them
            arm = run_arm(cohort, Path(tmp) / f"out{i}", extra)
            if arm["done"] != n:
                raise RuntimeError(f"{name}: {arm['done']} of {n} studies segmented")
            arm["studies"] = n
            arm["studies_per_hour"] = 3600 * n / arm["wall_s"]
            arm["mean_study_s"] = sum(arm["per_study_s"]) / max(1, len(arm["per_study_s"]))
            results[name] = arm
            print(name, round(arm["wall_s"], 1), "s", [round(s, 1) for s in arm["per_study_s"]], flush=True)
    single = results["single process (2 threads)"]
    ray1 = results["ray, 1 worker x 2 CPUs"]
    ray2 = results["ray, 2 workers x 1 CPU"]
    # steady state: studies a 2-core node finishes per hour once started (no start-up)
    node_rate = 3600 * 2 / ray2["mean_study_s"]
    record = {
        "cpu": f"{cpu_model()} ({cpu_bf16_flags()})",
        "settings": "--fast" if args.fast else "defaults",
        "arms": results,
        "ray_startup_s": ray1["wall_s"] - sum(ray1["per_study_s"]),
        "single_startup_s": single["wall_s"] - sum(single["per_study_s"]),
        "ray_per_study_overhead_s": ray1["mean_study_s"] - single["mean_study_s"],
        "steady_studies_per_hour_per_2core_node": node_rate,
    }
    lines = [
        "# Cohort throughput: one process vs Ray workers",
        "",
        f"`python benchmarks/cohort_scale.py{' --fast' if args.fast else ''}` on {record['cpu']}, 2 cores, "
        f"fp32 unless the CPU has native bf16 and `--fast` asks for it; {single['studies']} studies (the two "
        "shared Sunnybrook cine DICOM studies, 20 phases x 10-12 slices of 256 x 256, copied "
        f"{args.copies} times each), {record['settings']}. Wall time from process start to the "
        "summary written (imports, Ray start-up and model loading included).",
        "",
        "| arm | wall s | studies per hour | mean s per study (inside the batch) |",
        "|---|---|---|---|",
    ]
    for name, arm in results.items():
        lines.append(
            f"| {name} | {arm['wall_s']:.1f} | {arm['studies_per_hour']:.0f} | {arm['mean_study_s']:.1f} |"
        )
    lines += [
        "",
        f"- Start-up before the first study (process, imports, model; for Ray also the local instance and "
        f"the actors): single {record['single_startup_s']:.1f} s, Ray {record['ray_startup_s']:.1f} s.",
        f"- What Ray adds per study (1 worker x 2 CPUs vs one process, same compute): "
        f"{record['ray_per_study_overhead_s']:+.2f} s.",
        f"- Steady state of one 2-core node with 2 workers: {node_rate:.0f} studies per hour.",
        "",
        "## Projection to 100,000 studies (UK Biobank scale)",
        "",
    ]
    core_s = ray2["mean_study_s"]  # CPU-seconds per study: one worker holds one CPU
    core_hours = 100_000 * core_s / 3600
    record["core_hours_per_100k"] = core_hours
    lines += [
        f"From the measured steady state ({core_s:.1f} CPU-seconds per study with one CPU per worker), "
        f"100,000 studies need about **{core_hours:,.0f} core-hours**, assuming throughput grows with the "
        "number of cores (one worker per core or per few cores; the studies are independent) and each study "
        "is as large as these (20 phases x 10-12 slices; UK Biobank short-axis cines have 50 phases, about "
        "2.5x the slices, so multiply by about 2.5). Wall time for a few cluster sizes (Ray start-up, a few "
        "seconds per node, is negligible at this scale):",
        "",
        "| nodes x cores | hours for 100,000 studies (this study size) | x 2.5 for 50-phase cines |",
        "|---|---|---|",
    ]
    for nodes, cores in ((1, 2), (1, 32), (10, 32), (50, 32)):
        hours = core_hours / (nodes * cores)
        lines.append(f"| {nodes} x {cores} | {hours:,.1f} | {2.5 * hours:,.1f} |")
    lines += [
        "",
        "Cost is these core-hours times your price per core-hour. GPU nodes were not measured (no GPU was "
        "lent to this session); `--ray` gives every worker a GPU when the cluster has them.",
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cohort_scale.json").write_text(json.dumps(record, indent=1) + "\n")
    (OUT / "cohort_scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
