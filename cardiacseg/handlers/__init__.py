"""Thin Ignite handlers: exact resume, staged transfer (freeze, then unfreeze), optional MLflow tracking.

Under distributed training (DDP) only rank 0 writes checkpoints and histories; wrap printing handlers
(progress bars, loss logs) in :class:`RankZero` so that the other ranks stay silent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from cardiacseg.config import as_bool
from cardiacseg.networks.weights import freeze, unfreeze

__all__ = [
    "RankZero",
    "ResumableCheckpoint",
    "StagedTransfer",
    "ValidationHistory",
    "as_bool",
    "first_loss",
    "is_rank_zero",
    "mlflow_handler",
    "mlflow_run_name",
]


logger = logging.getLogger(__name__)


def is_rank_zero() -> bool:
    """Whether this process is rank 0 of a ``torch.distributed`` group, or not distributed at all.

    Returns:
        ``True`` outside distributed training and on rank 0.

    Example:
        >>> is_rank_zero()
        True

    """
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class RankZero:
    """Attach a handler on rank 0 only (progress bars, loss printing under DDP); elsewhere do nothing.

    Args:
        handler: any object with ``attach(engine)`` (e.g. Ignite's ``ProgressBar``, MONAI's
            ``StatsHandler``).

    Example:
        >>> from ignite.handlers import ProgressBar
        >>> RankZero(ProgressBar(persist=False)).attach(trainer)  # doctest: +SKIP

    """

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.attached = False

    def attach(self, engine: Any) -> None:
        """Attach the wrapped handler when this process is rank 0 (or not distributed).

        Args:
            engine: the Ignite engine.

        """
        if is_rank_zero():
            self.handler.attach(engine)
            self.attached = True


class StagedTransfer:
    """Freeze parameter groups at the start of training and unfreeze them after ``unfreeze_after_epochs``.

    The 7T transfer study's schedule: stage 1 trains with the encoder frozen, stage 2 fine-tunes everything
    (its lower learning rate is set by the learning-rate scheduler, e.g. ``MultiStepLR``). The moment the
    groups are unfrozen is logged (``cardiacseg.handlers`` logger) and, when an MLflow handler with an open
    run is given (or a fluent MLflow run is active), recorded as the metric ``encoder_unfrozen_epoch`` (the
    first epoch trained unfrozen) and the tag of the same name. After a resume the freezing is decided
    from the epoch number, so a run stopped in stage 1 resumes frozen.

    Args:
        network: the model.
        groups: parameter groups to freeze (see :func:`cardiacseg.networks.weights.parameter_groups`);
            empty: nothing is frozen (e.g. training from random weights).
        unfreeze_after_epochs: epochs of stage 1 (0: no freezing).
        mlflow: MONAI's ``MLFlowHandler`` of the run (``None``: no MLflow record).

    Example:
        >>> StagedTransfer(net, ["encoder"], 10).attach(trainer)  # doctest: +SKIP

    """

    def __init__(
        self,
        network: nn.Module,
        groups: Sequence[str] = ("encoder",),
        unfreeze_after_epochs: int = 10,
        mlflow: Any = None,
    ):
        self.network = network
        self.groups = list(groups)
        self.unfreeze_after_epochs = int(unfreeze_after_epochs)
        self.mlflow = mlflow
        self.unfrozen_at: int | None = None
        self._announced = False

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
        if not self.groups or self.unfreeze_after_epochs <= 0:
            return
        if epoch <= self.unfreeze_after_epochs:
            n = freeze(self.network, self.groups)
            if not self._announced and is_rank_zero():
                logger.info(
                    f"epoch {epoch}: {'+'.join(self.groups)} frozen ({n} parameters) through epoch "
                    f"{self.unfreeze_after_epochs}"
                )
            self._announced = True
            return
        n = unfreeze(self.network, self.groups)
        if epoch == self.unfreeze_after_epochs + 1:
            self.unfrozen_at = epoch
            if is_rank_zero():
                logger.info(
                    f"epoch {epoch}: {'+'.join(self.groups)} unfrozen ({n} parameters trainable again)"
                )
                self._record(epoch)

    def _record(self, epoch: int) -> None:
        run = getattr(self.mlflow, "cur_run", None)
        if run is not None:
            client = self.mlflow.client
            client.log_metric(run.info.run_id, "encoder_unfrozen_epoch", float(epoch), step=epoch)
            client.set_tag(run.info.run_id, "encoder_unfrozen_epoch", str(epoch))
            return
        try:
            import mlflow
        except ImportError:
            return
        if mlflow.active_run() is not None:
            mlflow.log_metric("encoder_unfrozen_epoch", float(epoch), step=epoch)
            mlflow.set_tag("encoder_unfrozen_epoch", str(epoch))


class ValidationHistory:
    """Record each epoch's validation metrics and the number of training images seen, in a JSON file.

    Attach to the trainer after the ``ValidationHandler`` (it reads the evaluator's metrics at the end of
    every epoch that was validated). The file ``{"epochs": [{"epoch", "iteration", "images_seen",
    "learning_rate", <metric>: value, ...}]}`` (the learning rate the epoch trained with) is rewritten
    atomically each time; on a resumed run the records from before the resume are kept and any of the
    repeated epoch are replaced, so the file reads as one uninterrupted run (learning curves against
    images seen, the 7T study's Fig. 6).

    Args:
        path: the JSON file.
        evaluator: the validation evaluator.
        n_images: training images per epoch (default: the length of the trainer's data loader's dataset).

    Example:
        >>> ValidationHistory("run/history.json", evaluator).attach(trainer)  # doctest: +SKIP

    """

    def __init__(self, path: str, evaluator: Any, n_images: int | None = None) -> None:
        from pathlib import Path

        self.path = Path(path)
        self.evaluator = evaluator
        self.n_images = n_images
        self._lr: float | None = None

    def attach(self, engine: Any) -> None:
        """Register with the trainer.

        Args:
            engine: the Ignite trainer.

        """
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self._remember_lr)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.record)

    def _remember_lr(self, engine: Any) -> None:
        optimizer = getattr(engine, "optimizer", None)
        self._lr = float(optimizer.param_groups[0]["lr"]) if optimizer is not None else None

    def read(self) -> list[dict[str, Any]]:
        """Return the records written so far (empty when there is no file).

        Returns:
            One dictionary per validated epoch, in epoch order.

        """
        import json

        if not self.path.exists():
            return []
        records: list[dict[str, Any]] = json.loads(self.path.read_text()).get("epochs", [])
        return records

    def record(self, engine: Any) -> None:
        """Append this epoch's record (only after a validation of this epoch; rank 0 only).

        Args:
            engine: the trainer.

        """
        import json

        from cardiacseg.utils.atomic import atomic_write_text

        if not is_rank_zero():
            return
        epoch = int(engine.state.epoch)
        if getattr(self.evaluator.state, "epoch", None) != epoch or not self.evaluator.state.metrics:
            return
        n = self.n_images
        if n is None:
            loader = engine.data_loader
            n = len(loader.dataset) if hasattr(loader, "dataset") else 0
        entry: dict[str, Any] = {
            "epoch": epoch,
            "iteration": int(engine.state.iteration),
            "images_seen": int(epoch * n),
            "learning_rate": self._lr,
        }
        for key, value in self.evaluator.state.metrics.items():
            try:
                entry[key] = float(value)
            except (TypeError, ValueError):
                continue
        records = [r for r in self.read() if int(r["epoch"]) < epoch] + [entry]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({"epochs": records}, indent=1) + "\n", overwrite=True)


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
        """Write the checkpoint (atomically; on rank 0 only under distributed training).

        Args:
            engine: the trainer.

        """
        import random

        import torch

        from cardiacseg.utils.atomic import atomic_write

        if not is_rank_zero():
            return
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
