"""A batch never passes one study's results off as another's, never leaves stale outputs, and stops cleanly.

Found by a break test of `cardiacseg segment` (session 30). The studies are analytic cine phantoms
(:func:`cardiacseg.data.synthetic.make_cine_phantom`) and the "network" a fixed threshold, so every
expected outcome follows from how the inputs were built.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cardiacseg.cli import main
from cardiacseg.data.synthetic import make_cine_phantom
from cardiacseg.inferers import SlicePredictor
from cardiacseg.io.discover import discover_studies
from cardiacseg.io.nifti import write_nifti
from cardiacseg.workflows.segment import prepare_output_folder, segment_batch


class _BrightIsLV(nn.Module):
    """LV where a slice is brighter than halfway between its mean and maximum."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bg = torch.zeros_like(x)
        threshold = (x.amax(dim=(2, 3), keepdim=True) + x.mean(dim=(2, 3), keepdim=True)) / 2
        return torch.cat([bg, x - threshold, bg - 100, bg - 100], dim=1)


def _predictor() -> SlicePredictor:
    return SlicePredictor(_BrightIsLV(), target_spacing_mm=1.5, crop_size=96, batch_size=16)


def _phantom(path: Path, seed: int = 0, n_slices: int = 3) -> Path:
    study, _ = make_cine_phantom(4, n_slices, shape=(128, 128), spacing_mm=(8.0, 1.5, 1.5), seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_nifti(path, np.asarray(study.image), spacing_mm=study.spacing_mm)
    return path


def _batch(inputs: list[Path], out: Path, **kwargs: object) -> object:
    kwargs.setdefault("figures", False)
    return segment_batch(inputs, out, _predictor(), progress=False, **kwargs)  # type: ignore[arg-type]


def test_a_finished_study_of_another_input_is_not_taken_as_this_one(tmp_path: Path) -> None:
    """Two sites' `p1.nii.gz` into one folder: the second is refused, not skipped with the first's numbers."""
    site_a = _phantom(tmp_path / "site_a" / "p1.nii.gz", seed=0, n_slices=3)
    site_b = _phantom(tmp_path / "site_b" / "p1.nii.gz", seed=1, n_slices=4)  # another study, same name
    out = tmp_path / "out"
    assert _batch([site_a], out).done == ["p1"]  # type: ignore[attr-defined]
    first = (out / "p1" / "report.json").read_bytes()
    assert json.loads(first)["input"]["path"] == str(site_a.resolve())

    again = _batch([site_b], out)
    assert again.done == [] and again.skipped == [] and list(again.failed) == ["p1"]  # type: ignore[attr-defined]
    error = again.failed["p1"]  # type: ignore[attr-defined]
    assert str(site_a.resolve()) in error and str(site_b) in error and "--overwrite" in error
    assert (out / "p1" / "report.json").read_bytes() == first  # the earlier results are left as they are
    assert main(["segment", str(site_b), "-o", str(out), "--quiet"]) == 2  # a failed study: exit code 2

    moved = tmp_path / "moved" / "p1.nii.gz"  # the same file, elsewhere: still the finished study
    moved.parent.mkdir()
    shutil.copy(site_a, moved)
    assert _batch([moved], out).skipped == ["p1"]  # type: ignore[attr-defined]

    replaced = _batch([site_b], out, overwrite=True)
    assert replaced.done == ["p1"]  # type: ignore[attr-defined]
    report = json.loads((out / "p1" / "report.json").read_text())
    assert report["input"]["path"] == str(site_b.resolve()) and report["shape_TZYX"][1] == 4


def test_a_failed_overwrite_leaves_the_study_unfinished(tmp_path: Path) -> None:
    study = _phantom(tmp_path / "in" / "p1.nii.gz")
    good = study.read_bytes()
    out = tmp_path / "out"
    assert _batch([study], out).done == ["p1"]  # type: ignore[attr-defined]
    study.write_bytes(b"not a NIfTI file")  # the input is damaged since
    assert _batch([study], out).skipped == ["p1"]  # type: ignore[attr-defined]  # same path: finished
    failed = _batch([study], out, overwrite=True)
    assert list(failed.failed) == ["p1"]  # type: ignore[attr-defined]
    assert not (out / "p1" / "report.json").exists() and (out / "errors" / "p1.txt").exists()
    assert list(_batch([study], out).failed) == ["p1"]  # type: ignore[attr-defined]  # not "skipped"
    study.write_bytes(good)
    assert _batch([study], out).done == ["p1"]  # type: ignore[attr-defined]
    assert not (out / "errors" / "p1.txt").exists()  # the earlier failure's record is gone with it


def test_overwrite_without_figures_removes_the_earlier_figures(tmp_path: Path) -> None:
    """The page must not show a curve and contours of an earlier run beside this run's numbers."""
    study = _phantom(tmp_path / "in" / "p1.nii.gz")
    out = tmp_path / "out"
    _batch([study], out, figures=True)
    assert (out / "p1" / "montage.png").exists() and (out / "p1" / "volumes.png").exists()
    assert "data:image/png" in (out / "p1" / "report.html").read_text()
    _batch([study], out, figures=False, overwrite=True)
    assert not (out / "p1" / "montage.png").exists() and not (out / "p1" / "volumes.png").exists()
    assert "data:image/png" not in (out / "p1" / "report.html").read_text()


def test_summary_keeps_studies_of_earlier_runs_and_each_study_once(tmp_path: Path) -> None:
    cohort = tmp_path / "cohort"
    for seed in range(3):
        _phantom(cohort / f"s{seed}.nii.gz", seed=seed)
    out = tmp_path / "out"
    _batch([cohort], out)
    result = _batch([cohort / "s1.nii.gz", cohort, cohort / "s1.nii.gz"], out)  # s1 named three times
    assert result.skipped == ["s1", "s0", "s2"] and result.done == []  # type: ignore[attr-defined]
    _batch([cohort / "s2.nii.gz"], out)
    rows = json.loads((out / "batch_summary.json").read_text())
    assert [r["study"] for r in rows] == ["s2", "s1", "s0"]  # this run's row, then the others as they were
    csv_lines = (out / "batch_summary.csv").read_text().splitlines()
    assert len(csv_lines) == 4 and csv_lines[1].startswith("s2,")


def test_hidden_files_are_not_studies_and_an_empty_input_is_named(tmp_path: Path) -> None:
    cohort = tmp_path / "cohort"
    _phantom(cohort / "s0.nii.gz")
    shutil.copy(cohort / "s0.nii.gz", cohort / ".labels.nii.gz.1z88ahue.nii.gz")  # a partial write
    shutil.copy(cohort / "s0.nii.gz", cohort / "._s0.nii.gz")  # a macOS companion file
    empty = tmp_path / "empty"
    empty.mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        studies = discover_studies([empty, cohort])
    assert [s.name for s in studies] == ["s0"]
    assert any(str(empty) in str(w.message) and "no study" in str(w.message) for w in caught)


def test_bad_options_and_output_folders_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = _phantom(tmp_path / "in" / "p1.nii.gz")
    out = str(tmp_path / "out")
    assert main(["segment", str(study), "-o", out, "--postprocess", ""]) == 1
    assert "--postprocess is empty" in capsys.readouterr().err
    assert main(["segment", str(study), "-o", out, "--crop-size", "7"]) == 1
    assert "multiple of 16" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["segment", str(study), "-o", out, "--batch-size", "0"])
    assert exited.value.code == 2 and "must be at least 1" in capsys.readouterr().err
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    with pytest.raises(NotADirectoryError, match="output folder is a file"):
        prepare_output_folder(a_file)
    with pytest.raises(ValueError, match="batch_size"):
        SlicePredictor(_BrightIsLV(), batch_size=0)


def test_sigterm_mid_batch_keeps_finished_studies_and_leaves_no_partial_file(tmp_path: Path) -> None:
    """A scheduler's SIGTERM while the second study is predicted: exit 130, the first study and the summary
    kept, nothing of the second, no temporary file; the same batch then finishes (in this process)."""
    cohort = tmp_path / "cohort"
    for seed in range(2):
        _phantom(cohort / f"s{seed}.nii.gz", seed=seed)
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        import torch
        from torch import nn
        import cardiacseg.cli as cli
        from cardiacseg.inferers import SlicePredictor

        class Net(nn.Module):
            def forward(self, x):
                if os.environ.get("KILL") and os.path.exists({str(out / "s0" / "report.json")!r}):
                    os.kill(os.getpid(), signal.SIGTERM)  # while the second study is predicted
                bg = torch.zeros_like(x)
                t = (x.amax(dim=(2, 3), keepdim=True) + x.mean(dim=(2, 3), keepdim=True)) / 2
                return torch.cat([bg, x - t, bg - 100, bg - 100], dim=1)

        cli._predictor = lambda args: SlicePredictor(Net(), crop_size=96, batch_size=64)
        sys.exit(cli.main(["segment", {str(cohort)!r}, "-o", {str(out)!r}, "--quiet"]))
        """
    )
    run = [sys.executable, "-c", script]
    killed = subprocess.run(run, env={**os.environ, "KILL": "1"}, capture_output=True, text=True, timeout=300)
    assert killed.returncode == 130, killed.stderr
    assert "interrupted" in killed.stderr and "Traceback" not in killed.stderr
    assert (out / "s0" / "report.json").exists()
    assert not (out / "s1").exists() or not any((out / "s1").iterdir())  # nothing half-written
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temporary file left
    rows = json.loads((out / "batch_summary.json").read_text())
    assert [(r["study"], r["status"]) for r in rows] == [("s0", "done")]
    assert not _batch([cohort], out).failed  # type: ignore[attr-defined]  # the same batch resumes
    rows = json.loads((out / "batch_summary.json").read_text())
    assert [(r["study"], r["status"]) for r in rows] == [("s0", "skipped"), ("s1", "done")]


def test_a_skipped_study_says_when_it_was_made_with_other_settings(tmp_path: Path) -> None:
    """Re-running a folder with other post-processing or TTA keeps the earlier results: a warning says so."""
    from cardiacseg.postprocess import PostProcessor

    study = _phantom(tmp_path / "in" / "p1.nii.gz")
    out = tmp_path / "out"
    _batch([study], out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _batch([study], out)  # the same settings: skipped quietly
        assert not [w for w in caught if "finished earlier" in str(w.message)]
        other = _predictor()
        other.postprocess, other.tta = PostProcessor(["lcc_volume"]), "flip"
        result = segment_batch([study], out, other, progress=False, figures=False)
    assert result.skipped == ["p1"]
    said = [str(w.message) for w in caught if "finished earlier" in str(w.message)]
    assert len(said) == 1 and "tta, postprocessing" in said[0] and "--overwrite" in said[0]
