"""The cardiac_cine_seg bundle: every config runs with `python -m monai.bundle run` on small real data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from cardiacseg.io import read_dicom_cine, read_ssl4mis_study, write_nifti
from cardiacseg.networks import load_state_dict_file

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "cardiac_cine_seg"
CONFIGS = BUNDLE / "configs"
SMALL = [
    "--epochs",
    "1",
    "--val_interval",
    "1",
    "--train_patients",
    "$['patient001','patient002']",
    "--val_patients",
    "$['patient004']",
]


def _run(args: list[str], timeout: int = 600, torchrun: bool = False) -> subprocess.CompletedProcess[str]:
    exe = (
        [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node=2"]
        if torchrun
        else [sys.executable]
    )
    proc = subprocess.run(
        [*exe, "-m", "monai.bundle", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _mlflow(folder: Path) -> list[str]:
    """Keep any MLflow store of a test run inside its temporary folder."""
    return ["--tracking_uri", f"sqlite:///{folder / 'mlruns.db'}"]


def _configs(*names: str) -> str:
    return "[" + ",".join(f"'{CONFIGS / n}'" for n in names) + "]"


def test_metadata_has_the_required_fields() -> None:
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    # required by MONAI's bundle schema (meta_schema_20240725.json)
    for key in (
        "version",
        "changelog",
        "monai_version",
        "pytorch_version",
        "numpy_version",
        "required_packages_version",
        "task",
        "description",
        "authors",
        "copyright",
        "network_data_format",
    ):
        assert key in meta, key
    assert meta["version"] in meta["changelog"]
    fmt = meta["network_data_format"]
    image, pred = fmt["inputs"]["image"], fmt["outputs"]["pred"]
    for d in (image, pred):
        for key in (
            "type",
            "format",
            "num_channels",
            "spatial_shape",
            "dtype",
            "value_range",
            "is_patch_data",
            "channel_def",
        ):
            assert key in d, key
    assert pred["channel_def"] == {"0": "background", "1": "LV", "2": "MYO", "3": "RV"}
    for name in (
        "train.json",
        "transfer.json",
        "inference.json",
        "evaluate.json",
        "multi_gpu_train.json",
        "logging.conf",
    ):
        assert (CONFIGS / name).exists(), name
    assert (BUNDLE / "LICENSE").exists() and (BUNDLE / "docs" / "README.md").exists()


def test_verify_net_in_out() -> None:
    _run(
        [
            "verify_net_in_out",
            "network_def",
            "--meta_file",
            str(CONFIGS / "metadata.json"),
            "--config_file",
            str(CONFIGS / "inference.json"),
            "--bundle_root",
            str(BUNDLE),
            "--n",
            "8",
        ]
    )


@pytest.mark.realdata
@pytest.mark.slow  # trains and evaluates through the bundle configs (~80 s on 2 cores): make test-slow
def test_train_and_evaluate_on_small_real_data(tmp_path: Path, acdc_dir: Path, sunnybrook_dir: Path) -> None:
    db = tmp_path / "mlruns" / "mlruns.db"
    train = ["run", "--config_file", str(CONFIGS / "train.json"), "--bundle_root", str(BUNDLE)]
    _run([*train, "--ckpt_dir", str(tmp_path / "ckpt"), "--tracking_uri", f"sqlite:///{db}", *SMALL])
    assert (tmp_path / "ckpt" / "model.pt").exists()
    # MLflow: parameters, per-epoch validation Dice and the model as an artifact. (A client, not
    # mlflow.set_tracking_uri: that sets MLFLOW_TRACKING_URI, which MONAI's handler then prefers over its
    # own tracking_uri in every later run of this process.)
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("cardiac_cine_seg")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].data.params["network"] == "unet"
    history = client.get_metric_history(runs[0].info.run_id, "val_mean_dice")
    assert [m.step for m in history] == [1]
    assert list((tmp_path / "mlruns" / "artifacts").rglob("model.pt"))
    evaluate = ["run", "--config_file", _configs("train.json", "evaluate.json"), "--bundle_root", str(BUNDLE)]
    _run(
        [
            *evaluate,
            "--ckpt_dir",
            str(tmp_path / "ckpt"),
            "--output_dir",
            str(tmp_path / "eval"),
            *SMALL,
            *_mlflow(tmp_path / "ml2"),
            "--sunnybrook_patients",
            "$" + repr({"SCD0000101": "SC-HF-I-1"}),
        ]
    )
    result = json.loads((tmp_path / "eval" / "evaluation.json").read_text())  # workflows.bundle_evaluation
    assert [r["study"] for r in result["acdc"]["indices"]] == ["patient004"]
    assert [r["study"] for r in result["sunnybrook"]["indices"]] == ["SC-HF-I-1"]
    assert (tmp_path / "eval" / "acdc" / "metrics.csv").exists()


@pytest.mark.realdata
@pytest.mark.slow  # torchrun with two gloo processes, ~25 s on 2 cores: make test-slow
def test_multi_gpu_config_runs_ddp_on_cpu(tmp_path: Path, acdc_dir: Path) -> None:
    _run(
        [
            "run",
            "--config_file",
            _configs("train.json", "multi_gpu_train.json"),
            "--bundle_root",
            str(BUNDLE),
            "--ckpt_dir",
            str(tmp_path / "ddp"),
            *SMALL,
            *_mlflow(tmp_path),
        ],
        torchrun=True,
    )
    sd = load_state_dict_file(tmp_path / "ddp" / "model.pt")  # DDP's "module." prefix is stripped
    assert sd and not any(k.startswith("module.") for k in sd)


@pytest.mark.realdata
def test_inference_writes_labels_on_the_input_grid(tmp_path: Path) -> None:
    if not (BUNDLE / "models" / "model.pt").exists():
        pytest.skip("no shipped weights in this checkout")
    dicom = REPO / "cardiacseg" / "data" / "demo" / "SCD0000101" / "dicom"
    _run(
        [
            "run",
            "--config_file",
            str(CONFIGS / "inference.json"),
            "--bundle_root",
            str(BUNDLE),
            "--input",
            str(dicom),
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    study = read_dicom_cine(dicom)
    img = nib.load(tmp_path / "out" / "labels.nii.gz")
    assert img.shape == (256, 256, 12, 2)  # X Y Z T, the input grid
    np.testing.assert_allclose(img.affine, study.affine, atol=1e-4)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["indices"]["lv_ef_percent"] is not None


def _transfer_args(tmp_path: Path, acdc_dir: Path) -> tuple[list[str], Path]:
    """A user's data in NIfTI with ACDC label values (built from real ACDC arrays) and random 'pretrained'
    weights; the bundle arguments of a one-epoch, encoder-frozen transfer run."""
    from cardiacseg.io import internal_to_acdc
    from cardiacseg.networks import get_network

    entries = []
    for pid in ("patient001", "patient002", "patient004"):
        study = read_ssl4mis_study(acdc_dir, pid)
        write_nifti(tmp_path / f"{pid}.nii.gz", study.image[0], spacing_mm=(10.0, 1.5, 1.5))
        write_nifti(
            tmp_path / f"{pid}_gt.nii.gz", internal_to_acdc(study.labels[0]), spacing_mm=(10.0, 1.5, 1.5)
        )
        entries.append({"image": f"{pid}.nii.gz", "label": f"{pid}_gt.nii.gz", "patient": pid})
    (tmp_path / "datalist.json").write_text(json.dumps({"training": entries[:2], "validation": entries[2:]}))
    pretrained = tmp_path / "pretrained.pt"
    torch.manual_seed(0)
    torch.save(get_network("unet", 2, 1, 4).state_dict(), pretrained)
    args = [
        "--bundle_root",
        str(BUNDLE),
        "--datalist",
        str(tmp_path / "datalist.json"),
        "--label_convention",
        "acdc",
        "--pretrained",
        str(pretrained),
        "--ckpt_dir",
        str(tmp_path / "transfer"),
        "--stage1_epochs",
        "1",
        "--stage2_epochs",
        "0",
        *_mlflow(tmp_path),
    ]
    return args, pretrained


def _encoder_frozen(pretrained: Path, trained: Path) -> None:
    from cardiacseg.networks import get_network

    before, after = load_state_dict_file(pretrained), load_state_dict_file(trained)
    assert not any(k.startswith("module.") for k in after)  # DDP's prefix stripped
    groups = get_network("unet", 2, 1, 4).parameter_groups  # type: ignore[union-attr]
    enc = tuple(groups["encoder"])
    weights = [k for k in before if k.endswith(".weight") and "adn" not in k]
    assert all(torch.equal(before[k], after[k]) for k in weights if k.startswith(enc))
    assert any(not torch.equal(before[k], after[k]) for k in weights if not k.startswith(enc))


@pytest.mark.realdata
@pytest.mark.slow  # torchrun with two gloo processes: make test-slow
def test_transfer_runs_under_ddp_on_cpu(tmp_path: Path, acdc_dir: Path) -> None:
    """train.json + transfer.json + multi_gpu_train.json: the pretrained weights reach the DDP-wrapped
    network, the encoder stays frozen in stage 1 on both ranks, and only rank 0 prints losses."""
    args, pretrained = _transfer_args(tmp_path, acdc_dir)
    proc = _run(
        ["run", "--config_file", _configs("train.json", "transfer.json", "multi_gpu_train.json"), *args],
        torchrun=True,
    )
    assert proc.stdout.count("pretrained weights:") == 2  # both ranks loaded them
    _encoder_frozen(pretrained, tmp_path / "transfer" / "model.pt")
    losses = [line for line in (proc.stdout + proc.stderr).splitlines() if "train_loss" in line]
    steps = [line[line.index("Iter: ") :].split(" ")[1] for line in losses if "Iter: " in line]
    assert steps and len(steps) == len(losses) == len(set(steps)), losses[:6]  # one printer, no step twice


@pytest.mark.realdata
def test_transfer_freezes_the_encoder_in_stage_one(tmp_path: Path, acdc_dir: Path) -> None:
    args, pretrained = _transfer_args(tmp_path, acdc_dir)
    _run(["run", "--config_file", _configs("train.json", "transfer.json"), *args])
    _encoder_frozen(pretrained, tmp_path / "transfer" / "model.pt")
