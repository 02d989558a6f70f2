"""Slice-range classification metrics against hand-computed values; figures written from synthetic inputs."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.metrics import compute_roc_auc

from cardiacseg.metrics.classification import (
    accuracy,
    classification_metrics,
    confusion_matrix,
    one_vs_rest_auc,
    per_class_scores,
    soft_accuracy,
)
from cardiacseg.metrics.classification_figures import (
    grad_cam_maps,
    plot_confusion_matrix,
    plot_grad_cam,
    plot_tsne,
)
from cardiacseg.networks import get_network

# 10 slices: truth and prediction
TRUTH = [0, 0, 1, 1, 1, 1, 1, 2, 2, 2]
PRED = [0, 1, 1, 1, 0, 1, 2, 2, 1, 2]


def test_confusion_precision_recall_f1_accuracy_by_hand() -> None:
    m = confusion_matrix(PRED, TRUTH)
    # truth 0: pred 0,1 | truth 1: pred 1,1,0,1,2 | truth 2: pred 2,1,2
    assert m.tolist() == [[1, 1, 0], [1, 3, 1], [0, 1, 2]]
    s = per_class_scores(torch.tensor(PRED), np.array(TRUTH))
    # class 0: TP 1, FP 1 (a 1 predicted 0), FN 1 -> P 1/2, R 1/2, F1 1/2
    # class 1: TP 3, FP 2 (truth 0 and 2 predicted 1), FN 2 -> P 3/5, R 3/5
    # class 2: TP 2, FP 1, FN 1 -> P 2/3, R 2/3
    np.testing.assert_allclose(s["precision"], [1 / 2, 3 / 5, 2 / 3])
    np.testing.assert_allclose(s["recall"], [1 / 2, 3 / 5, 2 / 3])
    np.testing.assert_allclose(s["f1"], [1 / 2, 3 / 5, 2 / 3])
    assert s["support"].tolist() == [2, 5, 3]
    assert accuracy(PRED, TRUTH) == 0.6


def test_undefined_precision_and_recall_are_nan_and_f1_zero_when_both_zero() -> None:
    s = per_class_scores([1, 1, 1], [0, 1, 1])
    assert math.isnan(s["precision"][0]) and s["recall"][0] == 0.0 and math.isnan(s["f1"][0])
    assert math.isnan(s["recall"][2]) and math.isnan(s["precision"][2])
    s = per_class_scores([1, 0], [0, 1])
    assert s["precision"][0] == 0 and s["recall"][0] == 0 and s["f1"][0] == 0.0
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([3], [0])
    with pytest.raises(ValueError, match="differ"):
        accuracy([0, 1], [0])


def test_soft_accuracy_counts_adjacent_slices_of_the_same_stack_only() -> None:
    # stack "a" (slices 0..4): OAP IN IN IN OBS; stack "b" (slices 0..2): IN IN OBS, given in shuffled order
    ids = ["a"] * 5 + ["b"] * 3
    pos = [0, 1, 2, 3, 4, 2, 0, 1]
    truth = [0, 1, 1, 1, 2, 2, 1, 1]
    pred = [
        1,  # a0: neighbour a1 is IN -> soft-correct
        0,  # a1: neighbour a0 is OAP -> soft-correct
        0,  # a2: neighbours IN, IN -> wrong
        2,  # a3: neighbour a4 is OBS -> soft-correct
        1,  # a4: neighbour a3 is IN -> soft-correct
        1,  # b2: neighbour b1 is IN -> soft-correct
        2,  # b0: neighbour b1 is IN, b(-1) absent; a1 (other stack) must not count -> wrong
        1,  # b1: exact
    ]
    assert soft_accuracy(pred, truth, ids, pos) == 6 / 8
    assert accuracy(pred, truth) == 1 / 8
    tuples = [("p1", "ED")] * 5 + [("p1", "ES")] * 3  # (patient, phase) stacks
    assert soft_accuracy(pred, truth, tuples, pos) == 6 / 8
    with pytest.raises(ValueError, match="twice"):
        soft_accuracy([0, 0], [0, 0], ["a", "a"], [1, 1])
    assert soft_accuracy(PRED, TRUTH, np.array(["s"] * 10), list(range(10))) >= accuracy(PRED, TRUTH)


def _rank_auc(scores: list[float], positive: list[bool]) -> float:
    """Mann-Whitney statistic: P(score of a positive > score of a negative), ties counting one half."""
    pos = [s for s, p in zip(scores, positive, strict=True) if p]
    neg = [s for s, p in zip(scores, positive, strict=True) if not p]
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def test_auc_is_the_class_count_weighted_one_vs_rest_auc() -> None:
    rng = np.random.default_rng(0)
    truth = [0, 0, 1, 1, 1, 1, 1, 2, 2, 2]
    probs = rng.dirichlet([1, 1, 1], size=len(truth))
    probs[3] = probs[4]  # a tie
    weighted, per_class = one_vs_rest_auc(probs, truth)
    ref = [_rank_auc(probs[:, k].tolist(), [t == k for t in truth]) for k in range(3)]
    np.testing.assert_allclose(per_class, ref)
    np.testing.assert_allclose(weighted, (2 * ref[0] + 5 * ref[1] + 3 * ref[2]) / 10)
    # MONAI's "micro" is a different quantity (one pooled binary problem), not the paper's
    onehot = torch.nn.functional.one_hot(torch.tensor(truth), 3).double()
    micro = float(compute_roc_auc(torch.as_tensor(probs), onehot, average="micro"))  # type: ignore[arg-type]
    pooled = _rank_auc(probs.flatten().tolist(), onehot.flatten().bool().tolist())
    assert micro == pytest.approx(pooled) and micro != pytest.approx(weighted)


def test_hand_computed_small_auc_and_absent_class() -> None:
    # class 0 scores: positives 0.9, 0.4; negatives 0.4, 0.1 -> pairs: 1, 1, 0.5, 1 -> 3.5/4
    probs = [[0.9, 0.05, 0.05], [0.4, 0.5, 0.1], [0.4, 0.3, 0.3], [0.1, 0.8, 0.1]]
    truth = [0, 0, 1, 1]
    weighted, per_class = one_vs_rest_auc(probs, truth)
    assert per_class[0] == pytest.approx(3.5 / 4)
    assert math.isnan(per_class[2])  # OBS absent: no AUC, no weight
    # class 1 scores: positives 0.3, 0.8; negatives 0.05, 0.5 -> 1, 0, 1, 1 -> 3/4
    assert per_class[1] == pytest.approx(3 / 4)
    assert weighted == pytest.approx((2 * 3.5 / 4 + 2 * 3 / 4) / 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no MONAI warning leaks out
        one_vs_rest_auc(probs, truth)


def test_classification_metrics_bundle_and_dict() -> None:
    probs = np.eye(3)[PRED] * 0.8 + 0.1
    m = classification_metrics(probs, TRUTH, ["s"] * 10, list(range(10)))
    assert m.accuracy == 0.6 and m.n == 10
    assert m.confusion == ((1, 1, 0), (1, 3, 1), (0, 1, 2))
    d = m.to_dict()
    assert d["f1_in"] == pytest.approx(3 / 5) and d["support_obs"] == 3
    assert set(d) >= {"accuracy", "soft_accuracy", "auc_weighted", "precision_oap", "recall_obs", "auc_in"}
    override = classification_metrics(probs, TRUTH, pred=TRUTH)
    assert override.accuracy == 1.0 and math.isnan(override.soft_accuracy)
    assert override.to_dict()["soft_accuracy"] is None
    with pytest.raises(ValueError, match="class names"):
        classification_metrics(probs, TRUTH, class_names=("a", "b"))


PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # t-SNE, ~25 s on 2 cores: make test-slow
def test_confusion_matrix_and_tsne_png(tmp_path: Path) -> None:
    out = plot_confusion_matrix([[5, 1, 0], [2, 30, 1], [0, 3, 6]], tmp_path / "cm.png")
    assert out.read_bytes()[:8] == PNG
    with pytest.raises(FileExistsError):
        plot_confusion_matrix(np.eye(3, dtype=int), out)
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        plot_confusion_matrix(np.eye(2, dtype=int), tmp_path / "bad.png")
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 10)
    feats = rng.normal(size=(30, 16)) + y[:, None] * 3.0
    assert plot_tsne(torch.as_tensor(feats), y, tmp_path / "tsne.png").read_bytes()[:8] == PNG


@pytest.mark.parametrize("in_channels", [1, 3])
def test_grad_cam_maps_and_overlay_png(tmp_path: Path, in_channels: int) -> None:
    torch.manual_seed(0)
    net = get_network(
        "slice_classifier", 2, in_channels, 3, backbone="unet_encoder", mode="feature_extraction"
    )
    x = torch.randn(3, in_channels, 48, 48)
    maps = grad_cam_maps(net, x)  # frozen backbone: still has gradients w.r.t. its activations
    assert maps.shape == (3, 48, 48) and maps.min() >= 0 and maps.max() <= 1 + 1e-6
    assert net.training  # state restored
    out = plot_grad_cam(net, x, tmp_path / "cam.png", truth=[0, 1, 2])
    assert out.read_bytes()[:8] == PNG


def test_tsne_without_scikit_learn_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)  # import fails as if not installed
    with pytest.raises(ImportError, match="scikit-learn"):
        plot_tsne(np.zeros((5, 2)), np.zeros(5), tmp_path / "t.png")
