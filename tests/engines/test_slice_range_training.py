"""Slice-range training engines (cardiacseg.engines.slice_range): sampler, augmentation, trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.utils import set_determinism
from torch import nn

from cardiacseg.engines.slice_range import (
    evaluate_slice_range,
    oversampling_weights,
    predict_probabilities,
    save_half_state_dict,
    slice_range_evaluator,
    slice_range_train_transforms,
    slice_range_trainer,
    slice_range_val_transforms,
    zscore_items,
)


def _blobs(n_per_class: tuple[int, int, int], seed: int = 0) -> list[dict[str, object]]:
    """8-d points around three well-separated centres; the label is the centre (independent truth)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 8, dtype=np.float32) * 4
    items = []
    for k, n in enumerate(n_per_class):
        for _ in range(n):
            x = centres[k] + rng.normal(0, 0.5, 8).astype(np.float32)
            items.append({"image": x, "label": k, "patient": f"p{k}", "phase": "ED", "slice": len(items)})
    return items


def test_oversampling_weights_favour_rare_classes() -> None:
    assert oversampling_weights([0, 1, 2, 1]).tolist() == [6.0, 1.0, 6.0, 1.0]
    assert oversampling_weights([0, 1], oversample=2.0).tolist() == [2.0, 1.0]


def test_trainer_draws_rare_classes_about_six_times_as_often() -> None:
    items = _blobs((10, 200, 10))
    net = nn.Linear(8, 3)
    trainer = slice_range_trainer(net, items, max_epochs=1, transforms=slice_range_val_transforms())
    assert isinstance(trainer, SupervisedTrainer)
    drawn = [int(items[i]["label"]) for i in trainer.data_loader.sampler]  # type: ignore[attr-defined, call-overload]
    counts = np.bincount(drawn, minlength=3)
    assert len(drawn) == len(items)
    # expected share of the rare classes: 2*60 / (2*60 + 200) = 0.375 (vs 0.09 without oversampling)
    assert 0.25 < (counts[0] + counts[2]) / len(drawn) < 0.5


def test_trainer_learns_separable_classes_and_evaluator_keeps_order() -> None:
    set_determinism(0)
    train, test = _blobs((20, 60, 20), seed=1), _blobs((5, 15, 5), seed=2)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    slice_range_trainer(
        net, train, max_epochs=15, lr=1e-2, optimizer="sgd", transforms=slice_range_val_transforms()
    ).run()
    set_determinism(None)
    probs = predict_probabilities(net, test)
    assert probs.shape == (25, 3)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    truth = np.array([it["label"] for it in test])
    assert (probs.argmax(1) == truth).mean() >= 0.95
    ev = slice_range_evaluator(net, test, batch_size=7)
    assert isinstance(ev, SupervisedEvaluator)
    ev.run()
    assert np.array_equal(ev.state.labels, truth)  # type: ignore[attr-defined]
    metrics = evaluate_slice_range(net, test)
    assert metrics["accuracy"] == pytest.approx((probs.argmax(1) == truth).mean())


def test_trainer_rejects_frozen_network_and_bad_optimizer() -> None:
    items = _blobs((2, 2, 2))
    frozen = nn.Linear(8, 3).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        slice_range_trainer(frozen, items)
    with pytest.raises(ValueError, match="optimizer"):
        slice_range_trainer(nn.Linear(8, 3), items, optimizer="rmsprop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        slice_range_trainer(nn.Linear(8, 3), [])


def test_train_transforms_rotate_within_45_degrees() -> None:
    img = np.zeros((1, 33, 33), np.float32)
    img[0, 16, 16:] = 1.0  # a ray from the centre along +y
    t = slice_range_train_transforms(45.0)
    for seed in range(5):
        t.set_random_state(seed)
        out = t({"image": img, "label": 1})["image"]
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (1, 33, 33)
        ys, xs = np.nonzero(out[0].numpy() > 0.3)
        far = (ys - 16) ** 2 + (xs - 16) ** 2 > 36
        angle = np.degrees(np.arctan2(np.abs(ys[far] - 16), xs[far] - 16))
        assert angle.max() <= 45 + 8  # the ray stays within +-45 degrees (plus its pixel width)
    none = slice_range_train_transforms(0.0)({"image": img, "label": 1})["image"]
    assert torch.equal(none, torch.from_numpy(img))


def test_zscore_items_and_half_state_dict(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    items = [{"image": rng.normal(100, 20, (1, 16, 16)).astype(np.float32), "label": 1}]
    z = zscore_items(items)[0]["image"]
    assert abs(float(z.mean())) < 0.1 and 0.8 < float(z.std()) < 1.2
    assert float(items[0]["image"].mean()) > 50  # the input is not modified
    net = nn.Linear(4, 3)
    path = save_half_state_dict(net, tmp_path / "m" / "model.pt")
    sd = torch.load(path, weights_only=True)
    assert all(v.dtype == torch.float16 for v in sd.values())
    other = nn.Linear(4, 3)
    other.load_state_dict(sd)
    assert torch.allclose(other.weight, net.weight, atol=1e-3)
