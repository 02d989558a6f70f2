"""Command-line values: switches and device names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cardiacseg.cli import main
from cardiacseg.config import check_device


def test_cuda_on_a_machine_without_it_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot be shown here")
    from cardiacseg.demo import demo_study_path

    dicom = demo_study_path() / "dicom"
    code = main(["segment", str(dicom), "-o", str(tmp_path / "out"), "--device", "cuda", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "--device cuda" in err and "--device cpu" in err
    assert not (tmp_path / "out").exists()  # refused before anything was written
    with pytest.raises(ValueError, match="cuda:0"):
        check_device("cuda:0")


def test_device_names() -> None:
    assert check_device("cpu") == "cpu"
    for bad in ("gpu", "cpu:1", "cuda:x", ""):
        with pytest.raises(ValueError, match="unknown device"):
            check_device(bad)
