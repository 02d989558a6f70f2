"""Run one fuzz case the way a user would, in a forked child, and classify what happened.

The parent builds the input, hashes every file under it, forks, and waits (polling ``os.wait4``, which also
gives the child's peak RSS) for at most ``timeout_s``. The child caps its address space (``RLIMIT_AS``), runs
``cardiacseg.cli.main(["info", path])`` (and, for HDF5 cases, ``read_ssl4mis_frame`` /
``read_ssl4mis_study``), re-reads a study that ``info`` accepted to check it is plausible, and for a seeded
subset segments it with the shipped model. Then the parent hashes the inputs again and looks for outputs
left without ``report.json`` and for temporary files.

Outcomes (one per case, the first that applies in this order):
``hang`` (killed after ``timeout_s``), ``oom`` (peak RSS over ``rss_limit_mb``, or a MemoryError at the
address-space cap), ``input changed``, ``partial output``, ``traceback`` (an exception that is not a library
input error, a crash, or an input error whose message does not name the input), ``implausible`` (read
without complaint, but the result is not a usable study: non-finite voxels, spacing, affine, wrong number
of dimensions), ``refused`` (a ValueError subclass or FileNotFoundError naming the input and the problem),
``ok``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import resource
import signal
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.fuzz.generators import BuiltCase, FuzzCase, Sources, build_case

__all__ = ["FINDINGS", "OUTCOMES", "CaseResult", "run_case", "snapshot"]

OUTCOMES = ("ok", "refused", "traceback", "implausible", "hang", "oom", "input changed", "partial output")
FINDINGS = ("traceback", "implausible", "hang", "oom", "input changed", "partial output")
_PRECEDENCE = ("hang", "oom", "input changed", "partial output", "traceback", "implausible", "refused", "ok")


@dataclass
class CaseResult:
    """One case's record."""

    index: int
    family: str
    kind: str
    seed: int
    mutation: str
    outcome: str
    message: str
    seconds: float
    rss_mb: float
    segmented: bool = False
    steps: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------
# file-system checks (parent)


def snapshot(path: Path) -> dict[str, str]:
    """Every entry under ``path`` (not following links): sha256 of regular files, a marker for others."""
    out: dict[str, str] = {}

    def entry(p: Path, rel: str) -> None:
        try:
            st = os.lstat(p)
        except OSError as exc:
            out[rel] = f"error:{exc.errno}"
            return
        import stat

        if stat.S_ISLNK(st.st_mode):
            out[rel] = f"link:{os.readlink(p)}"
        elif stat.S_ISREG(st.st_mode):
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            out[rel] = h.hexdigest()
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = "dir"
        else:
            out[rel] = f"special:{stat.S_IFMT(st.st_mode)}"

    if not os.path.lexists(path):
        return out
    entry(path, ".")
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path, followlinks=False):
            for name in dirs + files:
                p = Path(root) / name
                entry(p, str(p.relative_to(path)))
    return out


def _partial_outputs(out_dir: Path, input_path: Path) -> list[str]:
    problems = []
    if out_dir.is_dir():
        for study in sorted(p for p in out_dir.iterdir() if p.is_dir() and p.name != "errors"):
            files = [p.name for p in study.iterdir()]
            if files and "report.json" not in files:
                problems.append(f"{study.name}/ has {sorted(files)} but no report.json")
    roots = [
        out_dir,
        input_path if input_path.is_dir() and not input_path.is_symlink() else input_path.parent,
    ]
    for root in roots:
        if not root.is_dir():
            continue
        for dirpath, _, files in os.walk(root, followlinks=False):
            for name in files:
                if name.startswith(".") and name.count(".") >= 2:  # atomic_path temp names: .<target>.<rand>
                    problems.append(f"temporary file left: {Path(dirpath) / name}")
    return problems


# ----------------------------------------------------------------------------------------------------------
# child


def _value_error_names() -> set[str]:
    names = {"FileNotFoundError"}
    todo: list[type] = [ValueError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def _names_input(msg: str, path: Path) -> bool:
    """Does an error message name the input (the path, a file under it, or its distinctive name)?"""
    candidates = {str(path), str(path.resolve()), path.name}
    if path.is_dir() and not path.is_symlink():
        for _, dirs, files in os.walk(path, followlinks=False):
            candidates.update(dirs + files)
    for c in candidates:
        if c and re.search(r"(?<![\w.])" + re.escape(c) + r"(?![\w])", msg):
            return True
    return False


def _tail(exc: BaseException) -> str:
    """Exception, message, and where: the deepest cardiacseg frame and the frame that raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/cardiacseg/" in f.filename]
    shown = ([ours[-1]] if ours else []) + (
        [frames[-1]] if frames and (not ours or frames[-1] != ours[-1]) else []
    )
    where = " -> ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in shown)
    return f"{type(exc).__name__}: {exc} [at {where}]"


def _classify_exc(exc: BaseException, path: Path) -> tuple[str, str]:
    if isinstance(exc, MemoryError):
        return "oom", _tail(exc)
    if isinstance(exc, ValueError | FileNotFoundError):
        if _names_input(str(exc), path):
            return "refused", f"{type(exc).__name__}: {exc}"
        return "traceback", "error message does not name the input: " + _tail(exc)
    return "traceback", _tail(exc)


def _check_study(study: Any) -> str:
    """Reasons a study that was read without complaint is not usable ('' when it is)."""
    img = np.asarray(study.image)
    why = []
    if img.ndim != 4 or min(img.shape) < 1:
        why.append(f"image shape {img.shape} is not (T, Z, Y, X) with every axis >= 1")
    elif not np.issubdtype(img.dtype, np.floating):
        why.append(f"image dtype {img.dtype}")
    elif not np.isfinite(img).all():
        why.append(f"{int((~np.isfinite(img)).sum())} non-finite voxels")
    sp = study.spacing_mm
    if sp is not None and (len(sp) != 3 or not all(np.isfinite(s) and s > 0 for s in sp)):
        why.append(f"spacing_mm {sp}")
    aff = study.affine
    if aff is not None:
        a = np.asarray(aff, dtype=np.float64)
        if a.shape != (4, 4) or not np.isfinite(a).all() or abs(np.linalg.det(a[:3, :3])) < 1e-6:
            why.append(f"affine not finite and invertible: {a[:3, :3].tolist()}")
    times = study.phase_times_ms
    if times is not None and not all(np.isfinite(t) for t in times):
        why.append(f"phase_times_ms {times}")
    return "; ".join(why)


def _check_h5(image: np.ndarray, label: np.ndarray) -> str:
    why = []
    if image.ndim != 3 or image.size == 0:
        why.append(f"image shape {image.shape} is not a non-empty (Z, H, W) stack")
    if image.shape != label.shape:
        why.append(f"image {image.shape} and label {label.shape} differ")
    if image.size and not np.isfinite(image).all():
        why.append(f"{int((~np.isfinite(image)).sum())} non-finite voxels")
    extra = set(np.unique(label).tolist()) - {0, 1, 2, 3}
    if extra:
        why.append(f"label values {sorted(extra)[:5]} outside 0..3")
    return "; ".join(why)


def _read_as_info(path: Path) -> list[Any]:
    """The studies ``info`` reported as read (re-read here to check them)."""
    try:
        from cardiacseg.io.discover import discover_studies, read_study
    except ImportError:  # before the study discovery module
        from cardiacseg.io.readers import read_study

        return [read_study(path)]
    found = discover_studies([path]) if path.is_dir() else []
    if len(found) <= 1:
        return [read_study(path)]
    studies = []
    for s in found:
        try:
            studies.append(s.read())
        except (ValueError, FileNotFoundError):  # reported by info as an error line
            continue
    return studies


def _step(fn: Any, path: Path) -> tuple[str, str, Any]:
    try:
        value = fn()
    except Exception as exc:  # the oracle: anything not a named input error is a finding
        outcome, msg = _classify_exc(exc, path)
        return outcome, msg, None
    return "ok", "", value


def _child_main(case: FuzzCase, built: BuiltCase, out_dir: Path, predictor: Any) -> dict[str, Any]:
    from cardiacseg import cli

    path = built.path
    steps: dict[str, Any] = {}

    # 1. what a user runs first
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = cli.main(["info", str(path)])
    except Exception as exc:
        steps["info"] = _classify_exc(exc, path)
    else:
        text = out.getvalue() + "\n" + err.getvalue()
        errors = [ln.strip() for ln in text.splitlines() if "error:" in ln and not ln.startswith(" ")]
        if code == 0 or (code == 2 and errors):  # 2: a folder of studies, some unreadable
            outcome, why, studies = _step(lambda: _read_as_info(path), path)
            if outcome == "ok":
                problems = [w for w in (_check_study(s) for s in studies) if w]
                outcome = "implausible" if problems else "ok"
                why = "; ".join(problems) or ", ".join(
                    f"read {tuple(s.image.shape)} spacing {s.spacing_mm}" for s in studies
                )
            if outcome == "ok" and code == 2:
                unnamed = [e for e in errors if not _names_input(e, path)]
                outcome, why = ("traceback", f"unnamed: {unnamed[0]}") if unnamed else ("refused", errors[0])
            steps["info"] = (outcome, why)
        elif code == 1:
            msg = errors[-1] if errors else text.strip()[-300:]
            steps["info"] = ("refused", msg) if _names_input(msg, path) else ("traceback", f"unnamed: {msg}")
        else:
            steps["info"] = ("traceback", f"exit code {code}: {text.strip()[-300:]}")

    # 2. the SSL4MIS readers
    if built.h5 is not None:
        from cardiacseg.io.ssl4mis import read_ssl4mis_frame, read_ssl4mis_study

        root, patient, frame = built.h5
        outcome, msg, value = _step(lambda: read_ssl4mis_frame(root, patient, frame), root)
        if outcome == "ok":
            msg = _check_h5(np.asarray(value[0]), np.asarray(value[1]))
            outcome = "implausible" if msg else "ok"
        steps["h5_frame"] = (outcome, msg)
        outcome, msg, value = _step(lambda: read_ssl4mis_study(root, patient), root)
        if outcome == "ok":
            msg = _check_study(value)
            outcome = "implausible" if msg else "ok"
        steps["h5_study"] = (outcome, msg)

    # 3. segment a seeded subset of what read OK
    primary = "h5_frame" if built.h5 is not None else "info"
    if case.segment and predictor is not None and steps[primary][0] == "ok" and built.h5 is None:
        from cardiacseg.workflows import segment_batch

        known = _value_error_names()

        def run() -> Any:
            return segment_batch([path], out_dir, predictor, progress=False)

        outcome, msg, res = _step(run, path)
        if outcome == "ok":
            if res.failed:
                name, text = next(iter(res.failed.items()))
                exc_name = text.split(":", 1)[0]
                if exc_name == "MemoryError":
                    outcome = "oom"
                elif exc_name in known:  # printed by the CLI as "failed: <study>: ..." (named)
                    outcome = "refused"
                else:
                    outcome = "traceback"
                    err_file = out_dir / "errors" / f"{name}.txt"
                    if err_file.exists():
                        tb = err_file.read_text().strip().splitlines()
                        text += " [" + " | ".join(ln.strip() for ln in tb[-4:-1]) + "]"
                msg = f"segment failed: {text}"
            else:
                msg = f"segmented {res.done}"
        steps["segment"] = (outcome, msg)
    return steps


def _child(case: FuzzCase, built: BuiltCase, work: Path, predictor: Any, as_limit_gb: float) -> None:
    code = 0
    try:
        os.setpgid(0, 0)
        if "torch" in sys.modules:  # OpenMP thread pools do not survive fork: stay single-threaded
            sys.modules["torch"].set_num_threads(1)
        limit = int(as_limit_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        log = os.open(work / "child.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        import warnings

        warnings.simplefilter("ignore")
        steps = _child_main(case, built, work / "out", predictor)
        (work / "result.json").write_text(json.dumps(steps))
    except BaseException:
        traceback.print_exc()
        code = 3
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# ----------------------------------------------------------------------------------------------------------
# parent


def run_case(
    case: FuzzCase,
    work: Path,
    src: Sources,
    predictor: Any = None,
    timeout_s: float = 60.0,
    rss_limit_mb: float = 4096.0,
    as_limit_gb: float = 6.0,
) -> CaseResult:
    """Build one case under ``work`` (a fresh folder), run it in a forked child and classify it.

    Args:
        case: the case.
        work: an empty scratch folder for this case.
        src: the shared data.
        predictor: a loaded :class:`~cardiacseg.inferers.SlicePredictor` (segmenting is skipped without).
        timeout_s: kill the child after this many seconds (``hang``).
        rss_limit_mb: peak RSS above this is ``oom``.
        as_limit_gb: the child's address-space cap (a runaway allocation fails there instead).

    Returns:
        The record.
    """
    work.mkdir(parents=True, exist_ok=True)
    built = build_case(case, work, src)
    input_root = built.h5[0] if built.h5 is not None else built.path
    before = snapshot(input_root)
    sys.stdout.flush()
    sys.stderr.flush()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        _child(case, built, work, predictor, as_limit_gb)
    status, rusage, hung = 0, None, False
    while True:
        got, status, rusage = os.wait4(pid, os.WNOHANG)
        if got:
            break
        if time.perf_counter() - t0 > timeout_s:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _, status, rusage = os.wait4(pid, 0)
            hung = True
            break
        time.sleep(0.005)
    seconds = time.perf_counter() - t0
    rss_mb = rusage.ru_maxrss / 1024.0 if rusage is not None else float("nan")

    steps: dict[str, Any] = {}
    result_file = work / "result.json"
    if result_file.exists():
        steps = {k: tuple(v) for k, v in json.loads(result_file.read_text()).items()}
    candidates: list[tuple[str, str]] = list(steps.values())
    if hung:
        candidates.append(("hang", f"killed after {timeout_s:.0f} s"))
    elif os.WIFSIGNALED(status):
        candidates.append(("traceback", f"child died with signal {os.WTERMSIG(status)}"))
    elif not result_file.exists():
        log = (work / "child.log").read_text(errors="replace") if (work / "child.log").exists() else ""
        candidates.append(("traceback", "child ended without a result: " + log.strip()[-200:]))
    if rss_mb > rss_limit_mb:
        candidates.append(("oom", f"peak RSS {rss_mb:.0f} MB"))
    after = snapshot(input_root)
    if after != before:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        candidates.append(("input changed", f"changed: {changed[:5]}"))
    partial = _partial_outputs(work / "out", built.path)
    if partial:
        candidates.append(("partial output", "; ".join(partial)[:200]))
    primary = "h5_frame" if built.h5 is not None else "info"
    if not any(o in FINDINGS for o, _ in candidates) and primary in steps:
        outcome, message = steps[primary]
        if "segment" in steps and steps["segment"][0] != "ok":
            outcome, message = steps["segment"]
    else:
        outcome, message = min(candidates, key=lambda c: _PRECEDENCE.index(c[0]))
    return CaseResult(
        index=case.index,
        family=case.family,
        kind=case.kind,
        seed=case.seed,
        mutation=built.mutation,
        outcome=outcome,
        message=message.replace(f"{work}{os.sep}", "")[:200],  # paths relative to the case folder
        seconds=round(seconds, 3),
        rss_mb=round(rss_mb, 1),
        segmented="segment" in steps,
        steps={k: [v[0], v[1].replace(f"{work}{os.sep}", "")] for k, v in steps.items()},
    )
