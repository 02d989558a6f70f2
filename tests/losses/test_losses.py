from __future__ import annotations

import math

import pytest
import torch

from cardiacseg.losses import LOSSES, get_loss, get_scheduler


@pytest.mark.parametrize("name", LOSSES)
def test_perfect_prediction_scores_lower_than_a_wrong_one(name: str) -> None:
    target = torch.zeros(2, 1, 16, 16)
    target[:, :, 4:12, 4:12] = 1
    perfect = torch.nn.functional.one_hot(target[:, 0].long(), 4).permute(0, 3, 1, 2).float() * 20 - 10
    wrong = torch.roll(perfect, shifts=1, dims=1)
    loss = get_loss(name)
    assert float(loss(perfect, target)) < float(loss(wrong, target))


def test_cross_entropy_by_hand() -> None:
    logits = torch.zeros(1, 4, 1, 1)
    assert float(get_loss("ce")(logits, torch.zeros(1, 1, 1, 1))) == pytest.approx(math.log(4))


def test_schedules() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    cos = get_scheduler("cosine", opt, epochs=4)
    lrs = []
    for _ in range(4):
        opt.step()
        cos.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[1] == pytest.approx(0.1 * (1 + math.cos(math.pi * 2 / 4)) / 2)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    one = get_scheduler("one_cycle", opt, epochs=2, steps_per_epoch=5)
    seen = []
    for _ in range(10):
        opt.step()
        one.step()
        seen.append(opt.param_groups[0]["lr"])
    assert max(seen) == pytest.approx(0.1, rel=0.05) and seen[-1] < 0.01
    with pytest.raises(ValueError, match="unknown"):
        get_scheduler("step", opt, 3)
