"""Thin Ignite handlers: staged transfer (freeze, then unfreeze)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from cardiacseg.networks.weights import freeze, unfreeze

__all__ = ["StagedTransfer"]


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
