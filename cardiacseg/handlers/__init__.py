"""Thin Ignite handlers: exact resume, staged transfer (freeze, then unfreeze), optional MLflow tracking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from cardiacseg.config import as_bool
from cardiacseg.networks.weights import freeze, unfreeze

__all__ = [
    "ResumableCheckpoint",
    "StagedTransfer",
    "as_bool",
    "first_loss",
    "mlflow_handler",
    "mlflow_run_name",
]


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
    enabled: bool | str = True,
    trainer: Any = None,
) -> Any:
    """MONAI's ``MLFlowHandler`` when MLflow is installed and tracking is enabled, else ``None``.

    Logs the parameters, the training loss per iteration, the validation metrics per epoch, the learning
    rate, and the given artifacts (e.g. the final model) when training completes.

    Args:
        tracking_uri: a local SQLite store (``sqlite:///path/mlruns.db``; artifacts go beside it, in
            ``artifacts/``) or a tracking server URI. NOTE: MONAI's handler gives the environment variable
            ``MLFLOW_TRACKING_URI`` precedence, and ``mlflow.set_tracking_uri`` sets that variable for the
            whole process (e.g. in a notebook).
        experiment_name: MLflow experiment.
        run_name: MLflow run name. An unfinished run of this name (a killed training) is continued; give
            each training its own name (:func:`mlflow_run_name`), since MONAI's handler otherwise continues
            the latest unfinished run of the experiment, whatever its parameters.
        params: parameters to record.
        artifacts: files to upload at the end.
        enabled: switch tracking off (a bool, or ``"true"``/``"false"``/``"1"``/``"0"``/``"yes"``/``"no"``
            as given on the ``monai.bundle run`` command line).
        trainer: for a handler attached to the validation evaluator: the trainer, whose epoch numbers the
            validation metrics are logged under (no per-iteration logging then).

    Returns:
        The handler (attach it with ``.attach(trainer)``), or ``None``.

    Raises:
        ValueError: ``enabled`` is a string that is not a boolean word.

    Example:
        >>> mlflow_handler("sqlite:////tmp/mlruns/mlruns.db", enabled="false") is None
        True

    """
    if not as_bool(enabled):
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
        output_transform=first_loss,
        tag_name="train_loss",
        close_on_complete=trainer is None,
    )


def mlflow_run_name(ckpt_dir: str, params: dict[str, Any] | None = None) -> str:
    """Name the MLflow run of one training after its checkpoint folder and its parameters.

    A training resumed from the same folder with the same parameters continues its MLflow run; a training
    with other parameters, or another folder, gets a new run (MLflow refuses to change a logged parameter).

    Args:
        ckpt_dir: the training's checkpoint folder.
        params: the parameters logged for it.

    Returns:
        ``"<folder name>-<8 hex digits>"``.

    Example:
        >>> a = mlflow_run_name("/runs/unet", {"epochs": 8})
        >>> a.startswith("unet-"), a == mlflow_run_name("/runs/unet", {"epochs": 10})
        (True, False)

    """
    import hashlib
    import json
    import os

    folder = os.path.abspath(str(ckpt_dir))
    key = json.dumps([folder, params or {}], sort_keys=True, default=str)
    return f"{os.path.basename(folder)}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def first_loss(output: Any) -> Any:
    """Return the loss of a MONAI trainer's output (a list of decollated dictionaries, or one dictionary).

    Args:
        output: ``engine.state.output``.

    Returns:
        The loss value.

    Example:
        >>> first_loss([{"loss": 0.5}, {"loss": 0.5}])
        0.5

    """
    return output[0]["loss"] if isinstance(output, list) else output["loss"]


def _random_states(root: Any) -> list[np.random.RandomState]:
    """Every ``numpy.random.RandomState`` held by a transform tree, in a fixed depth-first order."""
    found: list[np.random.RandomState] = []
    seen: set[int] = set()

    def visit(obj: Any, depth: int) -> None:
        if depth > 12 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, np.random.RandomState):
            found.append(obj)
            return
        if isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item, depth + 1)
            return
        if hasattr(obj, "__dict__") and type(obj).__module__.startswith(
            ("monai.transforms", "cardiacseg.transforms")
        ):
            for value in vars(obj).values():
                visit(value, depth + 1)

    visit(root, 0)
    return found


class ResumableCheckpoint:
    """Save everything needed to resume training exactly, after every epoch; resume from it on start.

    The checkpoint holds the network, optimizer and scheduler states, the epoch and iteration, and the
    random states of torch, numpy, Python and of every random transform of the training pipeline, so that
    a run stopped at any point (even mid-epoch) and restarted repeats the interrupted epoch exactly as an
    uninterrupted run would. Attach it after the other handlers (it must see the random state at the very
    end of the epoch). Writes are atomic.

    Args:
        save_dir: folder of ``filename``.
        network: the model.
        optimizer: the optimizer.
        lr_scheduler: the learning-rate scheduler, or ``None``.
        transform: the training transform (its random transforms' states are saved), or ``None``.
        filename: checkpoint file name.
        resume: load the checkpoint at start when it exists.

    Example:
        >>> ResumableCheckpoint("models/train", net, opt, sched, transform).attach(trainer)  # doctest: +SKIP

    """

    def __init__(
        self,
        save_dir: str,
        network: nn.Module,
        optimizer: Any,
        lr_scheduler: Any = None,
        transform: Any = None,
        filename: str = "last.pt",
        resume: bool | str = True,
    ):
        from pathlib import Path

        self.path = Path(save_dir) / filename
        self.network = network
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.transform = transform
        self.resume = as_bool(resume)
        self.resumed_from: int | None = None

    def attach(self, engine: Any) -> None:
        """Register with the trainer.

        Args:
            engine: the Ignite trainer.

        """
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self.load)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)

    def save(self, engine: Any) -> None:
        """Write the checkpoint (atomically).

        Args:
            engine: the trainer.

        """
        import random

        import torch

        from cardiacseg.utils.atomic import atomic_write

        state = {
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": None if self.lr_scheduler is None else self.lr_scheduler.state_dict(),
            "epoch": int(engine.state.epoch),
            "iteration": int(engine.state.iteration),
            "rng_torch": torch.get_rng_state(),
            "rng_numpy": np.random.get_state(),
            "rng_python": random.getstate(),
            "rng_transforms": [r.get_state() for r in _random_states(self.transform)],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda p: torch.save(state, p), overwrite=True)

    def load(self, engine: Any) -> None:
        """Restore the checkpoint, if any, so that the run continues after its epoch.

        Args:
            engine: the trainer.

        """
        import random

        import torch

        if not self.resume or not self.path.exists():
            return
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.lr_scheduler is not None and state["lr_scheduler"] is not None:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        engine.state.epoch = state["epoch"]
        engine.state.iteration = state["iteration"]
        torch.set_rng_state(state["rng_torch"])
        np.random.set_state(state["rng_numpy"])
        random.setstate(state["rng_python"])
        for r, s in zip(_random_states(self.transform), state["rng_transforms"], strict=True):
            r.set_state(s)
        self.resumed_from = state["epoch"]
