"""The marginal (partial-label) loss against MONAI's DiceCELoss and by construction of what it ignores."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss

from cardiacseg.losses.partial import IGNORE_VALUE, MarginalDiceCELoss


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 4, 16, 16, generator=g), torch.randint(0, 4, (3, 1, 16, 16), generator=g).float()


def test_fully_labelled_equals_monai_dice_ce() -> None:
    logits, target = _batch()
    reference = DiceCELoss(to_onehot_y=True, softmax=True, squared_pred=True, batch=True)(logits, target)
    assert float(MarginalDiceCELoss(4)(logits, target)) == pytest.approx(float(reference), rel=1e-5)


def test_lv_myo_only_equals_monai_on_the_merged_classes() -> None:
    """With RV unlabelled, the loss is MONAI's DiceCE on three channels: log(p_BG + p_RV), LV, MYO."""
    logits, target = _batch(1)
    target[target == 3] = 0  # an LV/MYO-only annotation: the RV was not drawn
    probs = torch.softmax(logits, dim=1)
    merged = torch.stack([probs[:, 0] + probs[:, 3], probs[:, 1], probs[:, 2]], dim=1)
    # DiceCE with softmax on log-probabilities reproduces the merged probabilities exactly
    reference = DiceCELoss(to_onehot_y=True, softmax=True, squared_pred=True, batch=True)(
        merged.log(), target
    )
    got = MarginalDiceCELoss(4, labelled_classes=(1, 2))(logits, target)
    assert float(got) == pytest.approx(float(reference), rel=1e-5)


def test_unlabelled_structure_is_not_pushed_towards_background() -> None:
    """Moving probability between BG and the unlabelled RV on a background pixel changes nothing."""
    logits, target = _batch(2)
    target[target == 3] = 0
    loss = MarginalDiceCELoss(4, labelled_classes=(1, 2))
    moved = logits.clone()
    # swap BG and RV logits everywhere: p_BG + p_RV is unchanged, so is the loss
    moved[:, [0, 3]] = logits[:, [3, 0]]
    assert float(loss(moved, target)) == pytest.approx(float(loss(logits, target)), rel=1e-6)
    # the full loss does see the swap
    full = MarginalDiceCELoss(4)
    assert abs(float(full(moved, target)) - float(full(logits, target))) > 1e-3


def test_ignored_pixels_get_no_gradient_and_do_not_count() -> None:
    logits, target = _batch(3)
    target[:, :, :8] = IGNORE_VALUE  # the upper half was not annotated
    logits.requires_grad_(True)
    MarginalDiceCELoss(4)(logits, target).backward()
    assert logits.grad is not None
    assert float(logits.grad[:, :, :8].abs().max()) == 0.0 and float(logits.grad[:, :, 8:].abs().max()) > 0
    # equals the loss computed on the annotated half alone
    half_logits, half_target = logits.detach()[:, :, 8:], target[:, :, 8:]
    reference = DiceCELoss(to_onehot_y=True, softmax=True, squared_pred=True, batch=True)(
        half_logits, half_target
    )
    assert float(MarginalDiceCELoss(4)(logits.detach(), target)) == pytest.approx(float(reference), rel=1e-5)


def test_label_values_outside_the_labelled_classes_are_refused() -> None:
    logits, target = _batch(4)
    with pytest.raises(ValueError, match=r"label values \[3\]"):
        MarginalDiceCELoss(4, labelled_classes=(1, 2))(logits, target)
    with pytest.raises(ValueError, match="must lie in"):
        MarginalDiceCELoss(4, labelled_classes=(0, 1))
