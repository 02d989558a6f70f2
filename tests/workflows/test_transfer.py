"""``cardiacseg transfer`` / :func:`run_transfer` on tiny real ACDC data: starts, resume, MLflow, bundle.

Training is kept tiny (ED stacks of 2 ACDC patients for training, 1 for validation, 64-pixel patches in a
96-pixel crop, 1-2 epochs) so the file runs in about a minute on 2 CPU cores.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cardiacseg import cli
from cardiacseg.handlers import RankZero, ResumableCheckpoint, is_rank_zero
from cardiacseg.io import read_ssl4mis_study, write_nifti
from cardiacseg.workflows.transfer import (
    _prepare_output,
    parse_labelled,
    resolve_transfer_data,
    run_transfer,
    select_transfer_data,
)

TINY: dict[str, Any] = {
    "crop_size": 96,
    "patch_size": 64,
    "batch_size": 8,
    "device": "cpu",
    "patience": 6,
}


def _datalist(folder: Path, acdc_dir: Path, drop_rv: bool = False, phases: tuple[int, ...] = (0,)) -> Path:
    """NIfTI stacks written from real ACDC arrays: patient001/002 train, patient004 validates."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for pid in ("patient001", "patient002", "patient004"):
        study = read_ssl4mis_study(acdc_dir, pid)
        for t in phases:
            phase = "ED" if t == 0 else "ES"
            label = study.labels[t].copy()
            if drop_rv:
                label[label == 3] = 0  # internal RV: a user's LV + MYO-only labels
            write_nifti(folder / f"{pid}_{phase}.nii.gz", study.image[t], spacing_mm=(10.0, 1.5, 1.5))
            write_nifti(folder / f"{pid}_{phase}_gt.nii.gz", label, spacing_mm=(10.0, 1.5, 1.5))
            entries.append(
                {"image": f"{pid}_{phase}.nii.gz", "label": f"{pid}_{phase}_gt.nii.gz", "patient": pid}
                | {"phase": phase}
            )
    n_val = len(phases)
    path = folder / "datalist.json"
    path.write_text(json.dumps({"training": entries[:-n_val], "validation": entries[-n_val:]}))
    return path


@pytest.fixture(scope="module")
def tiny_datalist(tmp_path_factory: pytest.TempPathFactory, acdc_dir: Path) -> Path:
    return _datalist(tmp_path_factory.mktemp("tiny"), acdc_dir)


def _mlflow_runs(db: Path) -> list[Any]:
    # a client with an explicit URI: mlflow.set_tracking_uri would set MLFLOW_TRACKING_URI for the process
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("cardiacseg_transfer")
    assert experiment is not None
    return list(client.search_runs([experiment.experiment_id]))


@pytest.mark.realdata
def test_shipped_start_resumes_after_a_kill_and_makes_a_usable_bundle(
    tmp_path: Path, tiny_datalist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "bundle"
    save, load = ResumableCheckpoint.save, ResumableCheckpoint.load

    def save_then_die(self: ResumableCheckpoint, engine: Any) -> None:
        save(self, engine)
        if engine.state.epoch == 1:
            raise KeyboardInterrupt  # a kill right after epoch 1's checkpoint

    monkeypatch.setattr(ResumableCheckpoint, "save", save_then_die)
    options = dict(TINY, stage1_epochs=1, stage2_epochs=1)
    with pytest.raises(KeyboardInterrupt):
        run_transfer(tiny_datalist, out, "shipped", **options)
    marker = json.loads((out / "transfer" / "run.json").read_text())
    assert marker["status"] == "running" and (out / "models" / "transfer" / "last.pt").is_file()
    first = torch.load(out / "models" / "transfer" / "last.pt", weights_only=False)
    assert first["epoch"] == 1
    iters_per_epoch = first["iteration"]
    (killed,) = _mlflow_runs(out / "mlruns" / "mlruns.db")
    assert killed.info.status == "KILLED"

    loaded: list[dict[str, Any]] = []

    def load_and_look(self: ResumableCheckpoint, engine: Any) -> None:
        load(self, engine)
        steps = {int(s["step"]) for s in self.optimizer.state_dict()["state"].values()}
        loaded.append({"epoch": engine.state.epoch, "iteration": engine.state.iteration, "steps": steps})

    monkeypatch.setattr(ResumableCheckpoint, "save", save)
    monkeypatch.setattr(ResumableCheckpoint, "load", load_and_look)
    result = run_transfer(tiny_datalist, out, "shipped", **options)  # the same call: resumes

    # continued from the checkpoint: epoch counter, iteration and AdamW's step count after epoch 1
    assert loaded == [{"epoch": 1, "iteration": iters_per_epoch, "steps": {iters_per_epoch}}]
    assert result.resumed_from == 1 and result.epochs_run == 2
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert [h["images_seen"] for h in result.history] == [result.train_images, 2 * result.train_images]
    assert [h["learning_rate"] for h in result.history] == [1e-4, 1e-5]
    # the shipped weights were loaded: LV/MYO/RV Dice of the first epoch is already high
    assert result.history[0]["val_mean_dice"] > 0.7

    # one MLflow run, continued after the kill and marked finished, with the parameters that matter
    (run,) = _mlflow_runs(out / "mlruns" / "mlruns.db")
    assert run.info.status == "FINISHED" and result.mlflow_run_id == run.info.run_id
    params = run.data.params
    from cardiacseg.provenance import file_sha256

    assert params["data_sha256"] == file_sha256(tiny_datalist)
    assert params["start"] == "shipped" and params["start_weights_sha256"] == file_sha256(
        Path(cli.__file__).parent / "cardiac_cine_seg" / "models" / "model.pt"
    )
    assert (params["stage1_lr"], params["stage2_lr"], params["labelled_classes"]) == (
        "0.0001",
        "1e-05",
        "[1, 2, 3]",
    )
    assert run.data.metrics["encoder_unfrozen_epoch"] == 2.0
    assert run.data.tags["encoder_unfrozen_epoch"] == "2"

    # the bundle: weights = best checkpoint, no resume checkpoint left, metadata notes the transfer
    assert (out / "models" / "model.pt").read_bytes() == (
        out / "models" / "transfer" / "model.pt"
    ).read_bytes()
    assert not (out / "models" / "transfer" / "last.pt").exists()
    meta = json.loads((out / "configs" / "metadata.json").read_text())
    assert "+transfer." in meta["version"] and "shipped start" in meta["changelog"][meta["version"]]
    assert json.loads((out / "transfer" / "run.json").read_text())["status"] == "finished"

    # segment --bundle uses it directly, on a real study it did not train on (patient004 ED)
    acdc = Path(tiny_datalist).parent
    image = acdc / "patient004_ED.nii.gz"
    code = cli.main(
        [
            "segment",
            str(image),
            "-o",
            str(tmp_path / "seg"),
            "--bundle",
            str(out),
            "--tta",
            "none",
            "--no-figures",
            "--quiet",
        ]
    )
    assert code in (0, 2)
    import nibabel as nib

    (labels_file,) = (tmp_path / "seg").glob("*/labels.nii.gz")
    pred = np.asarray(nib.load(labels_file).dataobj)
    ref = np.asarray(nib.load(acdc / "patient004_ED_gt.nii.gz").dataobj)
    pred = pred.reshape(ref.shape) if pred.size == ref.size else pred[..., 0].reshape(ref.shape)
    lv = (2 * ((pred == 1) & (ref == 1)).sum()) / ((pred == 1).sum() + (ref == 1).sum())
    assert lv > 0.8

    # the same command again: the finished bundle is refused without --overwrite
    with pytest.raises(FileExistsError, match="finished transfer; pass --overwrite"):
        run_transfer(tiny_datalist, out, "shipped", **options)


@pytest.mark.realdata
def test_random_start_is_far_below_the_shipped_start_after_one_epoch(
    tmp_path: Path, tiny_datalist: Path
) -> None:
    one_epoch = dict(TINY, stage1_epochs=1, stage2_epochs=0, mlflow=False)
    shipped = run_transfer(tiny_datalist, tmp_path / "tl2", "shipped", **one_epoch)
    random = run_transfer(tiny_datalist, tmp_path / "r", "random", **one_epoch)
    d_tl2, d_r = shipped.history[0]["val_mean_dice"], random.history[0]["val_mean_dice"]
    print(f"first-epoch validation mean Dice: shipped (TL2) {d_tl2:.3f}, random (R) {d_r:.3f}")
    assert d_tl2 > 0.7 and d_tl2 - d_r > 0.4
    transfer = json.loads((tmp_path / "r" / "configs" / "transfer.json").read_text())
    assert transfer["pretrained"] is None and transfer["freeze_groups"] == []


@pytest.mark.realdata
def test_lv_myo_labels_train_with_the_marginal_loss(tmp_path: Path, acdc_dir: Path) -> None:
    data = _datalist(tmp_path / "data", acdc_dir, drop_rv=True)
    out = tmp_path / "lvmyo"
    result = run_transfer(
        data, out, "shipped", labelled="lv,myo", **TINY, stage1_epochs=1, stage2_epochs=0, mlflow=False
    )
    # validation Dice over LV and MYO only (RV counts in neither labels nor predictions)
    assert result.history[0]["val_mean_dice"] > 0.7
    from monai.bundle import ConfigParser

    from cardiacseg.losses.partial import MarginalDiceCELoss

    parser = ConfigParser()
    parser.read_config([str(out / "configs" / n) for n in ("train.json", "transfer.json")])
    parser["bundle_root"] = str(out)
    loss = parser.get_parsed_content("loss")
    assert isinstance(loss, MarginalDiceCELoss) and loss.labelled == [1, 2] and loss.unlabelled == [3]
    # an RV pixel labelled 0 (background or RV: not contoured) is not pushed either way
    logits, target = torch.randn(2, 4, 16, 16), torch.zeros(2, 1, 16, 16)
    target[:, :, 4:8, 4:8] = 1
    swapped = logits[:, [3, 1, 2, 0]]
    assert torch.allclose(loss(logits, target), loss(swapped, target), atol=1e-6)
    # labels that do hold RV are refused with --labelled lv,myo (unless --drop-unlabelled)
    full = _datalist(tmp_path / "full", acdc_dir)
    with pytest.raises(ValueError, match="holds RV"):
        run_transfer(full, tmp_path / "refused", "shipped", labelled="lv,myo", **TINY, mlflow=False)
    assert not (tmp_path / "refused").exists()


def test_imagenet_start_without_weights_is_refused_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "d.json"
    data.write_text("{}")
    code = cli.main(["transfer", "--data", str(data), "-o", str(tmp_path / "out"), "--start", "imagenet"])
    err = capsys.readouterr().err
    assert (
        code == 1
        and "--start imagenet needs --imagenet-weights FILE" in err
        and "nothing is downloaded" in err
    )
    assert not (tmp_path / "out").exists()
    missing = str(tmp_path / "resnet34.pth")
    code = cli.main(
        [
            "transfer",
            "--data",
            str(data),
            "-o",
            str(tmp_path / "out"),
            "--start",
            "imagenet",
            "--imagenet-weights",
            missing,
        ]
    )
    assert code == 1 and "resnet34.pth: ImageNet weights file not found" in capsys.readouterr().err


def test_cli_maps_every_option_to_run_transfer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fake(*args: Any, **kwargs: Any) -> Any:
        seen.update(args=args, **kwargs)
        raise ValueError("stop")

    monkeypatch.setattr("cardiacseg.workflows.transfer.run_transfer", fake)
    argv = ["transfer", "--data", "d.json", "-o", "out", "--start", "random", "--labelled", "lv,myo"]
    argv += ["--subjects", "3", "--ed-es-only", "--stage1-epochs", "2", "--stage2-lr", "3e-6", "--no-mlflow"]
    assert cli.main(argv) == 1
    assert seen["args"] == ("d.json", "out", "random")
    assert (seen["labelled"], seen["subjects"], seen["ed_es_only"]) == ("lv,myo", 3, True)
    assert (seen["stage1_epochs"], seen["stage2_lr"], seen["mlflow"], seen["images"]) == (
        2,
        3e-6,
        False,
        None,
    )


def test_selection_split_subsets_and_ed_es(tmp_path: Path) -> None:
    label = np.zeros((3, 8, 8), np.uint8)
    label[:, 2:5, 2:5] = 1
    image = np.ones((3, 8, 8), np.float32)
    entries = []
    for p in range(6):
        for phase in ("ED", "MID", "ES"):
            write_nifti(tmp_path / f"p{p}_{phase}.nii.gz", image)
            write_nifti(tmp_path / f"p{p}_{phase}_gt.nii.gz", label)
            entries.append(
                {
                    "image": f"p{p}_{phase}.nii.gz",
                    "label": f"p{p}_{phase}_gt.nii.gz",
                    "patient": f"p{p}",
                    "phase": phase,
                }
            )
    (tmp_path / "d.json").write_text(json.dumps({"training": entries}))
    source = resolve_transfer_data(tmp_path / "d.json")
    assert (
        source.kind == "datalist"
        and source.validation is None
        and Path(source.training[0]["image"]).is_absolute()
    )

    _full, s_full = select_transfer_data(source, val_fraction=0.34, seed=1)
    assert not set(s_full["train_patients"]) & set(s_full["validation_patients"])
    assert len(s_full["validation_patients"]) == 2 and s_full["train_images"] == 4 * 3 * 3
    small = [
        select_transfer_data(source, 0.34, subjects=n, seed=1)[1]["train_patients"] for n in (1, 2, 3, 4)
    ]
    assert all(set(a) <= set(b) for a, b in itertools.pairwise(small))
    assert [len(s) for s in small] == [1, 2, 3, 4]

    eded, s_eded = select_transfer_data(source, 0.34, ed_es_only=True, seed=1)
    assert {e["phase"] for e in eded["training"]} == {"ED", "ES"} and s_eded["train_images"] == 4 * 2 * 3
    assert {e["phase"] for e in eded["validation"]} == {"ED", "MID", "ES"}  # validation is not subset

    def chosen(n: int) -> set[tuple[str, str, int]]:
        d, summary = select_transfer_data(source, 0.34, images=n, seed=1)
        assert summary["train_images"] == n
        return {(e["patient"], e["phase"], z) for e in d["training"] for z in e["slices"]}

    five, twelve = chosen(5), chosen(12)
    assert len(five) == 5 and len(twelve) == 12 and five <= twelve

    with pytest.raises(ValueError, match="--subjects 9: the training part has 4 subjects"):
        select_transfer_data(source, 0.34, subjects=9, seed=1)


def test_output_folder_rules(tmp_path: Path) -> None:
    fp = {"data": "a", "seed": 0}
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="not made by cardiacseg transfer"):
            _prepare_output(user, fp, overwrite)
    assert (user / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _prepare_output(empty, fp, False) is False and not empty.exists()

    run = tmp_path / "run"
    (run / "transfer").mkdir(parents=True)
    (run / "transfer" / "run.json").write_text(json.dumps({"status": "running", "fingerprint": fp}))
    assert _prepare_output(run, fp, False) is True  # resume
    with pytest.raises(FileExistsError, match=r"other options \(seed: 0 -> 1\)"):
        _prepare_output(run, {"data": "a", "seed": 1}, False)
    (run / "transfer" / "run.json").write_text(json.dumps({"status": "finished", "fingerprint": fp}))
    with pytest.raises(FileExistsError, match="finished transfer"):
        _prepare_output(run, fp, False)
    assert _prepare_output(run, fp, True) is False and not run.exists()


def test_labelled_names() -> None:
    assert parse_labelled("LV, myo") == [1, 2] and parse_labelled(["rv", "lv", "lv"]) == [1, 3]
    with pytest.raises(ValueError, match="some of lv, myo, rv"):
        parse_labelled("lv,la")


def test_only_rank_zero_prints_and_checkpoints(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch.distributed as dist

    class Recorder:
        attached = 0

        def attach(self, engine: Any) -> None:
            Recorder.attached += 1

    assert is_rank_zero()
    RankZero(Recorder()).attach(None)
    assert Recorder.attached == 1
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda group=None: 1)
    assert not is_rank_zero()
    RankZero(Recorder()).attach(None)  # a progress bar or loss printer on rank 1: not attached
    assert Recorder.attached == 1
    net = torch.nn.Linear(2, 2)
    ckpt = ResumableCheckpoint(str(tmp_path), net, torch.optim.SGD(net.parameters(), lr=0.1))
    ckpt.save(type("E", (), {"state": type("S", (), {"epoch": 1, "iteration": 1})()})())
    assert not (tmp_path / "last.pt").exists()


@pytest.mark.realdata
def test_folders_resolve_to_ed_es_entries(tmp_path: Path, acdc_dir: Path) -> None:
    from cardiacseg.data.datalist import datalist_slice_items
    from cardiacseg.io.acdc import write_acdc_patient

    # the SSL4MIS folder: three real patients linked into a folder of their own
    h5 = tmp_path / "ssl4mis"
    h5.mkdir()
    data = acdc_dir / "data" if (acdc_dir / "data").is_dir() else acdc_dir
    for pid in ("patient001", "patient002", "patient004"):
        for f in data.glob(f"{pid}_frame*.h5"):
            (h5 / f.name).symlink_to(f)
    source = resolve_transfer_data(h5)
    assert source.kind == "ssl4mis" and len(source.training) == 6 and source.validation is None
    datalist, summary = select_transfer_data(source, val_fraction=0.34, seed=0)
    assert len(summary["train_patients"]) == 2 and len(summary["validation_patients"]) == 1
    assert {e["patient"] for e in datalist["training"]} == set(summary["train_patients"])
    study = read_ssl4mis_study(acdc_dir, summary["validation_patients"][0])
    assert summary["validation_images"] == 2 * study.n_slices  # ED and ES, every slice
    with pytest.raises(ValueError, match="--label-convention applies to datalists only"):
        resolve_transfer_data(h5, "internal")

    # the ACDC layout, written from a real patient: ACDC label values, converted when read
    acdc = tmp_path / "acdc"
    write_acdc_patient(acdc / "patient001", read_ssl4mis_study(acdc_dir, "patient001"), group="DCM")
    source = resolve_transfer_data(acdc)
    assert source.kind == "acdc" and source.label_convention == "acdc"
    assert [e["phase"] for e in source.training] == ["ED", "ES"]
    items = datalist_slice_items({"training": source.training}, "training", "acdc")
    np.testing.assert_array_equal(
        items[3]["label"][0], read_ssl4mis_study(acdc_dir, "patient001").labels[0][3].T
    )


@pytest.mark.slow
@pytest.mark.realdata
def test_imagenet_start_builds_the_resnet34_unet_and_segment_uses_it(
    tmp_path: Path, tiny_datalist: Path
) -> None:
    from cardiacseg.inferers import SlicePredictor
    from cardiacseg.networks import make_backbone

    # a state dict in torchvision's ResNet34 layout (RGB first conv, ImageNet classifier), made locally
    torch.manual_seed(0)
    weights = make_backbone("resnet34", in_channels=3).state_dict()
    weights |= {"fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    torch.save(weights, tmp_path / "resnet34.pth")
    out = tmp_path / "tl"
    result = run_transfer(
        tiny_datalist,
        out,
        "imagenet",
        imagenet_weights=tmp_path / "resnet34.pth",
        **dict(TINY, stage1_epochs=1, stage2_epochs=0, mlflow=False),
    )
    assert json.loads((out / "configs" / "inference.json").read_text())["network_name"] == "resnet34_unet"
    transfer = json.loads((out / "configs" / "transfer.json").read_text())
    assert transfer["network_def#pretrained"] == str((tmp_path / "resnet34.pth").resolve())
    assert transfer["pretrained"] is None and transfer["freeze_groups"] == ["encoder"]
    # the encoder stayed frozen in stage 1: its convolutions still hold the (summed-RGB) given weights
    state = torch.load(result.model, weights_only=True)
    conv = next(k for k in state if k.endswith("conv1.weight") and "layer" not in k)
    torch.testing.assert_close(state[conv], weights["conv1.weight"].sum(dim=1, keepdim=True))
    predictor = SlicePredictor.from_bundle(out, tta="none")
    assert type(predictor.network).__name__ == "EncoderUNet"  # segment --bundle builds the ResNet34 U-Net
