"""`segment --ray` on a real two-node Ray cluster on loopback (issue 21): a worker killed mid-batch loses
nothing, every study is done once, and the summary equals a single-process run's."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardiacseg.cli import main

pytestmark = pytest.mark.realdata
ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'cardiacseg[ray]'")

PATIENTS = ("patient004", "patient027", "patient037", "patient052")
RAY = Path(sys.executable).parent / "ray"


@pytest.fixture(scope="module")
def studies(acdc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four real ACDC studies (ED and ES, expert-labelled patients) as 4D NIfTI files in one folder."""
    from cardiacseg.io import read_ssl4mis_study, write_nifti

    folder = tmp_path_factory.mktemp("cohort")
    for pid in PATIENTS:
        study = read_ssl4mis_study(acdc_dir, pid)
        write_nifti(folder / f"{pid}.nii.gz", study.image, spacing_mm=(10.0, 1.5, 1.5))
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([str(RAY), *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def ray_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh HOME for Ray's CLI, daemons and driver: a ``~/.ray/auth_token`` left by an earlier local
    ``ray.init()`` would make the second node fail to authenticate to the head."""
    home = tmp_path_factory.mktemp("ray_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def cluster(ray_home: Path) -> Iterator[str]:
    """A head node and a second node, one CPU each, on 127.0.0.1; stopped (``ray stop``) afterwards."""
    if not RAY.is_file():
        pytest.skip(f"no `ray` command beside {sys.executable}")
    if (
        shutil.which("pgrep")
        and subprocess.run(["pgrep", "-f", "raylet"], capture_output=True).returncode == 0
    ):
        pytest.skip("a Ray cluster already runs on this machine; this test stops its own with `ray stop`")
    port = _free_port()
    store = str(100 * 2**20)  # bytes of object store per node: the test moves only summary rows
    try:
        head = _ray(
            "start",
            "--head",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--num-cpus",
            "1",
            "--include-dashboard=false",
            "--object-store-memory",
            store,
            "--disable-usage-stats",
        )
        assert head.returncode == 0, head.stderr[-2000:]
        second = _ray(
            "start",
            "--address",
            f"127.0.0.1:{port}",
            "--num-cpus",
            "1",
            "--object-store-memory",
            store,
            "--disable-usage-stats",
        )
        assert second.returncode == 0, second.stderr[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        _ray("stop", "--force", timeout=60)


def _segment(studies: Path, out: Path, *extra: str) -> int:
    return main(["segment", str(studies), "-o", str(out), "--quiet", "--tta", "none", "--no-figures", *extra])


class _Killer(threading.Thread):
    """Kill the worker process of the first study that starts on the cluster (SIGKILL, as the OOM killer)."""

    def __init__(self, manifest: Path, deadline_s: float = 300) -> None:
        super().__init__(daemon=True)
        self.manifest, self.deadline = manifest, time.monotonic() + deadline_s
        self.killed: dict[str, object] = {}

    def run(self) -> None:
        while time.monotonic() < self.deadline and not self.killed:
            if self.manifest.is_file():
                for line in self.manifest.read_text().splitlines():
                    record = json.loads(line)
                    if record["event"] == "started" and record.get("pid"):
                        os.kill(int(record["pid"]), signal.SIGKILL)
                        self.killed = record
                        return
            time.sleep(0.05)


def test_two_nodes_worker_killed_mid_batch(studies: Path, cluster: str, tmp_path: Path) -> None:
    from cardiacseg.workflows.cohort import MANIFEST_NAME, read_manifest

    ray.init(address=cluster, logging_level="error", log_to_driver=False)
    try:
        nodes = [n for n in ray.nodes() if n["Alive"]]
    finally:
        ray.shutdown()
    assert len(nodes) == 2 and all(n["Resources"].get("CPU") == 1 for n in nodes)

    single, out = tmp_path / "single", tmp_path / "ray"
    assert _segment(studies, single) == 0
    killer = _Killer(out / MANIFEST_NAME)
    killer.start()
    assert _segment(studies, out, "--ray", cluster) == 0
    killer.join(timeout=1)
    assert killer.killed, "no worker was killed: the test did not test a lost worker"

    events = read_manifest(out)
    lost = str(killer.killed["study"])
    for pid in PATIENTS:
        kinds = [e["event"] for e in events[pid]]
        assert kinds.count("done") == 1, (pid, kinds)  # every study done exactly once
        assert kinds[-1] == "done"
    lost_events = events[lost]
    assert [e["event"] for e in lost_events] == ["queued", "started", "worker_lost", "started", "done"]
    assert lost_events[3]["attempt"] == 2 and lost_events[3]["worker"] != lost_events[1]["worker"]
    started = [e for es in events.values() for e in es if e["event"] == "started"]
    assert len({e.get("pid") for e in started} - {None}) >= 2  # both nodes' workers segmented studies

    # the same summary and the same numbers as one process; no leftovers of the killed attempt
    assert json.loads((out / "batch_summary.json").read_text()) == json.loads(
        (single / "batch_summary.json").read_text()
    )
    assert (out / "batch_summary.csv").read_text() == (single / "batch_summary.csv").read_text()
    for pid in PATIENTS:
        a = json.loads((single / pid / "report.json").read_text())["indices"]
        b = json.loads((out / pid / "report.json").read_text())["indices"]
        assert a == b
        assert sorted(p.name for p in (out / pid).iterdir()) == sorted(
            p.name for p in (single / pid).iterdir()
        )
    assert not (out / "errors").exists()

    # a re-run does nothing again: every study skipped, the numbers kept
    assert _segment(studies, out, "--ray", cluster) == 0
    rerun = json.loads((out / "batch_summary.json").read_text())
    assert [r["status"] for r in rerun] == ["skipped"] * len(PATIENTS)
    assert [r["lv_ef_percent"] for r in rerun] == [
        r["lv_ef_percent"] for r in json.loads((single / "batch_summary.json").read_text())
    ]
    assert all(read_manifest(out)[pid][-1]["event"] == "skipped" for pid in PATIENTS)


def test_ray_missing_or_unreachable_is_a_clear_error(studies: Path, tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    with pytest.raises(SystemExit, match="Ray cluster"):
        _segment(studies, tmp_path / "out", "--ray", f"127.0.0.1:{port}")
