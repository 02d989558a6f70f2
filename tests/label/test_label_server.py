"""The cardiacseg MONAI Label app proven with a real server over HTTP, on real ACDC phases.

The server runs in ``.venv-label`` (``make label``: MONAI Label 0.8.5, torch 2.14.1, numpy 1.26,
pydicom 2.4); this test (core environment) writes the datastore and the app, starts
``monailabel start_server`` on a free port, talks to it with HTTP only, and stops it. Independent truth:
the ACDC expert labels, and ``cardiacseg segment`` run here on the same NIfTI files.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from cardiacseg.enums import STRUCTURES
from cardiacseg.metrics import dice_score

REPO = Path(__file__).resolve().parents[2]
LABEL_VENV = Path(os.environ.get("CARDIACSEG_LABEL_VENV", REPO / ".venv-label"))
MONAILABEL = LABEL_VENV / "bin" / "monailabel"
#: validation patients of the shipped model (train.json's split): never trained on
PATIENTS = ("patient004", "patient007", "patient009")
MODEL = "cardiac_cine_seg"

requests = pytest.importorskip("requests")
pytestmark = pytest.mark.skipif(
    not MONAILABEL.exists(), reason=f"MONAI Label environment missing ({MONAILABEL}): run `make label`"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _zyx(path: Path) -> np.ndarray:
    return np.transpose(np.asarray(nib.load(str(path)).dataobj), (2, 1, 0))


def _dice(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    return {s.name: round(float(dice_score(pred == int(s), ref == int(s))), 6) for s in STRUCTURES}


def _rss_peak_mb(pid: int) -> float:
    """Peak resident memory of the server process and its children (VmHWM), in MB."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if status.parent.name == str(pid) or fields.get("PPid", "").strip() == str(pid):
            total += int(fields.get("VmHWM", "0 kB").split()[0])
    return total / 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, acdc_dir: Path) -> Any:
    from cardiacseg.io.ssl4mis import read_ssl4mis_study
    from cardiacseg.workflows.label_app import write_label_app
    from cardiacseg.workflows.label_datastore import write_label_datastore

    root = tmp_path_factory.mktemp("label")
    studies = {p: read_ssl4mis_study(acdc_dir, p) for p in PATIENTS}
    written = write_label_datastore(list(studies.items()), root / "datastore", phases="ed-es")
    app = write_label_app(root / "app")
    port = _free_port()
    env = {
        **os.environ,
        "PATH": f"{LABEL_VENV / 'bin'}:{os.environ.get('PATH', '')}",
        "MONAI_LABEL_AUTO_UPDATE_SCORING": "false",  # no background scoring competing for 2 cores
        "PYTHONPATH": "",
    }
    log = open(root / "server.log", "wb")  # closed in the teardown
    args = ["start_server", "--app", str(app), "--studies", str(root / "datastore")]
    proc = subprocess.Popen(
        [str(MONAILABEL), *args, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=root,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while True:
        if proc.poll() is not None:
            log.close()
            pytest.fail(f"server exited with {proc.returncode}:\n{(root / 'server.log').read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/info/", timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if time.time() - t0 > 300:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"server not ready in 300 s:\n{(root / 'server.log').read_text()[-3000:]}")
        time.sleep(2)
    ctx = {
        "url": url,
        "root": root,
        "studies": studies,
        "images": {w.image_id: w for w in written},
        "proc": proc,
        "startup_s": time.time() - t0,
        "report": {},
    }
    yield ctx
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    log.close()
    print("\nMONAI Label server report:", json.dumps(ctx["report"], indent=1))
    out = os.environ.get("CARDIACSEG_LABEL_REPORT")
    if out:
        Path(out).write_text(json.dumps(ctx["report"], indent=1))


def _infer(url: str, image: str, output: str = "image", timeout: float = 600) -> Any:
    return requests.post(f"{url}/infer/{MODEL}", params={"image": image, "output": output}, timeout=timeout)


def _weights_sha(url: str) -> str:
    return str(requests.get(f"{url}/info/", timeout=30).json()["models"][MODEL]["weights_sha256"])


def test_info_lists_model_labels_and_strategies(server: Any) -> None:
    info = requests.get(f"{server['url']}/info/", timeout=30).json()
    model = info["models"][MODEL]
    assert model["labels"] == {"lv": 1, "myo": 2, "rv": 3}
    assert set(model["label_colors"]) == {"lv", "myo", "rv"}
    assert len(model["weights_sha256"]) == 64
    assert MODEL in info["trainers"]
    assert {"random", "first", "uncertainty"} <= set(info["strategies"])
    server["report"]["startup_s"] = round(server["startup_s"], 1)


def test_infer_over_http_equals_cardiacseg_segment(server: Any, tmp_path: Path) -> None:
    from cardiacseg.inferers import SlicePredictor
    from cardiacseg.workflows.segment import segment_batch

    image_id = "patient004_t00_ED"
    entry = server["images"][image_id]
    ref = server["studies"][entry.study].labels[entry.phase]
    r = _infer(server["url"], image_id)
    assert r.status_code == 200, r.text[:500]
    (tmp_path / "http.nii.gz").write_bytes(r.content)
    http = _zyx(tmp_path / "http.nii.gz")
    image_file = server["root"] / "datastore" / f"{image_id}.nii.gz"
    result = segment_batch(
        [image_file],
        tmp_path / "lib",
        SlicePredictor.from_bundle(REPO / "cardiacseg" / "cardiac_cine_seg"),
        progress=False,
        figures=False,
    )
    assert result.ok
    lib_labels = next((tmp_path / "lib").glob("*/labels.nii.gz"))
    lib = _zyx(lib_labels)
    lib = lib[0] if lib.ndim == 4 else lib
    d_http, d_lib = _dice(http, ref), _dice(lib, ref)
    server["report"]["dice_http"] = d_http
    server["report"]["dice_library"] = d_lib
    server["report"]["identical_voxel_fraction"] = float((http == lib).mean())
    for name in d_lib:
        assert abs(d_http[name] - d_lib[name]) <= 1e-3, (name, d_http, d_lib)
    assert d_http["LV"] > 0.9 and d_http["MYO"] > 0.8 and d_http["RV"] > 0.8  # against the expert


def test_malformed_requests_get_clear_errors_and_the_server_goes_on(server: Any, tmp_path: Path) -> None:
    url = server["url"]
    r = _infer(url, "no_such_image", "json")
    assert r.status_code == 404 and "no_such_image" in r.json()["detail"]
    bad = tmp_path / "corrupt.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip" * 50)
    with open(bad, "rb") as f:
        r = requests.post(f"{url}/infer/{MODEL}", files={"file": ("corrupt.nii.gz", f)}, timeout=60)
    assert r.status_code == 422 and "NIfTI" in r.json()["detail"]
    with open(bad, "rb") as f:
        r = requests.put(
            f"{url}/datastore/label",
            params={"image": "patient009_t00_ED", "tag": "final"},
            files={"label": ("corrupt.nii.gz", f)},
            timeout=60,
        )
    assert r.status_code == 422
    image = server["root"] / "datastore" / "patient009_t00_ED.nii.gz"  # an image is not a label (0-1 floats)
    with open(image, "rb") as f:
        r = requests.put(
            f"{url}/datastore/label",
            params={"image": "patient009_t00_ED", "tag": "final"},
            files={"label": ("x.nii.gz", f)},
            timeout=60,
        )
    assert r.status_code == 422 and "not cardiacseg labels" in r.json()["detail"]
    shifted = tmp_path / "shifted.nii.gz"  # a label in another place than its image (50 mm off)
    img = nib.load(str(image))
    moved = img.affine.copy()
    moved[:3, 3] += 50.0
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), moved), str(shifted))
    with open(shifted, "rb") as f:
        r = requests.put(
            f"{url}/datastore/label",
            params={"image": "patient009_t00_ED", "tag": "final"},
            files={"label": ("shifted.nii.gz", f)},
            timeout=60,
        )
    assert r.status_code == 422 and "affine" in r.json()["detail"]
    with open(bad, "rb") as f:  # a corrupt image upload is not added to the datastore
        r = requests.put(
            f"{url}/datastore/image", params={"image": "bad_img"}, files={"file": ("b.nii.gz", f)}
        )
    assert r.status_code == 422
    assert (
        requests.post(f"{url}/infer/no_such_model", params={"image": "patient009_t00_ED"}).status_code == 404
    )
    assert requests.post(f"{url}/activelearning/no_such_strategy", json={}).status_code == 404
    stats = requests.get(f"{url}/datastore/", params={"output": "stats"}, timeout=30).json()
    assert stats["completed"] == 0 and stats["total"] == len(server["images"])  # nothing refused was saved
    assert requests.get(f"{url}/info/", timeout=30).status_code == 200


def test_save_labels_train_one_epoch_and_serve_the_new_weights(server: Any, tmp_path: Path) -> None:
    from cardiacseg.io.nifti import write_nifti

    url = server["url"]
    labelled = [i for i, e in server["images"].items() if e.study in PATIENTS[:2]]
    for image_id in labelled:
        e = server["images"][image_id]
        st = server["studies"][e.study]
        f = write_nifti(tmp_path / f"{image_id}.nii.gz", st.labels[e.phase], st.affine, st.spacing_mm)
        with open(f, "rb") as fh:
            r = requests.put(
                f"{url}/datastore/label",
                params={"image": image_id, "tag": "final"},
                files={"label": (f.name, fh)},
                timeout=60,
            )
        assert r.status_code == 200, r.text[:300]
    listing = requests.get(f"{url}/datastore/", params={"output": "all"}, timeout=30).json()
    assert {i for i, o in listing["objects"].items() if "final" in o["labels"]} == set(labelled)

    before = _weights_sha(url)
    t0 = time.time()
    r = requests.post(f"{url}/train/{MODEL}", json={"max_epochs": 1, "val_split": 0.5}, timeout=60)
    assert r.status_code == 200, r.text[:300]
    while True:
        status = requests.get(f"{url}/train/", timeout=30).json()
        if status["status"] not in ("SUBMITTED", "RUNNING"):
            break
        assert time.time() - t0 < 600, "training did not finish in 600 s"
        time.sleep(3)
    assert status["status"] == "DONE", json.dumps(status)[-2000:]
    after = _weights_sha(url)
    assert after != before
    stats = requests.get(f"{url}/info/", timeout=30).json()["train_stats"][MODEL]
    assert stats["weights_sha256"] == after and stats["train_images"] + stats["validation_images"] == 4
    r = _infer(url, "patient009_t00_ED", "json")
    assert r.status_code == 200 and r.json()["weights_sha256"] == after
    server["report"]["train_round_trip_s"] = round(time.time() - t0, 1)
    server["report"]["weights_sha256"] = {"before": before[:12], "after": after[:12]}


def test_active_learning_strategies_return_unlabelled_images(server: Any) -> None:
    url = server["url"]
    listing = requests.get(f"{url}/datastore/", params={"output": "all"}, timeout=30).json()
    unlabelled = {i for i, o in listing["objects"].items() if "final" not in o["labels"]}
    assert unlabelled
    picks = {}
    for strategy in ("random", "first", "uncertainty"):
        r = requests.post(f"{url}/activelearning/{strategy}", json={}, timeout=600)
        assert r.status_code == 200, r.text[:300]
        picks[strategy] = r.json()["id"]
        assert picks[strategy] in unlabelled
    assert picks["first"] == sorted(unlabelled)[0]
    scores = {}
    for i in unlabelled:
        info = requests.get(f"{url}/datastore/image/info", params={"image": i}, timeout=30).json()
        scores[i] = info["cardiacseg_uncertainty"]["score"]
    assert picks["uncertainty"] == max(scores, key=lambda i: scores[i])
    server["report"]["uncertainty_scores"] = {k: round(v, 4) for k, v in sorted(scores.items())}


@pytest.mark.slow  # eight requests served one after another, ~45 s on 2 cores: make test-slow
def test_eight_concurrent_infer_requests_all_succeed(server: Any) -> None:
    url = server["url"]
    ids = sorted(server["images"])
    jobs = [ids[k % len(ids)] for k in range(8)]

    def one(image_id: str) -> tuple[int, float, int]:
        t = time.time()
        r = _infer(url, image_id)
        return r.status_code, time.time() - t, len(r.content)

    t0 = time.time()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, jobs))
    wall = time.time() - t0
    assert all(code == 200 and size > 1000 for code, _, size in results), results
    times = [t for _, t, _ in results]
    log = (server["root"] / "server.log").read_text(errors="replace")
    # MONAI Label's own per-request log: "[<date> <time>,ms] ... ++ Latencies => Total: <s>; ..."
    served = re.findall(r"\[[\d-]+ ([\d:]+),\d+\].*\+\+ Latencies => Total: ([\d.]+)", log)[-8:]
    server["report"]["concurrent_8"] = {
        "server_infer_s": [float(total) for _, total in served],
        "server_finished_at": [clock for clock, _ in served],
        "wall_s": round(wall, 1),
        "mean_request_s": round(float(np.mean(times)), 1),
        "max_request_s": round(float(np.max(times)), 1),
        "server_peak_rss_mb": round(_rss_peak_mb(server["proc"].pid), 0),
    }
    assert requests.get(f"{url}/info/", timeout=30).status_code == 200
