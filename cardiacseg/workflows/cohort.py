"""Cohorts beyond one process: segment studies on a Ray cluster (``cardiacseg segment --ray``).

The driver (this process) finds the studies exactly as :func:`~cardiacseg.workflows.segment.segment_batch`
does, skips finished ones (``report.json`` present), and hands the rest to Ray actors. Each actor builds
the model once (from a picklable factory, on its own node: a GPU when Ray gave it one, else its CPUs) and
segments one study at a time with :func:`~cardiacseg.workflows.segment.segment_one`, the same function the
single-process batch uses, writing the study's outputs into the shared output folder. So outputs and
summary rows are the same whichever ran a study.

Loss-free and resumable:

- ``cohort_manifest.jsonl`` in the output folder records every event, one JSON object per line, flushed as
  it happens: ``queued``, ``started`` (worker, node, pid), ``done``/``failed``/``skipped`` (seconds,
  error), ``worker_lost``. A study's state is its last record.
- A study whose worker dies (process killed, node lost, out of memory) is queued again, for another worker
  when one is free, up to ``max_attempts`` times; the dead actor is restarted by Ray (``max_restarts=-1``)
  and loads the model again. Outputs of the interrupted attempt lack ``report.json`` (written last) and
  are replaced.
- A re-run skips finished studies; ``batch_summary.csv/json`` (in the studies' sorted order) equals the
  single-process run's.

The output folder must be one every node sees (a shared filesystem: NFS, Lustre, a cloud file share):
actors write there directly. Without one, run ``segment --part K/N`` on each machine instead.

Ray is an optional dependency (``pip install cardiacseg[ray]``); importing this module does not import it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from cardiacseg.inferers.predictor import SlicePredictor
from cardiacseg.io.discover import StudyInput
from cardiacseg.io.study import PatientInfo
from cardiacseg.typing import PathLike
from cardiacseg.workflows.segment import (
    BatchResult,
    batch_studies,
    finished_row,
    prepare_output_folder,
    segment_one,
    write_batch_summary,
)

__all__ = ["MANIFEST_NAME", "CohortWorker", "read_manifest", "segment_cohort"]

#: The event log of a cohort run, in its output folder.
MANIFEST_NAME = "cohort_manifest.jsonl"

#: Builds the model on a worker: called as ``factory(device=...)``; must be picklable (e.g.
#: ``functools.partial(SlicePredictor.from_bundle, bundle, tta="none")``).
PredictorFactory = Callable[..., SlicePredictor]


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "segment --ray needs Ray: pip install 'cardiacseg[ray]' (or pip install ray); "
            "without Ray, split a cohort with --part K/N and join the parts with `cardiacseg merge`"
        ) from exc
    return ray


class CohortWorker:
    """One Ray actor's work: the model, loaded once, and studies segmented one at a time.

    Used as a Ray actor class by :func:`segment_cohort` (``ray.remote(CohortWorker)``); it is a plain class
    so that it can be tested and reused without Ray.

    Args:
        factory: builds the predictor, called as ``factory(device=device)``.
        root: the output folder (shared by every node).
        threads: torch CPU threads (the CPUs Ray reserved for this actor).
        use_gpu: put the model on ``cuda`` when this process sees a GPU.
        kwargs: passed to :func:`~cardiacseg.workflows.segment.segment_study`.

    Example:
        >>> w = CohortWorker(factory, "out", threads=1)  # doctest: +SKIP
        >>> status, row, seconds = w.segment(found, overwrite=False, patient=None)  # doctest: +SKIP

    """

    def __init__(
        self,
        factory: PredictorFactory,
        root: PathLike,
        threads: int = 1,
        use_gpu: bool = False,
        **kwargs: Any,
    ) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
        self.predictor = factory(device=self.device)
        self.root = Path(root)
        self.kwargs = kwargs

    def where(self) -> dict[str, object]:
        """Return this worker's process id, host name and device."""
        return {"pid": os.getpid(), "host": socket.gethostname(), "device": self.device}

    def segment(
        self, found: StudyInput, overwrite: bool, patient: PatientInfo | None
    ) -> tuple[str, dict[str, object], float]:
        """Segment one study: ``(status, summary row, seconds)`` as :func:`segment_one` returns them."""
        start = time.perf_counter()
        status, row = segment_one(found, self.root, self.predictor, overwrite, patient, None, **self.kwargs)
        return status, row, time.perf_counter() - start


@dataclass
class _Task:
    found: StudyInput
    attempt: int = 1
    avoid: int | None = None  # the worker it was lost on


class _Manifest:
    """Append-only JSON-lines event log (one writer: the driver)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def __call__(self, study: str, event: str, **info: object) -> None:
        record: dict[str, object] = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        record["study"] = study
        record.update(event=event, **info)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_manifest(output_dir: PathLike) -> dict[str, list[dict[str, Any]]]:
    """Read a cohort's event log: every study's records in order (its state is the last one's ``event``).

    Args:
        output_dir: the cohort's output folder.

    Returns:
        ``{study name: [record, ...]}``.

    Raises:
        FileNotFoundError: no ``cohort_manifest.jsonl`` in the folder.

    Example:
        >>> states = {k: v[-1]["event"] for k, v in read_manifest("out").items()}  # doctest: +SKIP

    """
    events: dict[str, list[dict[str, Any]]] = {}
    for line in (Path(output_dir) / MANIFEST_NAME).read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            events.setdefault(str(record["study"]), []).append(record)
    return events


def segment_cohort(
    inputs: Sequence[PathLike],
    output_dir: PathLike,
    factory: PredictorFactory,
    address: str | None = None,
    num_workers: int | None = None,
    cpus_per_worker: int = 1,
    use_gpus: bool | None = None,
    max_attempts: int = 3,
    overwrite: bool = False,
    progress: bool = True,
    patients: Mapping[str, PatientInfo] | None = None,
    part: tuple[int, int] | None = None,
    **kwargs: Any,
) -> BatchResult:
    """Segment a cohort on a Ray cluster, one model per actor; the result of :func:`segment_batch`.

    Args:
        inputs: study paths or folders of studies (as for :func:`segment_batch`).
        output_dir: output root, on a filesystem every node sees.
        factory: builds the predictor on each worker, called as ``factory(device=...)``; picklable.
        address: Ray cluster address (``"HOST:PORT"``, ``"auto"``); None starts a local Ray instance on
            this machine (a laptop or a workstation).
        num_workers: actors to start (default: one per GPU when the cluster has GPUs and ``use_gpus`` is
            not False, else ``CPUs // cpus_per_worker``; never more than the studies to do).
        cpus_per_worker: CPUs Ray reserves for each actor (its torch threads).
        use_gpus: one GPU per actor (default: when the cluster has any).
        max_attempts: times a study is tried when its worker dies; then it is recorded as failed.
        overwrite: re-segment finished studies.
        progress: one line per finished study on stderr.
        patients: body size per study name.
        part: ``(k, n)``: only that part of the cohort (see :func:`segment_batch`).
        kwargs: passed to :func:`segment_study` (``slice_range``, ``figures``, ``dicom_seg``, ...).

    Returns:
        :class:`BatchResult`; ``batch_summary.csv/json`` and ``cohort_manifest.jsonl`` in ``output_dir``.

    Raises:
        ImportError: Ray is not installed.
        ValueError: no study found, or ``max_attempts``/``cpus_per_worker`` below 1.
        ConnectionError: the Ray cluster at ``address`` cannot be reached.

    Example:
        >>> from functools import partial
        >>> factory = partial(SlicePredictor.from_bundle, shipped_bundle_path(), tta="none")  # doctest: +SKIP
        >>> segment_cohort(["studies/"], "/shared/out", factory, address="auto")  # doctest: +SKIP

    """
    if max_attempts < 1 or cpus_per_worker < 1:
        raise ValueError(
            f"max_attempts and cpus_per_worker must be >= 1, got {max_attempts}, {cpus_per_worker}"
        )
    ray = _ray()
    one_patient = kwargs.pop("patient", None)
    studies, summary_name = batch_studies(inputs, output_dir, part, patients, one_patient)
    root = prepare_output_folder(output_dir).resolve()
    patient_of = {s.name: (patients or {}).get(s.name, one_patient) for s in studies}
    manifest = _Manifest(root / MANIFEST_NAME)
    driver = _Driver(
        root, factory, manifest, patient_of, len(studies), overwrite, max_attempts, progress, kwargs
    )
    for found in studies:
        row = None if overwrite else finished_row(found, root, patient_of[found.name])
        if row is not None and row["status"] == "skipped":
            driver.rows[found.name] = row
            driver.result.skipped.append(found.name)
            manifest(found.name, "skipped")
        elif row is not None:  # another input's results under this name (finished_row says which)
            driver.rows[found.name] = row
            driver.result.failed[found.name] = str(row["error"])
            manifest(found.name, "failed", error=row["error"])
        else:
            driver.todo.append(_Task(found))
            manifest(found.name, "queued", input=str(found.path))
    started_ray = False
    try:
        if driver.todo:
            if not ray.is_initialized():
                _check_reachable(address)
                try:
                    ray.init(address=address, logging_level="warning", log_to_driver=False)
                except ConnectionError:
                    raise
                except Exception as exc:
                    raise ConnectionError(f"cannot connect to the Ray cluster at {address}: {exc}") from exc
                started_ray = True
            driver.run(ray, num_workers, cpus_per_worker, use_gpus)
    finally:
        manifest.close()
        if started_ray:
            ray.shutdown()
    result = driver.result
    result.rows = [driver.rows[s.name] for s in studies]
    write_batch_summary(root, summary_name, result.rows, keep_earlier=True)
    return result


@dataclass
class _Driver:
    """The driver's side of a cohort run: the queue, the rows so far, the event log, and the actors.

    ``run`` hands queued studies to idle actors, one study per actor at a time, and collects each result
    as it arrives (:meth:`_collect`), queueing a study again when its actor died.
    """

    root: Path
    factory: PredictorFactory
    manifest: _Manifest
    patient_of: Mapping[str, PatientInfo | None]
    n_studies: int
    overwrite: bool
    max_attempts: int
    progress: bool
    kwargs: dict[str, Any]
    todo: deque[_Task] = field(default_factory=deque)
    rows: dict[str, dict[str, object]] = field(default_factory=dict)
    result: BatchResult = field(default_factory=BatchResult)

    def _log(self, text: str) -> None:
        if self.progress:
            finished = len(self.rows)
            print(f"segment [{finished}/{self.n_studies}] {text}", file=sys.stderr, flush=True)

    def run(self, ray: Any, num_workers: int | None, cpus_per_worker: int, use_gpus: bool | None) -> None:
        """Start the actors and segment every queued study (see :func:`segment_cohort` for the arguments)."""
        cluster = ray.cluster_resources()
        gpus = int(cluster.get("GPU", 0))
        gpu = gpus > 0 if use_gpus is None else use_gpus
        if num_workers is None:
            num_workers = gpus if gpu and gpus else max(1, int(cluster.get("CPU", 1)) // cpus_per_worker)
        num_workers = max(1, min(num_workers, len(self.todo)))
        remote = ray.remote(CohortWorker).options(
            num_cpus=cpus_per_worker, num_gpus=1 if gpu else 0, max_restarts=-1, max_task_retries=0
        )
        workers = [
            remote.remote(self.factory, str(self.root), cpus_per_worker, gpu, **self.kwargs)
            for _ in range(num_workers)
        ]
        place: dict[int, dict[str, object]] = {}
        idle = list(range(num_workers))
        inflight: dict[Any, tuple[int, _Task]] = {}
        while self.todo or inflight:
            for i in list(idle):
                if not self.todo:
                    break
                # a study lost on worker i goes to another worker when there is one
                pick = next((t for t in self.todo if t.avoid != i or num_workers == 1), None)
                if pick is None:
                    continue
                self.todo.remove(pick)
                idle.remove(i)
                if i not in place:
                    place[i] = _where(ray, workers[i])
                ref = workers[i].segment.remote(pick.found, self.overwrite, self.patient_of[pick.found.name])
                inflight[ref] = (i, pick)
                self.manifest(pick.found.name, "started", worker=i, attempt=pick.attempt, **place[i])
            if not inflight:  # every idle worker is to be avoided by every queued study: let any take it
                for t in self.todo:
                    t.avoid = None
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1)
            i, task = inflight.pop(ready[0])
            idle.append(i)
            if not self._collect(ray, ready[0], i, task):
                place.pop(i, None)  # restarted by Ray: another process, maybe another node

    def _collect(self, ray: Any, ref: Any, i: int, task: _Task) -> bool:
        """Record the result of ``task`` on worker ``i``; return False when the worker died.

        A study whose worker died is queued again while attempts are left, else recorded as failed.
        """
        from ray.exceptions import RayActorError, WorkerCrashedError

        name = task.found.name
        alive = True
        try:
            status, row, seconds = ray.get(ref)
        except (RayActorError, WorkerCrashedError) as exc:
            alive = False
            why = f"{type(exc).__name__}: worker {i} lost"
            if task.attempt < self.max_attempts:
                self.manifest(name, "worker_lost", worker=i, attempt=task.attempt, error=why)
                self.todo.appendleft(_Task(task.found, task.attempt + 1, avoid=i))
                again = f"attempt {task.attempt + 1} of {self.max_attempts}"
                self._log(f"{name}: worker {i} lost, queued again ({again})")
                return alive
            status, seconds = "failed", 0.0
            row = _lost_row(task.found, self.root, f"{why} {task.attempt} times")
        self.rows[name] = row
        if status == "done":
            self.result.done.append(name)
        elif status == "skipped":
            self.result.skipped.append(name)
        else:
            self.result.failed[name] = str(row["error"])
        self.manifest(
            name, status, worker=i, attempt=task.attempt, seconds=round(seconds, 2), error=row["error"]
        )
        self._log(
            f"{name}: {status} on worker {i} ({seconds:.1f} s)"
            + (f": {row['error']}" if row["error"] else "")
        )
        return alive


def _where(ray: Any, worker: Any, tries: int = 60) -> dict[str, object]:
    """Ask a worker for its pid, host and device, waiting while Ray restarts it ({} if it never answers)."""
    from ray.exceptions import RayActorError, WorkerCrashedError

    for _ in range(tries):
        try:
            return dict(ray.get(worker.where.remote()))
        except (RayActorError, WorkerCrashedError):
            time.sleep(1.0)
    return {}


def _check_reachable(address: str | None, timeout_s: float = 10.0) -> None:
    """Fail fast, with a clear message, when a ``HOST:PORT`` address does not answer (Ray would retry)."""
    if not address or address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConnectionError(f"Ray cluster address must be HOST:PORT or auto, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConnectionError(
            f"cannot reach the Ray cluster at {address} ({exc}); start it with `ray start --head` "
            "or pass the address that command printed"
        ) from exc


def _lost_row(found: StudyInput, root: Path, why: str) -> dict[str, object]:
    """Return the failed row of a study whose workers kept dying (and write its ``errors/<name>.txt``)."""
    from cardiacseg.utils.atomic import atomic_write_text
    from cardiacseg.workflows.segment import _summary_row

    (root / "errors").mkdir(exist_ok=True)
    atomic_write_text(root / "errors" / f"{found.name}.txt", f"{found.path}\n{why}\n", overwrite=True)
    return _summary_row(found.name, found.path, "failed", None, why)
