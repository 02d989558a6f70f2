"""End to end: `cardiacseg segment` and `cardiacseg evaluate` on the shared Sunnybrook and ACDC studies."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cardiacseg import __version__
from cardiacseg.cli import main
from cardiacseg.clinical.report import read_csv_rows
from cardiacseg.data.synthetic import make_cine_phantom
from cardiacseg.demo import shipped_bundle_path
from cardiacseg.inferers import SlicePredictor
from cardiacseg.io.acdc import write_acdc_patient
from cardiacseg.io.nifti import write_nifti
from cardiacseg.io.readers import read_study
from cardiacseg.io.ssl4mis import read_ssl4mis_study
from cardiacseg.io.sunnybrook import read_sunnybrook_study
from cardiacseg.workflows import segment_batch, segment_study
from tests.conftest import SUNNYBROOK, independent_sunnybrook_volumes

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def _is_png_with_content(path: Path) -> bool:
    import matplotlib.image as mpimg

    if path.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    img = mpimg.imread(path)
    return bool(img.shape[0] > 100 and img.shape[1] > 100 and img[..., :3].std() > 0.05)


@pytest.fixture(scope="module")
def sunnybrook_run(sunnybrook_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("segment") / "out"
    # SC-HF-I-1 with volumes over the LV slice range, SC-HF-I-2 with the default (all slices)
    # --tta none: what this checks (outputs on the input grid, numbers from the masks, resumable batches,
    # the model identity) does not depend on TTA, and the four TTA views cost ~1 min on 2 cores
    one = [
        "segment",
        str(sunnybrook_dir / "dicoms" / "SCD0000101"),
        "-o",
        str(out),
        "--quiet",
        "--tta",
        "none",
    ]
    assert main([*one, "--slice-range", "segmentation"]) == 0
    assert main(["segment", str(sunnybrook_dir / "dicoms"), "-o", str(out), "--quiet", "--tta", "none"]) == 0
    return out


@pytest.mark.parametrize("dicom", sorted(SUNNYBROOK))
def test_segment_sunnybrook_outputs_on_the_input_grid(
    sunnybrook_run: Path, sunnybrook_dir: Path, dicom: str
) -> None:
    out = sunnybrook_run / dicom
    study = read_study(sunnybrook_dir / "dicoms" / dicom)
    img = nib.load(out / "labels.nii.gz")
    np.testing.assert_allclose(img.affine, study.affine, atol=1e-4)
    data = np.asarray(img.dataobj).astype(np.uint8)  # (X, Y, Z, T)
    assert data.shape == (study.image.shape[3], study.image.shape[2], study.n_slices, study.n_phases)
    labels = np.transpose(data, (3, 2, 1, 0))  # (T, Z, Y, X)

    # numbers recomputed from the written masks, without cardiacseg: header zooms, voxel counts, the
    # slice range the report states
    report = json.loads((out / "report.json").read_text())
    idx = report["indices"]
    voxel_ml = float(np.prod(img.header.get_zooms()[:3])) / 1000.0

    ranged = report["settings"]["slice_range"] != "all"

    def counted(t: int, value: int) -> float:
        first, last = report["lv_slice_range"][str(t)] if ranged else (0, labels.shape[1] - 1)
        return float((labels[t, first : last + 1] == value).sum()) * voxel_ml

    ed, es = idx["ed_phase"], idx["es_phase"]
    assert idx["lv_edv_ml"] == pytest.approx(counted(ed, 1), rel=1e-6)
    assert idx["lv_esv_ml"] == pytest.approx(counted(es, 1), rel=1e-6)
    assert idx["lv_ef_percent"] == pytest.approx(100 * (1 - counted(es, 1) / counted(ed, 1)), rel=1e-6)
    assert idx["lv_mass_g"] == pytest.approx(1.05 * counted(ed, 2), rel=1e-6)
    assert idx["rv_edv_ml"] == pytest.approx(float((labels[ed] == 3).sum()) * voxel_ml, rel=1e-6)
    # ED/ES are the largest and smallest counted LV volume over all phases
    lv = [counted(t, 1) for t in range(study.n_phases)]
    assert ed == int(np.argmax(lv)) and es == int(np.argmin(lv))

    # accuracy floor against the expert contours on the contoured slices (independent truth)
    expert = read_sunnybrook_study(
        sunnybrook_dir / "dicoms" / dicom, sunnybrook_dir / "contourfiles" / SUNNYBROOK[dicom]
    )
    assert expert.ed_phase is not None
    z = list(expert.annotated_slices[expert.ed_phase])
    assert _dice(labels[expert.ed_phase, z] == 1, expert.labels[expert.ed_phase][z] == 1) > 0.88

    for png in ("montage.png", "volumes.png"):
        assert _is_png_with_content(out / png), png
        grey = np.asarray(Image.open(out / png).convert("L"))
        assert (grey[-14:, : grey.shape[1] // 4] < 160).sum() > 30, f"{png}: no footer text bottom left"
    header, rows = read_csv_rows(out / "report.csv")
    assert {int(r["phase"]) for r in rows} == {ed, es}

    # the model identity, against values computed here from the bundle's files
    bundle = shipped_bundle_path()
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    sha = hashlib.sha256((bundle / "models" / "model.pt").read_bytes()).hexdigest()
    model = report["model"]
    assert model["bundle"] == {"name": meta["name"], "version": meta["version"]}
    assert model["weights"] == [{"file": "model.pt", "sha256": sha}]
    assert (
        model["package_version"] == __version__ and model["slice_range"] == report["settings"]["slice_range"]
    )
    assert header["weights"] == f"model.pt sha256 {sha}" and header["model"] == model["summary"]
    assert f"slice_range={model['slice_range']}" in header["settings"]
    assert sha[:12] in model["summary"] and meta["version"] in model["summary"]


def test_segment_batch_is_resumable(
    sunnybrook_run: Path, sunnybrook_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = list(csv.DictReader((sunnybrook_run / "batch_summary.csv").open()))
    assert {r["study"]: r["status"] for r in summary} == {"SCD0000101": "skipped", "SCD0000201": "done"}
    for r in summary:  # each row names the model of that study's own report (skipped ones included)
        own = json.loads((sunnybrook_run / r["study"] / "report.json").read_text())
        assert r["model"] == own["model"]["summary"]
    report = json.loads((sunnybrook_run / "SCD0000101" / "report.json").read_text())
    assert report["settings"]["slice_range"] != "all"
    before = {p: p.stat().st_mtime_ns for p in sunnybrook_run.rglob("labels.nii.gz")}
    assert main(["segment", str(sunnybrook_dir / "dicoms"), "-o", str(sunnybrook_run), "--quiet"]) == 0
    assert "skipped 2" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in sunnybrook_run.rglob("labels.nii.gz")} == before


def test_evaluate_sunnybrook_against_expert_contours(
    sunnybrook_run: Path, sunnybrook_dir: Path, tmp_path: Path
) -> None:
    """`evaluate` Dice equals a numpy Dice of the same files; its reference EF equals the independent EF."""
    refs = tmp_path / "refs"
    for dicom, contour in SUNNYBROOK.items():
        expert = read_sunnybrook_study(
            sunnybrook_dir / "dicoms" / dicom, sunnybrook_dir / "contourfiles" / contour
        )
        stack = np.zeros(expert.image.shape, np.uint8)
        for t, lab in expert.labels.items():
            stack[t] = lab
        write_nifti(refs / f"{dicom}.nii.gz", stack, expert.affine, expert.spacing_mm)
    out = tmp_path / "eval"
    assert main(["evaluate", str(sunnybrook_run), str(refs), "-o", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_studies"] == 2
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    indices = {r["study"]: r for r in csv.DictReader((out / "indices.csv").open())}
    for dicom, contour in SUNNYBROOK.items():
        pred = np.transpose(
            np.asarray(nib.load(sunnybrook_run / dicom / "labels.nii.gz").dataobj), (3, 2, 1, 0)
        )
        ref = np.transpose(np.asarray(nib.load(refs / f"{dicom}.nii.gz").dataobj), (3, 2, 1, 0))
        ed = int(indices[dicom]["ed_phase"])
        row = next(r for r in rows if r["study"] == dicom and int(r["phase"]) == ed)
        assert float(row["dice_lv"]) == pytest.approx(_dice(pred[ed] == 1, ref[ed] == 1), abs=1e-9)
        truth = independent_sunnybrook_volumes(
            sunnybrook_dir / "dicoms" / dicom, sunnybrook_dir / "contourfiles" / contour
        )
        assert float(indices[dicom]["lv_ef_percent_ref"]) == pytest.approx(truth["ef"], abs=0.01)
        assert float(indices[dicom]["lv_edv_ml_ref"]) == pytest.approx(truth["edv"], rel=1e-3)
    assert _is_png_with_content(out / "bland_altman.png")


def test_segment_and_evaluate_acdc_batch_with_a_corrupt_study(acdc_dir: Path, tmp_path: Path) -> None:
    """Two held-out ACDC patients in the ACDC layout plus one corrupt NIfTI: the others complete."""
    studies = tmp_path / "studies"
    for pid in ("patient004", "patient009"):  # validation patients of the shipped model
        write_acdc_patient(studies / pid, read_ssl4mis_study(acdc_dir, pid))
    (studies / "broken.nii.gz").write_bytes(b"\x1f\x8b not really a gzip stream")
    out = tmp_path / "out"
    assert main(["segment", str(studies), "-o", str(out), "--quiet"]) == 2
    summary = {r["study"]: r for r in csv.DictReader((out / "batch_summary.csv").open())}
    assert summary["broken"]["status"] == "failed" and "broken.nii.gz" in summary["broken"]["error"]
    assert (out / "errors" / "broken.txt").exists()
    assert summary["patient004"]["status"] == summary["patient009"]["status"] == "done"

    for pid in ("patient004", "patient009"):  # EF recomputed from the written masks (no spacing: no mL)
        report = json.loads((out / pid / "report.json").read_text())
        labels = np.transpose(np.asarray(nib.load(out / pid / "labels.nii.gz").dataobj), (3, 2, 1, 0))
        assert labels.shape[0] == 2 and report["indices"]["lv_edv_ml"] is None
        counts = [float((labels[t] == 1).sum()) for t in (0, 1)]  # ED = frame 0, ES = frame 1 here
        assert report["indices"]["ed_phase"] == 0 and report["indices"]["es_phase"] == 1
        assert report["indices"]["lv_ef_percent"] == pytest.approx(
            100 * (1 - counts[1] / counts[0]), rel=1e-9
        )

    ev = tmp_path / "eval"
    assert main(["evaluate", str(out), str(studies), "-o", str(ev)]) == 0
    metrics = list(csv.DictReader((ev / "metrics.csv").open()))
    for pid in ("patient004", "patient009"):
        ref = read_ssl4mis_study(acdc_dir, pid)
        pred = np.transpose(np.asarray(nib.load(out / pid / "labels.nii.gz").dataobj), (3, 2, 1, 0))
        for t in (0, 1):
            row = next(r for r in metrics if r["study"] == pid and int(r["phase"]) == t)
            assert float(row["dice_lv"]) == pytest.approx(_dice(pred[t] == 1, ref.labels[t] == 1), abs=1e-9)
            assert float(row["dice_lv"]) > 0.85
        # SSL4MIS has no spacing: distances in voxels, said so by the key
        assert row["hd95_lv_mm"] == "nan" and float(row["hd95_lv_voxels"]) >= 0
    per_slice = list(csv.DictReader((ev / "metrics_per_slice.csv").open()))
    ref = read_ssl4mis_study(acdc_dir, "patient009")
    pred = np.transpose(np.asarray(nib.load(out / "patient009" / "labels.nii.gz").dataobj), (3, 2, 1, 0))
    z = int(np.argmax((ref.labels[0] == 3).sum(axis=(1, 2))))
    row = next(
        r for r in per_slice if r["study"] == "patient009" and r["phase"] == "0" and r["slice"] == str(z)
    )
    assert float(row["dice_rv"]) == pytest.approx(_dice(pred[0, z] == 3, ref.labels[0][z] == 3), abs=1e-9)


def test_segment_a_3d_nifti_frame(acdc_dir: Path, tmp_path: Path) -> None:
    """A single 3D frame: labels in 3D on its grid, volumes and mass reported, EF stated as unavailable."""
    study = read_ssl4mis_study(acdc_dir, "patient007")  # a validation patient
    write_nifti(tmp_path / "p007_ed.nii.gz", study.image[0], spacing_mm=(10.0, 1.5, 1.5))
    assert main(["segment", str(tmp_path / "p007_ed.nii.gz"), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    img = nib.load(tmp_path / "out" / "p007_ed" / "labels.nii.gz")
    pred = np.transpose(np.asarray(img.dataobj), (2, 1, 0))
    assert pred.shape == study.labels[0].shape
    assert _dice(pred == 1, study.labels[0] == 1) > 0.9
    idx = json.loads((tmp_path / "out" / "p007_ed" / "report.json").read_text())["indices"]
    assert idx["lv_ef_percent"] is None and "single-phase" in idx["unavailable"]["lv_ef_percent"]
    voxel_ml = 10.0 * 1.5 * 1.5 / 1000.0
    assert idx["per_phase"][0]["lv_ml"] == pytest.approx((pred == 1).sum() * voxel_ml, rel=1e-6)


def test_fast_preset_and_explicit_options_reach_the_predictor() -> None:
    from cardiacseg.cli import FAST_PRESET, _predictor, build_parser
    from cardiacseg.inferers.predictor import native_bf16

    fast = _predictor(build_parser().parse_args(["segment", "x", "-o", "y", "--fast"]))
    assert (fast.tta, fast.crop_size) == (FAST_PRESET["tta"], FAST_PRESET["crop_size"])
    assert fast.precision == ("bf16" if native_bf16("cpu") else "fp32")  # "auto": bf16 only where native
    assert fast.crop_fallback_size == FAST_PRESET["crop_fallback_size"]
    argv = ["segment", "x", "-o", "y", "--fast", "--tta", "flip", "--crop-fallback", "0"]
    mixed = _predictor(build_parser().parse_args(argv))
    assert (mixed.tta, mixed.crop_fallback_size, mixed.crop_size) == ("flip", None, 128)
    default = _predictor(build_parser().parse_args(["segment", "x", "-o", "y"]))
    assert (default.crop_size, default.crop_fallback_size) == (160, 192)  # the bundle's inference.json


class _BrightIsLV(nn.Module):
    """A fixed 'network': LV where a slice is brighter than halfway between its mean and maximum."""

    def __init__(self, warn: bool = False) -> None:
        super().__init__()
        self.warn = warn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.warn:
            warnings.warn("a warning from inside the network", UserWarning, stacklevel=1)
        bg = torch.zeros_like(x)
        threshold = (x.amax(dim=(2, 3), keepdim=True) + x.mean(dim=(2, 3), keepdim=True)) / 2
        return torch.cat([bg, x - threshold, bg - 100, bg - 100], dim=1)


@pytest.fixture(scope="module")
def phantom_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study, _ = make_cine_phantom(n_phases=4, n_slices=3, shape=(128, 128), spacing_mm=(8.0, 1.5, 1.5))
    path = tmp_path_factory.mktemp("phantom") / "phantom.nii.gz"
    write_nifti(path, np.asarray(study.image), spacing_mm=study.spacing_mm)
    return path


def _phantom_predictor(warn: bool = False) -> SlicePredictor:
    return SlicePredictor(_BrightIsLV(warn), target_spacing_mm=1.5, crop_size=96, batch_size=5)


def test_progress_inside_a_study(phantom_file: Path, tmp_path: Path) -> None:
    """Stages in order; the predictor's per-batch counts increase to the number of slices (4 x 3)."""
    predictor = _phantom_predictor()
    calls: list[tuple[str, int, int]] = []
    report = segment_study(phantom_file, tmp_path / "out", predictor, progress=lambda *a: calls.append(a))
    stages = [c[0] for c in calls]
    assert stages[0] == "read" and stages[-1] == "write" and "predict" in stages
    first_write = stages.index("write")
    assert set(stages[1:first_write]) == {"predict"} and set(stages[first_write:]) == {"write"}
    counts = [done for stage, done, _ in calls if stage == "predict"]
    totals = {total for stage, _, total in calls if stage == "predict"}
    assert totals == {12} and counts == [5, 10, 12]  # batches of 5 slices
    assert predictor.progress is None  # the workflow's callback is removed again
    # a predictor built from networks in memory: no weight files to name, said so
    assert report["model"]["weights"] == [] and report["model"]["networks"] == ["_BrightIsLV"]
    assert "not from files" in report["model"]["summary"]


def test_batch_progress_lines_when_stderr_is_not_a_terminal(
    phantom_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = segment_batch([phantom_file], tmp_path / "out", _phantom_predictor(), figures=False)
    assert result.done == ["phantom"]
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "segment [1/1] phantom: reading",
        "segment [1/1] phantom: predicting 12 slices",
        "segment [1/1] phantom: writing",
        err[-1],
    ]
    assert err[-1].startswith("segment [1/1] phantom: done (") and "\r" not in "".join(err)
    segment_batch([phantom_file], tmp_path / "out", _phantom_predictor(), progress=False)
    assert capsys.readouterr().err == ""  # --quiet


def test_batch_reads_the_next_study_ahead_with_the_same_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read-ahead (issue 21) reads each unfinished study once, in its thread, and changes no result.

    Reference: the same batch with ``prefetch=False`` (every study read in the main thread when its turn
    comes). A corrupt file in the middle fails with the reader's error either way; a finished study is
    never read.
    """
    import threading

    from cardiacseg.io.discover import StudyInput

    cohort = tmp_path / "cohort"
    cohort.mkdir()
    for seed in range(3):
        study, _ = make_cine_phantom(4, 3, shape=(128, 128), spacing_mm=(8.0, 1.5, 1.5), seed=seed)
        write_nifti(cohort / f"s{seed}.nii.gz", np.asarray(study.image), spacing_mm=study.spacing_mm)
    (cohort / "s1b.nii.gz").write_bytes(b"not a NIfTI file")  # sorts between s1 and s2
    reads: list[tuple[str, str]] = []
    original = StudyInput.read

    def read(self: StudyInput) -> object:
        reads.append((self.name, threading.current_thread().name))
        return original(self)

    monkeypatch.setattr(StudyInput, "read", read)
    ahead, plain = tmp_path / "ahead", tmp_path / "plain"
    segment_batch([cohort / "s0.nii.gz"], ahead, _phantom_predictor(), progress=False, figures=False)
    reads.clear()  # s0 is finished in `ahead`: the batch below must skip it without reading it
    a = segment_batch([cohort], ahead, _phantom_predictor(), progress=False, figures=False)
    assert sorted(name for name, _ in reads) == ["s1", "s1b", "s2"]  # each once, s0 not at all
    assert {thread for _, thread in reads} == {"cardiacseg-read_0"}
    reads.clear()
    b = segment_batch([cohort], plain, _phantom_predictor(), progress=False, figures=False, prefetch=False)
    assert sorted(name for name, _ in reads) == ["s0", "s1", "s1b", "s2"]
    assert {thread for _, thread in reads} == {"MainThread"}
    assert (a.done, a.skipped) == (["s1", "s2"], ["s0"]) and b.done == ["s0", "s1", "s2"]
    assert a.failed == b.failed and list(a.failed) == ["s1b"] and "s1b.nii.gz" in a.failed["s1b"]
    for name in ("s0", "s1", "s2"):
        la = nib.load(str(ahead / name / "labels.nii.gz")).get_fdata()
        lb = nib.load(str(plain / name / "labels.nii.gz")).get_fdata()
        assert la.any() and np.array_equal(la, lb), name
        ia = json.loads((ahead / name / "report.json").read_text())["indices"]
        assert ia == json.loads((plain / name / "report.json").read_text())["indices"], name


def test_figure_warm_up_runs_once_and_leaves_matplotlib_ready() -> None:
    """In a fresh interpreter started like `segment`: one thread per process; then Agg is imported."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from cardiacseg._lean_import import import_monai_lean\n"
        "import_monai_lean()  # as `cardiacseg segment` starts: MONAI does not import matplotlib\n"
        "from cardiacseg.clinical.figures import warm_up_figures\n"
        "assert 'matplotlib.backends.backend_agg' not in sys.modules\n"
        "t = warm_up_figures()\n"
        "assert warm_up_figures() is t\n"
        "t.join()\n"
        "assert 'matplotlib.backends.backend_agg' in sys.modules and not t.is_alive()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_batch_bars_on_a_terminal_keep_warnings_on_their_own_lines(
    phantom_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    term = _Terminal()
    monkeypatch.setattr("sys.stderr", term)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        result = segment_batch([phantom_file], tmp_path / "out", _phantom_predictor(warn=True), figures=False)
    assert result.done == ["phantom"]
    text = term.getvalue()
    assert "phantom: read" in text and "phantom: predict" in text and "/12 " in text  # the study's bar
    assert "phantom: write" in text and "segment: 100%" in text  # and the batch bar finished
    # each warning is printed on a cleared line of its own, never after bar text on the same line
    msg = "a warning from inside the network"
    warned = [line for line in text.split("\n") if msg in line and "warnings.warn" not in line]
    assert len(warned) == 3  # one per network batch
    for line in warned:
        tail = line.split("\r")[-1].replace("\x1b[A", "")
        assert tail.strip().endswith(msg) and "%" not in tail
