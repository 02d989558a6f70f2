"""`segment --part K/N` + `merge`: parts never overwrite each other, and the merged summary equals a
single-process run's (issue 21, schedulers without Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cardiacseg.cli import main

pytestmark = pytest.mark.realdata

PATIENTS = ("patient004", "patient027", "patient037")


@pytest.fixture(scope="module")
def studies(acdc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three real ACDC ED stacks as NIfTI files in one folder (a cohort of three studies)."""
    from cardiacseg.io import read_ssl4mis_study, write_nifti

    folder = tmp_path_factory.mktemp("cohort")
    for pid in PATIENTS:
        study = read_ssl4mis_study(acdc_dir, pid)
        write_nifti(folder / f"{pid}.nii.gz", study.image[0], spacing_mm=(10.0, 1.5, 1.5))
    return folder


def _segment(studies: Path, out: Path, *extra: str) -> int:
    return main(["segment", str(studies), "-o", str(out), "--quiet", "--tta", "none", "--no-figures", *extra])


def test_parts_then_merge_equal_one_run(studies: Path, tmp_path: Path) -> None:
    single, parted = tmp_path / "single", tmp_path / "parted"
    assert _segment(studies, single) == 0
    assert _segment(studies, parted, "--part", "2/2") == 0  # parts may run in any order
    assert main(["merge", str(parted)]) == 1  # part 1 is still missing: refused
    assert not (parted / "batch_summary.csv").exists()
    assert _segment(studies, parted, "--part", "1/2") == 0
    part1 = json.loads((parted / "batch_summary_part1of2.json").read_text())
    part2 = json.loads((parted / "batch_summary_part2of2.json").read_text())
    assert [r["study"] for r in part1] == ["patient004", "patient037"] and [r["study"] for r in part2] == [
        "patient027"
    ]
    assert main(["merge", str(parted)]) == 0
    merged = json.loads((parted / "batch_summary.json").read_text())
    assert merged == json.loads((single / "batch_summary.json").read_text())
    assert (parted / "batch_summary.csv").read_text() == (single / "batch_summary.csv").read_text()
    for pid in PATIENTS:  # the same files, the same numbers
        a = json.loads((single / pid / "report.json").read_text())["indices"]
        b = json.loads((parted / pid / "report.json").read_text())["indices"]
        assert a == b
    assert main(["merge", str(parted)]) == 1  # an existing summary is kept without --overwrite
    assert main(["merge", str(parted), "--overwrite"]) == 0


def test_merge_refuses_missing_and_mixed_parts(tmp_path: Path) -> None:
    from cardiacseg.workflows.segment import merge_batch_parts

    with pytest.raises(FileNotFoundError, match="no batch_summary_part"):
        merge_batch_parts(tmp_path)
    row = {"study": "a", "status": "done"}
    (tmp_path / "batch_summary_part1of2.json").write_text(json.dumps([row]))
    with pytest.raises(ValueError, match=r"part\(s\) \[2\] of 2 have no summary"):
        merge_batch_parts(tmp_path)
    (tmp_path / "batch_summary_part2of2.json").write_text(json.dumps([row]))
    with pytest.raises(ValueError, match="study a is in parts 1 and 2"):
        merge_batch_parts(tmp_path)
    (tmp_path / "batch_summary_part1of3.json").write_text(json.dumps([row]))
    with pytest.raises(ValueError, match="different N"):
        merge_batch_parts(tmp_path)
    with pytest.raises(SystemExit, match="--part must be K/N"):
        main(["segment", "x", "-o", str(tmp_path), "--part", "3"])
    with pytest.raises(SystemExit, match="1 <= K <= N"):
        main(["segment", "x", "-o", str(tmp_path / "o"), "--part", "3/2"])
