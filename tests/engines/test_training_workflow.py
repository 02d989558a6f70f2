"""The Python training route is the bundle's train.json: same loss and pipeline, trains on real slices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.losses import DiceCELoss

from cardiacseg.data.datalist import ssl4mis_slice_items
from cardiacseg.engines import training_workflow, val_transforms
from cardiacseg.metrics import dice_score

BUNDLE = Path(__file__).resolve().parents[2] / "cardiacseg" / "cardiac_cine_seg"


def test_training_workflow_uses_the_bundle_loss_and_overrides(acdc_dir: Path, tmp_path: Path) -> None:
    train = json.loads((BUNDLE / "configs" / "train.json").read_text())
    wf = training_workflow(
        BUNDLE,
        data_root=str(acdc_dir),
        ckpt_dir=str(tmp_path),
        epochs=3,
        mlflow_tracking=False,
        learning_rate=0.01,
        train_patients=["patient001"],
        val_patients=["patient004"],
    )
    loss = wf.parser.get_parsed_content("loss")
    assert isinstance(loss, DiceCELoss)
    # the flags train.json sets, read from the file itself (not from the code under test)
    flags = {k: v for k, v in train["loss"].items() if k != "_target_"}
    assert flags, "train.json's loss sets no flags"
    assert loss.dice.squared_pred == flags.get("squared_pred", False)
    assert loss.dice.batch == flags.get("batch", False)
    assert wf.parser["epochs"] == 3
    optimizer = wf.parser.get_parsed_content("optimizer")
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    with pytest.raises(FileNotFoundError, match=r"nope\.json"):
        training_workflow(BUNDLE, config_files=("train.json", "nope.json"))


@pytest.mark.slow
def test_training_workflow_trains_on_real_slices(acdc_dir: Path, tmp_path: Path) -> None:
    """A few epochs on one ACDC patient raise the LV Dice against its expert labels."""
    wf = training_workflow(
        BUNDLE,
        data_root=str(acdc_dir),
        ckpt_dir=str(tmp_path),
        epochs=10,
        val_interval=5,
        augmentation="s1",
        crop_size=128,
        patch_size=96,
        mlflow_tracking=False,
        network_def={
            "_target_": "cardiacseg.networks.get_network",
            "name": "unet",
            "spatial_dims": 2,
            "in_channels": 1,
            "out_channels": 4,
            "channels": (8, 16, 32, 64),
            "strides": (2, 2, 2),
        },
        learning_rate=0.01,
        batch_size=8,
        train_patients=["patient001"],
        val_patients=["patient001"],
    )
    net = wf.parser.get_parsed_content("network")
    t = val_transforms(128)
    items = [t(i) for i in ssl4mis_slice_items(acdc_dir, ["patient001"], skip_empty=True)]

    def lv_dice() -> float:
        net.eval()
        with torch.no_grad():
            x = torch.stack([torch.as_tensor(i["image"]) for i in items])
            y = torch.stack([torch.as_tensor(i["label"]) for i in items])
            pred = net(x).argmax(1, keepdim=True)
        return dice_score((pred == 1).numpy(), (y == 1).numpy())

    before = lv_dice()
    wf.run()
    wf.finalize()
    after = lv_dice()
    assert wf.parser.get_parsed_content("train#trainer").state.epoch == 10
    assert any(tmp_path.iterdir()), "no checkpoint written"
    assert after > before + 0.2, (before, after)


def _adversarial_workflow(acdc_dir: Path, tmp_path: Path, files: tuple[str, ...], epochs: int) -> object:
    return training_workflow(
        BUNDLE,
        config_files=files,
        data_root=str(acdc_dir),
        ckpt_dir=str(tmp_path),
        epochs=epochs,
        val_interval=1,
        crop_size=128,
        patch_size=96,
        mlflow_tracking=False,
        batch_size=8,
        train_patients=["patient001"],
        val_patients=["patient004"],
    )


def test_adversarial_overlay_switches_the_iteration_update(acdc_dir: Path, tmp_path: Path) -> None:
    """configs/adversarial.json replaces the trainer's iteration update, nothing else."""
    from cardiacseg.engines.adversarial import AdversarialIteration

    wf = _adversarial_workflow(acdc_dir, tmp_path, ("train.json", "adversarial.json"), 1)
    trainer = wf.parser.get_parsed_content("train#trainer")  # type: ignore[attr-defined]
    update = wf.parser.get_parsed_content("adversarial")  # type: ignore[attr-defined]
    assert isinstance(update, AdversarialIteration) and update.steps == 2
    assert trainer._process_function is update  # the Ignite engine runs it as its iteration
    plain = _adversarial_workflow(acdc_dir, tmp_path / "plain", ("train.json",), 1)
    plain_trainer = plain.parser.get_parsed_content("train#trainer")  # type: ignore[attr-defined]
    assert not isinstance(plain_trainer._process_function, AdversarialIteration)


@pytest.mark.slow
def test_adversarial_overlay_trains_one_epoch(acdc_dir: Path, tmp_path: Path) -> None:
    wf = _adversarial_workflow(acdc_dir, tmp_path, ("train.json", "adversarial.json"), 1)
    wf.run()  # type: ignore[attr-defined]
    trainer = wf.parser.get_parsed_content("train#trainer")  # type: ignore[attr-defined]
    out = trainer.state.output
    assert out["loss_consistency"] > 0 and out["adversarial_gain"] > 0
    wf.finalize()  # type: ignore[attr-defined]
