"""Bundle folders for benchmark trainings: a copy of the shipped bundle's configs with new weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cardiacseg.networks.weights import export_half_precision


def make_bundle(shipped: Path, folder: Path, inference: dict[str, Any] | None = None) -> None:
    """Copy the shipped bundle's configs, docs and scripts (not its weights) into ``folder``.

    ``inference`` replaces top-level values of the copy's ``inference.json`` (e.g. ``network_kwargs``), so
    the folder predicts with its own network from ``SlicePredictor.from_bundle(folder)`` alone.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("configs", "docs", "scripts"):
        if (shipped / name).is_dir() and not (folder / name).exists():
            shutil.copytree(shipped / name, folder / name)
    if (shipped / "LICENSE").is_file():
        shutil.copy2(shipped / "LICENSE", folder / "LICENSE")
    (folder / "models").mkdir(exist_ok=True)
    if inference:
        config = folder / "configs" / "inference.json"
        values = json.loads(config.read_text())
        values.update(inference)
        config.write_text(json.dumps(values, indent=4) + "\n")


def save_trained_weights(network: nn.Module, ckpt: Path, folder: Path) -> None:
    """Keep the trained network: float32 as ``ckpt/final_fp32.pt``, float16 as ``folder/models/model.pt``."""
    full = ckpt / "final_fp32.pt"
    torch.save(network.state_dict(), full)
    export_half_precision(full, folder / "models" / "model.pt")
