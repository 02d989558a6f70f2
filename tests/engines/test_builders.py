"""The Python trainer/evaluator builders train a real network on real ACDC slices."""

from __future__ import annotations

from pathlib import Path

import torch
from monai.data import DataLoader, Dataset
from monai.utils import set_determinism

from cardiacseg.data.datalist import ssl4mis_slice_items
from cardiacseg.engines import build_evaluator, build_trainer, val_transforms
from cardiacseg.metrics import dice_score
from cardiacseg.networks import get_network


def _lv_dice(net: torch.nn.Module, items: list[dict[str, object]]) -> float:
    net.eval()
    with torch.no_grad():
        x = torch.stack([torch.as_tensor(i["image"]) for i in items])
        y = torch.stack([torch.as_tensor(i["label"]) for i in items])
        pred = net(x).argmax(1, keepdim=True)
    return dice_score((pred == 1).numpy(), (y == 1).numpy())


def test_builders_train_and_validate_on_real_slices(acdc_dir: Path, tmp_path: Path) -> None:
    set_determinism(0)
    t = val_transforms(96)
    items = [t(i) for i in ssl4mis_slice_items(acdc_dir, ["patient001"], skip_empty=True)]
    net = get_network("unet", 2, 1, 4, channels=(8, 16, 32, 64), strides=(2, 2, 2))
    before = _lv_dice(net, items)
    loader = DataLoader(Dataset(items), batch_size=8, shuffle=True)
    evaluator = build_evaluator(net, DataLoader(Dataset(items), batch_size=8), checkpoint_dir=str(tmp_path))
    trainer = build_trainer(
        net,
        loader,
        evaluator,
        epochs=12,
        learning_rate=1e-2,
        val_interval=4,
        early_stop_patience=5,
        progress=False,
    )
    trainer.run()
    assert trainer.state.epoch == 12
    assert (tmp_path / "model.pt").exists()
    after = _lv_dice(net, items)
    # an independent Dice of the trained network, against the expert labels it was fitted to
    assert after > max(0.6, before + 0.3), (before, after)
    assert evaluator.state.best_metric > 0.3
