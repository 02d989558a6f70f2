"""Losses for partially labelled data: structures that were not contoured, and pixels to ignore.

A user's own data is often labelled in part: only the LV blood pool and myocardium (Sunnybrook, the 7T
study), or only some slices. Training must not read "not contoured" as "background". The marginal loss
(Shi G, Xiao L, Chen Y, Zhou SK, "Marginal loss and exclusion loss for partially supervised multi-organ
segmentation", Medical Image Analysis 2021;70:101979) merges the probabilities of the classes that were not
labelled into the background's before the loss: a pixel labelled background may be background *or* any
unlabelled structure, and the network is not pushed either way between those. Pixels with the ignore
value (and whole slices that were not contoured, which are best left out of the data) do not contribute.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["IGNORE_VALUE", "MarginalDiceCELoss"]

#: Label value of pixels that carry no annotation (excluded from the loss).
IGNORE_VALUE = 255


class MarginalDiceCELoss(nn.Module):
    """Dice + cross-entropy on the classes that were labelled, the others merged into background.

    With every class labelled and no ignored pixel it equals MONAI's ``DiceCELoss(to_onehot_y=True,
    softmax=True, squared_pred=True, batch=True)`` (the bundle's training loss; tested).

    Args:
        num_classes: channels of the network output (4: BG, LV, MYO, RV).
        labelled_classes: the foreground classes the labels contain (e.g. ``(1, 2)`` for LV and MYO);
            ``None``: all. Label values of other foreground classes are an error.
        ignore_value: label value of pixels excluded from the loss.
        lambda_dice: weight of the Dice term.
        lambda_ce: weight of the cross-entropy term.
        smooth: Dice smoothing (numerator and denominator), as MONAI's ``smooth_nr``/``smooth_dr``.

    Raises:
        ValueError: ``labelled_classes`` outside ``1..num_classes-1``.

    Example:
        >>> loss = MarginalDiceCELoss(4, labelled_classes=(1, 2))
        >>> logits, target = torch.zeros(2, 4, 8, 8), torch.zeros(2, 1, 8, 8)
        >>> float(loss(logits, target)) > 0
        True

    """

    def __init__(
        self,
        num_classes: int = 4,
        labelled_classes: Sequence[int] | None = None,
        ignore_value: int = IGNORE_VALUE,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        smooth: float = 1e-5,
    ) -> None:
        super().__init__()
        labelled = list(range(1, num_classes)) if labelled_classes is None else sorted(set(labelled_classes))
        if any(not 1 <= c < num_classes for c in labelled):
            raise ValueError(f"labelled_classes must lie in 1..{num_classes - 1}, got {labelled_classes}")
        self.num_classes = num_classes
        self.labelled = labelled
        self.unlabelled = [c for c in range(1, num_classes) if c not in labelled]
        self.ignore_value = ignore_value
        self.lambda_dice = lambda_dice
        self.lambda_ce = lambda_ce
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            logits: ``(B, C, *spatial)`` network output.
            target: ``(B, 1, *spatial)`` integer labels: 0 (background or an unlabelled structure), the
                labelled classes, or the ignore value.

        Returns:
            The scalar loss.

        Raises:
            ValueError: a label value that is neither 0, a labelled class nor the ignore value.

        """
        labels = target[:, 0].long()
        valid = labels != self.ignore_value
        allowed = torch.tensor([0, *self.labelled, self.ignore_value], device=labels.device)
        if not torch.isin(labels, allowed).all():
            bad = sorted(set(torch.unique(labels).tolist()) - set(allowed.tolist()))
            raise ValueError(
                f"label values {bad} are not labelled classes {self.labelled}, 0 or the ignore value "
                f"{self.ignore_value}"
            )
        probs = torch.softmax(logits.float(), dim=1)
        # merged channels: background (+ every unlabelled class), then the labelled classes
        background = probs[:, [0, *self.unlabelled]].sum(dim=1, keepdim=True)
        merged = torch.cat([background, probs[:, self.labelled]], dim=1)
        index = torch.zeros_like(labels)
        for i, c in enumerate(self.labelled, start=1):
            index[labels == c] = i
        onehot = torch.zeros_like(merged).scatter_(1, index.unsqueeze(1), 1.0)
        mask = valid.unsqueeze(1).to(merged.dtype)
        if self.lambda_ce:
            log_p = torch.log(merged.clamp_min(1e-12))
            nll = -(onehot * log_p).sum(dim=1)
            ce = (nll * valid).sum() / valid.sum().clamp_min(1)
        else:
            ce = logits.new_zeros(())
        # batch Dice with squared predictions, as DiceCELoss(squared_pred=True, batch=True)
        dims = [0, *range(2, merged.ndim)]
        p, g = merged * mask, onehot * mask
        intersection = (p * g).sum(dim=dims)
        denominator = (p * p).sum(dim=dims) + (g * g).sum(dim=dims)
        dice = 1.0 - (2.0 * intersection + self.smooth) / (denominator + self.smooth)
        return self.lambda_dice * dice.mean() + self.lambda_ce * ce
