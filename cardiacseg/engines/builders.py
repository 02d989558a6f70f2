"""Builders for a supervised 2D segmentation trainer and evaluator (MONAI Ignite workflows, no subclasses).

The bundle configs wire the same MONAI classes declaratively; these functions are the Python route for
users who train from a script or a notebook.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from ignite.handlers import ProgressBar
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import (
    CheckpointSaver,
    EarlyStopHandler,
    LrScheduleHandler,
    MeanDice,
    StatsHandler,
    ValidationHandler,
    from_engine,
    stopping_fn_from_metric,
)
from monai.inferers import SimpleInferer
from monai.transforms import AsDiscreted, Compose
from torch import nn
from torch.utils.data import DataLoader

from cardiacseg.handlers import first_loss
from cardiacseg.losses import get_loss, get_scheduler

__all__ = ["build_evaluator", "build_trainer"]


def build_evaluator(
    network: nn.Module,
    val_loader: DataLoader[Any],
    device: str | torch.device = "cpu",
    num_classes: int = 4,
    checkpoint_dir: str | None = None,
    extra_handlers: Sequence[Any] = (),
) -> SupervisedEvaluator:
    """Build a MONAI ``SupervisedEvaluator`` with mean foreground Dice (``val_mean_dice``) as key metric.

    Args:
        network: the network.
        val_loader: batches of ``{"image", "label"}``.
        device: torch device.
        num_classes: output channels (background included).
        checkpoint_dir: where to save ``model.pt`` at the best ``val_mean_dice`` (``None``: not saved).
        extra_handlers: further evaluation handlers.

    Returns:
        The evaluator.

    Example:
        >>> evaluator = build_evaluator(net, val_loader)  # doctest: +SKIP
        >>> evaluator.run(); evaluator.state.metrics["val_mean_dice"]  # doctest: +SKIP

    """
    handlers: list[Any] = [StatsHandler(iteration_log=False)]
    if checkpoint_dir is not None:
        handlers.append(
            CheckpointSaver(
                save_dir=checkpoint_dir,
                save_dict={"model": network},
                save_key_metric=True,
                key_metric_filename="model.pt",
            )
        )
    handlers += list(extra_handlers)
    return SupervisedEvaluator(
        device=torch.device(device),
        val_data_loader=val_loader,
        network=network,
        inferer=SimpleInferer(),
        postprocessing=Compose(
            [AsDiscreted(keys=["pred", "label"], argmax=[True, False], to_onehot=num_classes)]
        ),
        key_val_metric={
            "val_mean_dice": MeanDice(
                include_background=False, output_transform=from_engine(["pred", "label"])
            )
        },
        val_handlers=handlers,
    )


def build_trainer(
    network: nn.Module,
    train_loader: DataLoader[Any],
    evaluator: SupervisedEvaluator | None = None,
    epochs: int = 60,
    loss: str = "dice_ce",
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    schedule: str = "cosine",
    val_interval: int = 5,
    early_stop_patience: int | None = None,
    device: str | torch.device = "cpu",
    params: Any = None,
    extra_handlers: Sequence[Any] = (),
    progress: bool = True,
) -> SupervisedTrainer:
    """Build a MONAI ``SupervisedTrainer``: AdamW, a named loss and schedule, validation, early stopping.

    Args:
        network: the network.
        train_loader: batches of ``{"image", "label"}``.
        evaluator: run every ``val_interval`` epochs (e.g. from :func:`build_evaluator`).
        epochs: maximum epochs.
        loss: name for :func:`~cardiacseg.losses.get_loss`.
        learning_rate: peak learning rate.
        weight_decay: AdamW weight decay.
        schedule: name for :func:`~cardiacseg.losses.get_scheduler`; ``one_cycle`` steps per iteration.
        val_interval: epochs between validations.
        early_stop_patience: validations without a better ``val_mean_dice`` before stopping (``None``: off).
        device: torch device.
        params: parameters or parameter groups to optimise (default: all of ``network``; see
            :func:`~cardiacseg.networks.parameter_groups` for staged transfer).
        extra_handlers: further training handlers (e.g. :class:`~cardiacseg.handlers.ResumableCheckpoint`).
        progress: show a tqdm progress bar per epoch with the running loss.

    Returns:
        The trainer (``trainer.run()`` trains).

    Raises:
        ValueError: unknown loss or schedule name.

    Example:
        >>> evaluator = build_evaluator(net, val_loader)  # doctest: +SKIP
        >>> trainer = build_trainer(net, train_loader, evaluator, epochs=2)  # doctest: +SKIP
        >>> trainer.run()  # doctest: +SKIP

    """
    optimizer = torch.optim.AdamW(
        params if params is not None else network.parameters(), lr=learning_rate, weight_decay=weight_decay
    )
    per_step = schedule == "one_cycle"
    scheduler = get_scheduler(schedule, optimizer, epochs, steps_per_epoch=len(train_loader))
    handlers: list[Any] = [
        LrScheduleHandler(lr_scheduler=scheduler, print_lr=False, epoch_level=not per_step),  # type: ignore[arg-type]
        StatsHandler(tag_name="train_loss", output_transform=from_engine(["loss"], first=True)),
    ]
    if evaluator is not None:
        handlers.append(ValidationHandler(validator=evaluator, interval=val_interval, epoch_level=True))
    handlers += list(extra_handlers)
    trainer = SupervisedTrainer(
        device=torch.device(device),
        max_epochs=epochs,
        train_data_loader=train_loader,
        network=network,
        optimizer=optimizer,
        loss_function=get_loss(loss),
        inferer=SimpleInferer(),
        train_handlers=handlers,
    )
    if progress:
        ProgressBar(persist=False).attach(
            trainer, output_transform=lambda out: {"loss": float(first_loss(out))}
        )
    if evaluator is not None and early_stop_patience is not None:
        EarlyStopHandler(
            patience=early_stop_patience,
            score_function=stopping_fn_from_metric("val_mean_dice"),
            trainer=trainer,
            epoch_level=True,
        ).attach(evaluator)
    return trainer
