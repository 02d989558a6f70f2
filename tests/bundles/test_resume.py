"""A training run stopped mid-epoch and resumed ends exactly like an uninterrupted run with the same seed."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "cardiac_cine_seg"


class _KilledError(RuntimeError):
    pass


def _workflow(ckpt: Path) -> ConfigWorkflow:
    wf = ConfigWorkflow(
        config_file=str(BUNDLE / "configs" / "train.json"),
        workflow_type="train",
        bundle_root=str(BUNDLE),
        ckpt_dir=str(ckpt),
        epochs=3,
        val_interval=1,
        mlflow_tracking=False,
        train_patients=["patient001", "patient002"],
        val_patients=["patient004"],
    )
    wf.initialize()
    return wf


def _final(wf: ConfigWorkflow) -> tuple[float, dict[str, torch.Tensor]]:
    evaluator = wf.parser.get_parsed_content("validate#evaluator")
    network = wf.parser.get_parsed_content("network")
    return float(evaluator.state.metrics["val_mean_dice"]), {
        k: v.clone() for k, v in network.state_dict().items()
    }


@pytest.mark.realdata
@pytest.mark.slow  # a 3-epoch training run twice (~2 min on 2 cores): make test-slow
def test_resume_after_a_mid_epoch_stop_matches_the_uninterrupted_run(tmp_path: Path, acdc_dir: Path) -> None:
    full = _workflow(tmp_path / "full")
    full.run()
    dice_full, weights_full = _final(full)

    first = _workflow(tmp_path / "resumed")
    trainer = first.parser.get_parsed_content("train#trainer")
    per_epoch = len(first.parser.get_parsed_content("train#dataloader"))

    def kill(engine: object) -> None:
        raise _KilledError("simulated crash")

    # stop in the middle of the third epoch: the last checkpoint is the end of epoch 2
    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=2 * per_epoch + max(1, per_epoch // 2)), kill)
    with pytest.raises(RuntimeError) as crash:  # the bundle runner wraps the handler's exception
        first.run()
    assert "simulated crash" in "".join(traceback.format_exception(crash.value))
    assert (tmp_path / "resumed" / "last.pt").exists()

    second = _workflow(tmp_path / "resumed")
    second.run()
    handlers = second.parser.get_parsed_content("train#handlers")
    assert handlers[-1].resumed_from == 2
    dice_resumed, weights_resumed = _final(second)
    assert dice_resumed == pytest.approx(dice_full, abs=1e-6)
    for k, v in weights_full.items():
        torch.testing.assert_close(weights_resumed[k], v, rtol=1e-5, atol=1e-6)
