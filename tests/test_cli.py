from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cardiacseg import __version__
from cardiacseg.cli import main
from cardiacseg.demo import demo_study_path, shipped_bundle_path
from tests.conftest import independent_sunnybrook_volumes


def test_console_script_and_module_help() -> None:
    exe = Path(sys.executable).parent / "cardiacseg"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout and "info" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "cardiacseg", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: cardiacseg" in out.stdout


def test_help_and_version_import_nothing_heavy() -> None:
    # `cardiacseg --help` / `--version` start at once: no torch, MONAI, NumPy, ... (benchmarks/startup.py)
    code = (
        "import sys\n"
        "from cardiacseg.cli import main\n"
        "for argv in (['--version'], ['--help'], ['segment', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = {'torch', 'monai', 'numpy', 'scipy', 'matplotlib', 'pydicom', 'nibabel', 'ignite'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "cardiacseg 0.1.0" in out.stdout


def test_version_names_the_shipped_bundle_and_weights_hash_without_torch() -> None:
    bundle = shipped_bundle_path()
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    sha = hashlib.sha256((bundle / "models" / "model.pt").read_bytes()).hexdigest()
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cardiacseg", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = out.stdout.splitlines()
    assert lines[0] == f"cardiacseg {__version__}"
    assert any(meta["name"] in line and meta["version"] in line for line in lines)
    assert f"weights: models/model.pt sha256 {sha}" in lines
    imported = {row.split("|")[-1].strip().split(".")[0] for row in out.stderr.splitlines() if "|" in row}
    assert "cardiacseg" in imported and not imported & {"torch", "monai", "numpy"}


def test_curated_api_is_lazy_and_complete() -> None:
    code = (
        "import sys, cardiacseg\n"
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules\n"
        "from cardiacseg import CineStudy, compute_cardiac_indices, read_study, CardiacLabel, io\n"
        "from cardiacseg.io.study import CineStudy as C\n"
        "assert CineStudy is C and callable(read_study) and callable(compute_cardiac_indices)\n"
        "assert int(CardiacLabel.RV) == 3 and io.__name__ == 'cardiacseg.io'\n"
        "assert set(cardiacseg.__all__) <= set(dir(cardiacseg))\n"
        "try:\n"
        "    cardiacseg.no_such_name\n"
        "except AttributeError:\n"
        "    print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_demo_reports_expert_volumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    root = demo_study_path()
    ref = independent_sunnybrook_volumes(root / "dicom", root / "contours")
    idx = report["indices"]
    assert idx["lv_edv_ml"] == pytest.approx(ref["edv"], rel=0.005)
    assert idx["lv_esv_ml"] == pytest.approx(ref["esv"], rel=0.005)
    assert idx["lv_ef_percent"] == pytest.approx(ref["ef"], rel=0.005)
    assert idx["lv_mass_g"] == pytest.approx(ref["mass"], rel=0.005)
    assert f"{ref['edv']:.1f} mL" in printed
    csv_lines = (out / "report.csv").read_text().splitlines()
    assert csv_lines[0].startswith("phase,phase_name,slice") and len(csv_lines) == 1 + 2 * 12
    if "model" in report:  # the shipped model against the expert contours of the contoured slices
        comparison = report["model"]["comparison"]  # the rows of cardiacseg.workflows.evaluate
        ed = next(r for r in comparison["metrics"] if r["phase_name"] == "ED")
        assert ed["dice_lv"] > 0.85 and abs(comparison["indices"]["lv_ef_percent_error"]) < 8.0
        assert ed["dice_rv"] is None  # the expert contours have no RV: null, not 0
        assert "Shipped model vs expert" in printed and (out / "overlay_model.png").exists()
    png = np.asarray(Image.open(out / "overlay.png"))
    assert png.shape[0] > 300 and png.shape[1] > 1000 and png.std() > 10
    # a second run must not silently replace the user's files
    assert main(["demo", "--output", str(out)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["demo", "--output", str(out), "--overwrite"]) == 0


def test_info_on_packaged_dicom(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(demo_study_path() / "dicom"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape_TZYX"] == [2, 12, 256, 256]
    assert info["spacing_mm_zyx"][0] == pytest.approx(10.0, abs=0.05)
    kinds = {c["kind"] for c in info["curation"]}
    assert "declared_phases_mismatch" in kinds


def test_info_on_missing_path_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tmp_path / "nope")]) == 1
    assert "nope" in capsys.readouterr().err
