"""Thin Ignite handlers: staged transfer (freeze, then unfreeze), optional MLflow tracking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from cardiacseg.networks.weights import freeze, unfreeze

__all__ = ["StagedTransfer", "mlflow_handler"]


class StagedTransfer:
    """Freeze parameter groups at the start of training and unfreeze them after ``unfreeze_after_epochs``.

    The 7T transfer study's schedule: stage 1 trains with the encoder frozen, stage 2 fine-tunes everything
    (its lower learning rate is set by the learning-rate scheduler, e.g. ``MultiStepLR``).

    Args:
        network: the model.
        groups: parameter groups to freeze (see :func:`cardiacseg.networks.weights.parameter_groups`).
        unfreeze_after_epochs: epochs of stage 1 (0: no freezing).

    Example:
        >>> StagedTransfer(net, ["encoder"], 10).attach(trainer)  # doctest: +SKIP

    """

    def __init__(
        self, network: nn.Module, groups: Sequence[str] = ("encoder",), unfreeze_after_epochs: int = 10
    ):
        self.network = network
        self.groups = list(groups)
        self.unfreeze_after_epochs = unfreeze_after_epochs

    def attach(self, engine: Any) -> None:
        """Register with an Ignite engine.

        Args:
            engine: the trainer.

        """
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self._on_epoch)

    def _on_epoch(self, engine: Any) -> None:
        # EPOCH_STARTED also fires after a resume: decide from the epoch number, not from history
        epoch = engine.state.epoch  # 1-based, already incremented
        if epoch <= self.unfreeze_after_epochs:
            freeze(self.network, self.groups)
        else:
            unfreeze(self.network, self.groups)


def mlflow_handler(
    tracking_uri: str | None,
    experiment_name: str = "cardiacseg",
    run_name: str | None = None,
    params: dict[str, Any] | None = None,
    artifacts: Sequence[str] | None = None,
    enabled: bool = True,
    trainer: Any = None,
) -> Any:
    """MONAI's ``MLFlowHandler`` when MLflow is installed and tracking is enabled, else ``None``.

    Logs the parameters, the training loss per iteration, the validation metrics per epoch, the learning
    rate, and the given artifacts (e.g. the final model) when training completes.

    Args:
        tracking_uri: a local SQLite store (``sqlite:///path/mlruns.db``; artifacts go beside it, in
            ``artifacts/``) or a tracking server URI.
        experiment_name: MLflow experiment.
        run_name: MLflow run name.
        params: parameters to record.
        artifacts: files to upload at the end.
        enabled: switch tracking off.
        trainer: for a handler attached to the validation evaluator: the trainer, whose epoch numbers the
            validation metrics are logged under (no per-iteration logging then).

    Returns:
        The handler (attach it with ``.attach(trainer)``), or ``None``.

    Example:
        >>> mlflow_handler("sqlite:////tmp/mlruns/mlruns.db", enabled=False) is None
        True

    """
    if not enabled:
        return None
    try:
        import mlflow  # noqa: F401
    except ImportError:
        import logging

        logging.getLogger(__name__).warning(
            "mlflow is not installed: tracking is off (pip install cardiacseg[mlflow])"
        )
        return None
    from pathlib import Path

    from monai.handlers import MLFlowHandler

    artifact_location = None
    if tracking_uri and tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        artifact_location = (db.parent / "artifacts").resolve().as_uri()
    return MLFlowHandler(
        tracking_uri=tracking_uri,
        experiment_name=experiment_name,
        run_name=run_name,
        artifact_location=artifact_location,
        experiment_param=params,
        artifacts=[Path(a) for a in artifacts] if artifacts else None,
        iteration_log=trainer is None,
        global_epoch_transform=(lambda epoch: trainer.state.epoch) if trainer is not None else (lambda e: e),
        output_transform=_first_loss,
        tag_name="train_loss",
        close_on_complete=trainer is None,
    )


def _first_loss(output: Any) -> Any:
    return output[0]["loss"] if isinstance(output, list) else output["loss"]
