"""Segmentation losses by name (MONAI's implementations) and learning-rate schedules by name."""

from __future__ import annotations

from typing import Any

import torch
from monai.losses import DiceCELoss, FocalLoss, GeneralizedDiceLoss
from torch import nn

__all__ = ["LOSSES", "SCHEDULES", "get_loss", "get_scheduler"]

LOSSES = ("ce", "generalized_dice", "focal", "dice_ce")
SCHEDULES = ("one_cycle", "cosine", "poly")


class _CrossEntropy(nn.Module):
    """Cross-entropy on logits ``(B, C, ...)`` against integer labels ``(B, 1, ...)``."""

    def __init__(self, weight: torch.Tensor | None = None):
        super().__init__()
        self.loss = nn.CrossEntropyLoss(weight=weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.loss(logits, target[:, 0].long())
        return out


def get_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build a loss taking logits ``(B, C, ...)`` and integer labels ``(B, 1, ...)``.

    Args:
        name: ``"ce"``, ``"generalized_dice"``, ``"focal"`` or ``"dice_ce"``.
        kwargs: passed to the MONAI loss (e.g. ``lambda_dice``, ``gamma``).

    Returns:
        The loss module.

    Raises:
        ValueError: unknown name.

    Example:
        >>> loss = get_loss("dice_ce")
        >>> float(loss(torch.zeros(1, 4, 8, 8), torch.zeros(1, 1, 8, 8))) > 0
        True

    """
    if name == "ce":
        return _CrossEntropy(**kwargs)
    if name == "generalized_dice":
        return GeneralizedDiceLoss(to_onehot_y=True, softmax=True, **kwargs)
    if name == "focal":
        return FocalLoss(to_onehot_y=True, use_softmax=True, **kwargs)
    if name == "dice_ce":
        return DiceCELoss(to_onehot_y=True, softmax=True, **kwargs)
    raise ValueError(f"unknown loss {name!r}; choose from {LOSSES}")


def get_scheduler(
    name: str, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int = 1, **kwargs: Any
) -> torch.optim.lr_scheduler.LRScheduler:
    """Build a learning-rate schedule, stepped per epoch (``cosine``, ``poly``) or per step (``one_cycle``).

    Args:
        name: ``"one_cycle"``, ``"cosine"`` or ``"poly"`` (nnU-Net's ``(1 - epoch / epochs) ** 0.9``).
        optimizer: the optimizer (its current learning rate is the peak / initial one).
        epochs: training length.
        steps_per_epoch: iterations per epoch (``one_cycle`` only).
        kwargs: passed to the torch scheduler.

    Returns:
        The scheduler.

    Raises:
        ValueError: unknown name.

    Example:
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
        >>> sched = get_scheduler("poly", opt, epochs=10)
        >>> for _ in range(5):
        ...     opt.step(); sched.step()
        >>> round(opt.param_groups[0]["lr"], 6) == round(0.01 * 0.5**0.9, 6)
        True

    """
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, **kwargs)
    if name == "poly":
        return torch.optim.lr_scheduler.PolynomialLR(
            optimizer, total_iters=epochs, power=kwargs.pop("power", 0.9), **kwargs
        )
    if name == "one_cycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, epochs=epochs, steps_per_epoch=steps_per_epoch, **kwargs
        )
    raise ValueError(f"unknown schedule {name!r}; choose from {SCHEDULES}")
