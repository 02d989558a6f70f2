"""Start-up time of the CLI and of the inference path, each in a fresh process (best of N and median).

Reports ``cardiacseg --help``, ``cardiacseg --version``, ``import cardiacseg``, ``import
cardiacseg.inferers.predictor`` (what ``cardiacseg segment`` imports before it reads a study) and the
baselines ``import torch`` / ``import monai``, as seconds and as ratios against ``import torch`` measured in
the same run (the machine is shared: ratios travel, seconds do not). The lean MONAI import
(``cardiacseg._lean_import.import_monai_lean``) against the normal one: ``import monai`` alone, the inference
path with the lean import first, and a whole ``cardiacseg segment --fast`` run on the packaged demo study
with ``CARDIACSEG_FULL_IMPORTS=1`` and without (the same once the CLI calls the lean import), plus the
same run with the lean import done before ``cardiacseg.cli.main`` (what the CLI will do). ``--before REV`` also times the
cardiacseg commands on the package as of git revision REV (extracted to a temporary folder and put first on
``PYTHONPATH``), for a before/after table. Then a ``python -X importtime`` breakdown of the segment path:
self time summed per top-level package, the 20 largest cumulative imports, and who imports what.

Usage (from the repository root)::

    .venv/bin/python benchmarks/startup.py --repeat 5 --before HEAD~1 --output docs/benchmarks/startup.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

from _machine import cpu_bf16_flags, cpu_model  # benchmarks/ is on sys.path when run

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
CLI = str(Path(sys.executable).parent / "cardiacseg")
SEGMENT_PATH = "import cardiacseg.inferers.predictor"
LEAN = "from cardiacseg._lean_import import import_monai_lean; import_monai_lean()"
DEMO_STUDY = REPO / "cardiacseg" / "data" / "demo" / "SCD0000101" / "dicom"


def time_command(cmd: list[str], repeat: int, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Best and median wall time of ``cmd`` over ``repeat`` fresh processes (run outside the checkout)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=tempfile.gettempdir())
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def extract_revision(rev: str, dest: Path) -> None:
    """Write the ``cardiacseg`` package as of ``rev`` into ``dest``."""
    archive = subprocess.run(["git", "archive", rev, "cardiacseg"], cwd=REPO, check=True, capture_output=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")


def per_package_table(statement: str, title: str) -> list[str]:
    """Markdown: self time of ``statement``'s imports summed per top-level package, 10 largest."""
    rows = importtime(statement)
    per_package: dict[str, int] = {}
    for _, self_us, _, name in rows:
        per_package[name.split(".")[0]] = per_package.get(name.split(".")[0], 0) + self_us
    total_us = sum(per_package.values())
    # who brings each heavy package in: the outermost third-party importer of its first import
    brought_by = {}
    for i, (_, _, _, name) in enumerate(rows):
        top = name.split(".")[0]
        if name == top and top not in brought_by:
            outer = [c.split(".")[0] for c in importer_chain(rows, i)]
            outer = [c for c in outer if c not in (top, "cardiacseg")]
            brought_by[top] = outer[-1] if outer else "cardiacseg"
    lines = [
        f"{title}: total self time {total_us / 1e6:.2f} s. Self time summed per top-level package (10 "
        "largest), and the package whose import first brought it in:",
        "",
        "| package | self s | share | brought in by |",
        "|---|---|---|---|",
    ]
    for pkg, us in sorted(per_package.items(), key=lambda kv: -kv[1])[:10]:
        lines.append(f"| {pkg} | {us / 1e6:.2f} | {100 * us / total_us:.0f} % | {brought_by.get(pkg, '?')} |")
    return lines


def importtime(statement: str) -> list[tuple[int, int, int, str]]:
    """``(depth, self_us, cumulative_us, module)`` rows of ``python -X importtime -c statement``."""
    err = subprocess.run(
        [PY, "-X", "importtime", "-c", statement], check=True, capture_output=True, text=True, cwd=REPO
    ).stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line.split(":", 1)[1].split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((depth, int(self_us), int(cum_us), name.strip()))
    return rows


def importer_chain(rows: list[tuple[int, int, int, str]], i: int) -> list[str]:
    """Modules that (transitively) imported ``rows[i]``, nearest first (importtime prints children first)."""
    depth, chain = rows[i][0], []
    for d, _, _, name in rows[i + 1 :]:
        if d < depth:
            chain.append(name)
            depth = d
    return chain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="fresh processes per command (best and median)")
    ap.add_argument("--before", help="git revision to time as 'before' (e.g. HEAD~1)")
    ap.add_argument("--output", type=Path, help="markdown file to write (e.g. docs/benchmarks/startup.md)")
    ap.add_argument("--segment-repeat", type=int, help="runs per whole-segment row (default: --repeat)")
    ap.add_argument("--no-segment", action="store_true", help="leave out the whole `cardiacseg segment` rows")
    args = ap.parse_args()
    segment_repeat = args.segment_repeat or args.repeat

    commands = {
        "cardiacseg --help": [CLI, "--help"],
        "cardiacseg --version": [CLI, "--version"],
        'python -c "import cardiacseg"': [PY, "-c", "import cardiacseg"],
        f'python -c "{SEGMENT_PATH}"': [PY, "-c", SEGMENT_PATH],
    }
    baselines = {
        'python -c "pass"': [PY, "-c", "pass"],
        'python -c "import torch"': [PY, "-c", "import torch"],
        'python -c "import monai"': [PY, "-c", "import monai"],
    }
    # the lean MONAI import against the normal one (not timed for --before: older revisions lack it)
    lean_rows = {
        'python -c "import torch"': [PY, "-c", "import torch"],
        'python -c "import monai"': [PY, "-c", "import monai"],
        "lean: `import_monai_lean()` (monai + monai.bundle)": [PY, "-c", LEAN],
        f'python -c "{SEGMENT_PATH}"': [PY, "-c", SEGMENT_PATH],
        f"lean: `import_monai_lean(); {SEGMENT_PATH}`": [PY, "-c", f"{LEAN}; {SEGMENT_PATH}"],
    }
    full_env = {**os.environ, "CARDIACSEG_FULL_IMPORTS": "1"}
    lean_env = {k: v for k, v in os.environ.items() if k != "CARDIACSEG_FULL_IMPORTS"}
    seg_tmp = tempfile.TemporaryDirectory()
    seg_args = [str(DEMO_STUDY), "-o", seg_tmp.name, "--fast", "--quiet", "--overwrite"]
    segment_rows: dict[str, tuple[list[str], dict[str, str]]] = {
        "`CARDIACSEG_FULL_IMPORTS=1 cardiacseg segment DEMO --fast`": ([CLI, "segment", *seg_args], full_env),
        "`cardiacseg segment DEMO --fast`": ([CLI, "segment", *seg_args], lean_env),
        "lean: `import_monai_lean()` then `cardiacseg.cli.main(segment DEMO --fast)`": (
            [
                PY,
                "-c",
                f"{LEAN}; from cardiacseg.cli import main; raise SystemExit(main({['segment', *seg_args]!r}))",
            ],
            lean_env,
        ),
    }
    results: dict[str, dict[str, tuple[float, float]]] = {"after": {}, "before": {}, "lean": {}}
    for name, cmd in baselines.items():
        results["after"][name] = time_command(cmd, args.repeat)
        print(f"{name:55s} best {results['after'][name][0]:6.2f} s", flush=True)
    for name, cmd in commands.items():
        results["after"][name] = time_command(cmd, args.repeat)
        print(f"{name:55s} best {results['after'][name][0]:6.2f} s", flush=True)
    # interleaved: each lean/full pair sees the same machine load as far as possible
    lean_times: dict[str, list[float]] = {name: [] for name in lean_rows}
    for _ in range(args.repeat):
        for name, cmd in lean_rows.items():
            lean_times[name] += [time_command(cmd, 1, lean_env)[0]]
    seg_times: dict[str, list[float]] = {name: [] for name in segment_rows}
    for _ in range(0 if args.no_segment else segment_repeat):
        for name, (cmd, env) in segment_rows.items():
            seg_times[name] += [time_command(cmd, 1, env)[0]]
    seg_tmp.cleanup()
    for name, times in [*lean_times.items(), *seg_times.items()]:
        if times:
            results["lean"][name] = (min(times), statistics.median(times))
            print(f"{name:55s} best {min(times):6.2f} s", flush=True)
    if args.before:
        with tempfile.TemporaryDirectory() as tmp:
            extract_revision(args.before, Path(tmp))
            env = {**os.environ, "PYTHONPATH": tmp}
            for name, cmd in commands.items():
                results["before"][name] = time_command(cmd, args.repeat, env)
                print(f"[{args.before}] {name:45s} best {results['before'][name][0]:6.2f} s", flush=True)
    torch_best = results["after"]['python -c "import torch"'][0]

    lines = [
        "# Start-up time: CLI and inference path",
        "",
        f"Measured {datetime.date.today().isoformat()} by `benchmarks/startup.py --repeat {args.repeat}"
        + (f" --before {args.before}`" if args.before else "`")
        + f" on {cpu_model()} ({cpu_bf16_flags()}; {os.cpu_count()} logical CPUs, shared with other jobs: "
        "timings are noisy, "
        "the ratios against `import torch` in the same run are what to compare). Python "
        f"{platform.python_version()}. Each command runs in a fresh process; best and median of "
        f"{args.repeat}.",
        "",
        "| command | "
        + (f"before ({args.before}) best / median s | " if args.before else "")
        + "best s | median s | best / `import torch` |",
        "|---|" + ("---|" if args.before else "") + "---|---|---|",
    ]
    for name in [*baselines, *commands]:
        best, med = results["after"][name]
        before = ""
        if args.before:
            b = results["before"].get(name)
            before = f"{b[0]:.2f} / {b[1]:.2f} | " if b else "– | "
        lines.append(f"| `{name}` | {before}{best:.2f} | {med:.2f} | {best / torch_best:.2f} |")
    lean = results["lean"]
    if lean:
        lines += [
            "",
            "## The lean MONAI import",
            "",
            "`cardiacseg._lean_import.import_monai_lean()` imports `monai` and `monai.bundle` with ignite, MLflow "
            "(FastAPI), pandas (pyarrow), matplotlib, scikit-learn, SymPy, ITK and the TensorBoard/Hugging Face/"
            "ONNX/OpenVINO packages made not importable, then importable again. Pairs run interleaved, "
            f"best and median of {args.repeat} (segment rows: {segment_repeat}); ratio: full over lean best.",
            "",
            "| command | best s | median s | best / `import torch` (this table's) | full / lean |",
            "|---|---|---|---|---|",
        ]
        # each lean row against its full counterpart: rows 2 and 4 against 1 and 3, segment rows against the first
        keys, seg_keys = list(lean_rows), [n for n in segment_rows if n in lean]
        pairs = {keys[2]: keys[1], keys[4]: keys[3], **{n: seg_keys[0] for n in seg_keys[1:]}}
        lean_torch = lean[keys[0]][0]  # import torch, timed interleaved with these rows
        for name in lean:
            best, med = lean[name]
            ratio = f"{lean[pairs[name]][0] / best:.2f}x" if name in pairs else "–"
            lines.append(f"| {name} | {best:.2f} | {med:.2f} | {best / lean_torch:.2f} | {ratio} |")
        lines += [
            "",
            "DEMO is the packaged study `cardiacseg/data/demo/SCD0000101/dicom` (2 phases x 12 slices), written "
            "to a temporary folder (`--fast --quiet --overwrite`). `cardiacseg segment` calls "
            "`import_monai_lean()` itself; `CARDIACSEG_FULL_IMPORTS=1` turns that off, so the first two rows "
            "are the CLI with the full and the lean import, and the third is the lean import done by hand "
            "before `cli.main` (the same program as the second; the difference is noise).",
        ]
    lines += ["", f"## What `{SEGMENT_PATH}` imports (`python -X importtime`, one run each)", ""]
    lines += per_package_table(SEGMENT_PATH, "Normal import")
    lines += [""]
    lines += per_package_table(f"{LEAN}; {SEGMENT_PATH}", "With `import_monai_lean()` first")
    rows = importtime(SEGMENT_PATH)
    lines += [
        "",
        "Top 20 cumulative imports (normal import):",
        "",
        "| module | cumulative s | imported by |",
        "|---|---|---|",
    ]
    seen: set[str] = set()
    top20: list[int] = []
    for i in sorted(range(len(rows)), key=lambda i: -rows[i][2]):
        if rows[i][3] not in seen and len(top20) < 20:
            seen.add(rows[i][3])
            top20.append(i)
    for i in top20:
        chain = importer_chain(rows, i)
        lines.append(f"| `{rows[i][3]}` | {rows[i][2] / 1e6:.2f} | {' ← '.join(chain[:3]) or '–'} |")
    lines += [
        "",
        "Reading: `--help`, `--version` and `import cardiacseg` import no torch, MONAI or NumPy (lazy "
        "`cardiacseg/__init__.py`; commands import their modules when they run). With a normal import the "
        "segment path pays for `import monai`: any `monai.*` import runs MONAI's `__init__`, which loads all "
        "its sub-packages and with them ignite (and through it `torch.distributed` and SymPy), MLflow, pandas, "
        "matplotlib, scikit-learn and ITK (column *brought in by*). The lean import hides those while MONAI "
        "is imported; what is left is torch, SciPy (preloaded by the lean import: cardiacseg's post-processing "
        "and scikit-image, which MONAI's connected-component transform uses, need it) and MONAI itself. "
        "cardiacseg imports matplotlib for its figures only when it draws them.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)


if __name__ == "__main__":
    main()
