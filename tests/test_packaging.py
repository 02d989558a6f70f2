"""The wheel is self-contained: setup.cfg's package data holds the shipped bundle and the demo study.

The fast tests expand setup.cfg's globs over the files on disk (no build); the ``slow`` one builds the
wheel and lists it. ``make wheel-test`` installs that wheel in a fresh venv and runs the CLI from it.
"""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "cardiacseg"
BUNDLE = PACKAGE / "cardiac_cine_seg"
#: what the shipped bundle must carry to run (MONAI's bundle layout) and what the demo reads
REQUIRED = [
    "cardiac_cine_seg/LICENSE",
    "cardiac_cine_seg/configs/metadata.json",
    "cardiac_cine_seg/configs/inference.json",
    "cardiac_cine_seg/configs/postprocessing.json",
    "cardiac_cine_seg/configs/train.json",
    "cardiac_cine_seg/configs/evaluate.json",
    "cardiac_cine_seg/configs/logging.conf",
    "cardiac_cine_seg/docs/README.md",
    "cardiac_cine_seg/models/model.pt",
    "data/demo/README.txt",
]


def _package_data_files() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    globs = [g.strip() for g in cfg["options.package_data"]["cardiacseg"].splitlines() if g.strip()]
    found: set[str] = set()
    for pattern in globs:
        found |= {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.glob(pattern) if p.is_file()}
    return found


def test_package_data_holds_the_bundle_and_the_demo_study() -> None:
    files = _package_data_files()
    assert not [f for f in REQUIRED if f not in files]
    demo = PACKAGE / "data" / "demo" / "SCD0000101"
    on_disk = {p.relative_to(PACKAGE).as_posix() for p in demo.rglob("*") if p.is_file()}
    assert len([f for f in on_disk if "/contours/" in f]) >= 2  # expert contours, ED and ES
    assert len([f for f in on_disk if "/dicom/" in f]) >= 24  # 12 slices x 2 phases
    assert on_disk <= files  # every demo file at every depth


def test_every_tracked_bundle_file_ships_and_no_run_output_does() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "cardiacseg/cardiac_cine_seg"], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    files = _package_data_files()
    assert {Path(t).relative_to("cardiacseg").as_posix() for t in tracked} <= files
    assert not [f for f in files if f.split("/")[1:2] in (["eval"], ["mlruns"]) or "/models/train" in f]


def test_package_data_has_no_symlinks() -> None:
    links = [p for p in PACKAGE.rglob("*") if p.is_symlink()]
    assert not links  # a wheel copies what a link points to only where a glob happens to reach it


def test_bundles_folder_is_the_package_bundle() -> None:
    # one copy: the documented path bundles/cardiac_cine_seg links to the packaged bundle
    assert (REPO / "bundles" / "cardiac_cine_seg").resolve() == BUNDLE.resolve()
    # configs reach the demo study and ../shared through `@bundle_root/../..`: same depth from either path
    assert len(BUNDLE.relative_to(REPO).parts) == len(Path("bundles", "cardiac_cine_seg").parts)
    default_input = json.loads((BUNDLE / "configs" / "inference.json").read_text())["input"]
    assert default_input.startswith("$@bundle_root + '") and default_input.endswith("'")
    relative = default_input[len("$@bundle_root + '") : -1]  # e.g. /../../cardiacseg/data/demo/...
    for root in (BUNDLE, REPO / "bundles" / "cardiac_cine_seg"):
        assert Path(str(root) + relative).is_dir()


def test_shipped_bundle_path_is_the_package_data() -> None:
    from cardiacseg.demo import shipped_bundle_path, shipped_model_path

    assert shipped_bundle_path() == BUNDLE and shipped_model_path() == BUNDLE / "models" / "model.pt"


@pytest.mark.slow
def test_built_wheel_lists_the_bundle_and_the_demo(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("cardiacseg-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not [f for f in REQUIRED if f"cardiacseg/{f}" not in names]
    assert {f"cardiacseg/{f}" for f in _package_data_files()} <= names
