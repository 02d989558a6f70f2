"""``cardiacseg transfer-experiment`` / :func:`run_transfer_experiment`: grid, budget, resume, curves.

The grid, budget and summary rules are checked without training; the resume and the curves on a tiny real
ACDC grid (ED stacks of 2 patients for training, 1 for validation, 64-pixel patches in a 96-pixel crop,
2 arms of 1-2 epochs).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest

from cardiacseg import cli
from cardiacseg.io import read_ssl4mis_study, write_nifti
from cardiacseg.workflows.transfer_experiment import (
    arm_summary,
    epochs_for_budget,
    expand_grid,
    load_experiment_spec,
    moving_average,
    run_transfer_experiment,
)


def _spec(folder: Path, data: str, **extra: Any) -> Path:
    import yaml  # type: ignore[import-untyped]

    content: dict[str, Any] = {
        "name": "tiny_grid",
        "data": data,
        "starts": {"R": {"start": "random"}, "TL2": {"start": "shipped"}},
        "subsets": ["subjects", "images"],
        "sizes": [1, "all"],
        "seeds": [0, 1],
        "budget_images": 100,
        "min_epochs": 1,
    }
    content.update(extra)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def test_grid_expands_start_subset_size_seed_with_budget_epochs(tmp_path: Path) -> None:
    spec = load_experiment_spec(_spec(tmp_path, "data.json", order=["subjects:all"]))
    counts = {(1, 0): 9, (None, 0): 30, (1, 1): 11, (None, 1): 30}
    arms = expand_grid(spec, lambda n, seed: counts[(n, seed)])
    # images arms of size "all" are left out: the same data as subjects "all"
    assert [a.name for a in arms] == [
        "R_subjectsall_s0",
        "TL2_subjectsall_s0",
        "R_subjects1_s0",
        "TL2_subjects1_s0",
        "R_images1_s0",
        "TL2_images1_s0",
        "R_subjectsall_s1",
        "TL2_subjectsall_s1",
        "R_subjects1_s1",
        "TL2_subjects1_s1",
        "R_images1_s1",
        "TL2_images1_s1",
    ]
    by_name = {a.name: a for a in arms}
    # images arms are count-matched to the same-seed subject subset
    assert by_name["R_images1_s1"].images == 11 and by_name["R_images1_s1"].subjects is None
    assert by_name["TL2_subjects1_s0"].subjects == 1 and by_name["TL2_subjects1_s0"].images is None
    assert by_name["R_subjectsall_s0"].subjects is None and by_name["R_subjectsall_s0"].images is None
    # budget 100 images: ceil(100 / 9) = 12 epochs, ceil(100 / 30) = 4; stage 1 = round(epochs / 3)
    assert (by_name["R_subjects1_s0"].epochs, by_name["R_subjects1_s0"].stage1_epochs) == (12, 4)
    assert (by_name["R_subjectsall_s0"].epochs, by_name["R_subjectsall_s0"].stage2_epochs) == (4, 3)
    assert all(a.epochs * a.train_images >= 100 for a in arms)
    assert spec.data == (tmp_path / "data.json").resolve()


def test_budget_to_epochs_rules() -> None:
    assert epochs_for_budget(20, 1000) == (50, 17, 33)
    assert epochs_for_budget(400, 1000) == (3, 1, 2)
    assert epochs_for_budget(400, 100, min_epochs=2) == (2, 1, 1)
    assert epochs_for_budget(5, 1000, max_epochs=30) == (30, 10, 20)
    assert epochs_for_budget(10, 100, stage1_fraction=0.0) == (10, 0, 10)
    with pytest.raises(ValueError, match="positive"):
        epochs_for_budget(0, 100)


def test_bad_specs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        load_experiment_spec(_spec(tmp_path / "a", "d.json", epochs=3))
    with pytest.raises(ValueError, match=r"starts\.X\.start"):
        load_experiment_spec(_spec(tmp_path / "b", "d.json", starts={"X": {"start": "kaggle"}}))
    with pytest.raises(ValueError, match="sizes"):
        load_experiment_spec(_spec(tmp_path / "c", "d.json", sizes=[0]))
    spec = load_experiment_spec(_spec(tmp_path / "d", "d.json", order=["images:all"]))
    with pytest.raises(ValueError, match="not in the grid"):
        expand_grid(spec, lambda n, s: 10)


def test_summary_rules_on_a_hand_made_history() -> None:
    history = [
        {"epoch": 1, "images_seen": 20, "val_mean_dice": 0.40, "val_dice_lv": 0.5, "val_dice_myo": 0.3},
        {"epoch": 2, "images_seen": 40, "val_mean_dice": 0.70, "val_dice_lv": 0.8, "val_dice_myo": 0.6},
        {"epoch": 3, "images_seen": 60, "val_mean_dice": 0.77, "val_dice_lv": 0.85, "val_dice_myo": 0.69},
        {"epoch": 4, "images_seen": 80, "val_mean_dice": 0.80, "val_dice_lv": 0.9, "val_dice_myo": 0.7},
        {"epoch": 5, "images_seen": 100, "val_mean_dice": 0.80, "val_dice_lv": 0.88, "val_dice_myo": 0.72},
        {"epoch": 6, "images_seen": 120, "val_mean_dice": 0.75, "val_dice_lv": 0.8, "val_dice_myo": 0.7},
    ]
    row = arm_summary(history)
    # peak 0.80 first at epoch 4; 95 % of it = 0.76, first reached at epoch 3 (0.77), 60 images seen
    assert row["peak_dice"] == 0.80 and row["peak_epoch"] == 4 and row["peak_images"] == 80
    assert row["convergence_images"] == 60 and row["convergence_epoch"] == 3
    assert row["start_dice"] == 0.40 and row["start_lv"] == 0.5 and row["start_myo"] == 0.3
    assert row["peak_lv"] == 0.9 and row["peak_myo"] == 0.7 and "peak_rv" not in row
    assert row["epochs"] == 6 and row["images_seen"] == 120
    assert arm_summary(history, 0.99)["convergence_images"] == 80
    assert moving_average([0.4, 0.7, 0.77], 3) == pytest.approx([0.4, 0.55, 0.6233333])
    with pytest.raises(ValueError, match="no validated epoch"):
        arm_summary([{"epoch": 1, "images_seen": 5}])


def _tiny_datalist(folder: Path, acdc_dir: Path) -> Path:
    """ED stacks of real ACDC patients: patient001/002 train, patient004 validates."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for pid in ("patient001", "patient002", "patient004"):
        study = read_ssl4mis_study(acdc_dir, pid)
        write_nifti(folder / f"{pid}_ED.nii.gz", study.image[0])
        write_nifti(folder / f"{pid}_ED_gt.nii.gz", study.labels[0])
        entries.append(
            {"image": f"{pid}_ED.nii.gz", "label": f"{pid}_ED_gt.nii.gz", "patient": pid, "phase": "ED"}
        )
    path = folder / "datalist.json"
    path.write_text(json.dumps({"training": entries[:2], "validation": entries[2:]}))
    return path


@pytest.mark.realdata
def test_killed_grid_resumes_and_curves_match_histories(tmp_path: Path, acdc_dir: Path) -> None:
    data = _tiny_datalist(tmp_path / "data", acdc_dir)
    spec = _spec(
        tmp_path,
        str(data),
        starts={"R": {"start": "random"}},
        subsets=["subjects"],
        sizes=[1, "all"],
        seeds=[0],
        budget_images=12,
        min_epochs=1,
        max_epochs=2,
        crop_size=96,
        patch_size=64,
        batch_size=8,
    )
    out = tmp_path / "grid"
    # the first call stops after one arm, as a killed grid would
    first = run_transfer_experiment(spec, out, device="cpu", arms=["R_subjects1_s0"])
    assert first.trained == ["R_subjects1_s0"]
    marker = out / "arms" / "R_subjects1_s0" / "transfer" / "run.json"
    assert json.loads(marker.read_text())["status"] == "finished"
    mtime = marker.stat().st_mtime_ns
    # a deadline in the past starts nothing and lists what is left
    from datetime import datetime, timezone

    late = run_transfer_experiment(spec, out, device="cpu", stop_at=datetime(2000, 1, 1, tzinfo=timezone.utc))
    assert late.skipped == ["R_subjects1_s0"] and late.pending == ["R_subjectsall_s0"]
    assert cli.main(["transfer-experiment", str(spec), "-o", str(out), "--device", "cpu"]) == 0
    assert marker.stat().st_mtime_ns == mtime  # the finished arm was not redone
    assert json.loads((out / "arms" / "R_subjectsall_s0" / "transfer" / "run.json").read_text())[
        "status"
    ] == ("finished")
    with (out / "learning_curves.csv").open() as f:
        rows = list(csv.DictReader(f))
    for arm in ("R_subjects1_s0", "R_subjectsall_s0"):
        history = json.loads((out / "arms" / arm / "transfer" / "history.json").read_text())["epochs"]
        mine = [r for r in rows if r["arm"] == arm]
        assert len(mine) == len(history) >= 1
        for row, record in zip(mine, history, strict=True):
            assert int(row["images_seen"]) == record["images_seen"]
            for key in ("val_mean_dice", "val_dice_lv", "val_dice_myo", "val_dice_rv"):
                assert math.isclose(float(row[key]), record[key], rel_tol=1e-9), key
    # 1 subject = patient001's ED slices, budget 12 images -> epochs from the count, at most 2
    grid = json.loads((out / "grid.json").read_text())["arms"]
    one = next(a for a in grid if a["name"] == "R_subjects1_s0")
    assert one["epochs"] == min(2, max(1, math.ceil(12 / one["train_images"])))
    with (out / "summary.csv").open() as f:
        summary = {r["arm"]: r for r in csv.DictReader(f)}
    assert set(summary) == {"R_subjects1_s0", "R_subjectsall_s0"}
    assert float(summary["R_subjects1_s0"]["start_dice"]) == pytest.approx(
        json.loads((out / "arms" / "R_subjects1_s0" / "transfer" / "history.json").read_text())["epochs"][0][
            "val_mean_dice"
        ]
    )
    assert (out / "learning_curves_raw.png").stat().st_size > 0
    assert (out / "learning_curves_smoothed.png").stat().st_size > 0
    # one MLflow run per arm, in the spec's experiment, named after the arm
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{out / 'mlruns' / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("tiny_grid")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["mlflow.runName"] for r in runs) == ["R_subjects1_s0", "R_subjectsall_s0"]
