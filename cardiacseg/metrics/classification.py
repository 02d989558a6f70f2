"""Slice-range classification metrics, framework-free (numpy/torch; MONAI's ROC AUC).

Confusion matrix, per-class precision / recall / F1, accuracy, soft accuracy and the class-count-weighted
one-vs-rest AUC.

Definitions from the slice-range paper (transfer learning for cardiac short-axis slice-range
classification, ``../shared/papers/slice-range.txt``, section "Evaluation"):

* per-class scores are one-vs-rest ("regrouping the classes into OAP and non-OAP ..."); F1 is
  ``2 precision recall / (precision + recall)``;
* the paper's "micro-averaged AUC" is "the weighted average of these [one-vs-rest] AUC scores, based on the
  number of images in each class". That is MONAI's ``compute_roc_auc(average="weighted")`` (and
  scikit-learn's ``roc_auc_score(average="weighted", multi_class="ovr")``), *not* MONAI's
  ``average="micro"``, which pools every element of the one-hot matrix into one binary problem. It is
  computed here with MONAI's ``"weighted"`` and reported as ``auc_weighted``;
* soft accuracy: a prediction counts as correct when it equals the class of its slice or of either
  adjacent slice of the same stack (so it needs each sample's stack and position in the stack).

Inputs are 1D class indices ``(N,)`` and probabilities ``(N, K)`` as numpy arrays, torch tensors or
sequences. Classes are ``0..K-1`` (OAP 0, IN 1, OBS 2 for slice range).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch

from cardiacseg.enums import SliceRange

#: Class names in label order (OAP, IN, OBS).
_CLASS_NAMES = tuple(c.name for c in SliceRange)

__all__ = [
    "ClassificationMetrics",
    "accuracy",
    "classification_metrics",
    "confusion_matrix",
    "one_vs_rest_auc",
    "per_class_scores",
    "soft_accuracy",
]

_ArrayLike = npt.ArrayLike | torch.Tensor


def _labels(x: _ArrayLike, name: str) -> npt.NDArray[np.int64]:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1D class indices (N,), got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name} must hold integer class indices")
    return arr.astype(np.int64)


def _pair(pred: _ArrayLike, target: _ArrayLike) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    p, t = _labels(pred, "pred"), _labels(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and target {t.shape} differ in length")
    return p, t


def confusion_matrix(pred: _ArrayLike, target: _ArrayLike, num_classes: int = 3) -> npt.NDArray[np.int64]:
    """Confusion matrix with the truth in rows and the prediction in columns (scikit-learn's layout).

    Args:
        pred: predicted classes ``(N,)``.
        target: true classes ``(N,)``.
        num_classes: ``K``.

    Returns:
        ``(K, K)`` counts; ``m[i, j]`` = samples of class ``i`` predicted as ``j``.

    Raises:
        ValueError: shapes differ, or a class outside ``0..K-1``.

    Example:
        >>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2]).tolist()
        [[1, 0, 0], [0, 1, 0], [0, 1, 1]]

    """
    p, t = _pair(pred, target)
    for arr, name in ((p, "pred"), (t, "target")):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(
                f"{name} holds classes outside 0..{num_classes - 1}: {sorted(set(arr.tolist()))}"
            )
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def per_class_scores(
    pred: _ArrayLike, target: _ArrayLike, num_classes: int = 3
) -> dict[str, npt.NDArray[np.float64]]:
    """One-vs-rest precision, recall and F1 of every class.

    ``precision = TP / (TP + FP)`` (``nan`` when the class is never predicted), ``recall = TP / (TP + FN)``
    (``nan`` when the class never occurs), ``F1 = 2 P R / (P + R)`` (0 when ``P + R = 0``, ``nan`` when
    either is ``nan``).

    Args:
        pred: predicted classes ``(N,)``.
        target: true classes ``(N,)``.
        num_classes: ``K``.

    Returns:
        ``{"precision": (K,), "recall": (K,), "f1": (K,), "support": (K,)}`` (support: true samples per
        class, as float).

    Example:
        >>> s = per_class_scores([0, 1, 1, 2], [0, 1, 2, 2])
        >>> s["precision"].tolist(), s["recall"].tolist()
        ([1.0, 0.5, 1.0], [1.0, 1.0, 0.5])

    """
    m = confusion_matrix(pred, target, num_classes).astype(np.float64)
    tp = np.diag(m)
    predicted, support = m.sum(0), m.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / np.where(predicted > 0, predicted, 1), np.nan)
        recall = np.where(support > 0, tp / np.where(support > 0, support, 1), np.nan)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
    f1 = np.where(np.isnan(precision) | np.isnan(recall), np.nan, f1)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def accuracy(pred: _ArrayLike, target: _ArrayLike) -> float:
    """Fraction of samples predicted correctly (``nan`` for no samples).

    Args:
        pred: predicted classes ``(N,)``.
        target: true classes ``(N,)``.

    Returns:
        The accuracy.

    Example:
        >>> accuracy([0, 1, 1, 2], [0, 1, 2, 2])
        0.75

    """
    p, t = _pair(pred, target)
    return float("nan") if p.size == 0 else float((p == t).mean())


def soft_accuracy(
    pred: _ArrayLike,
    target: _ArrayLike,
    stack_ids: Sequence[Hashable] | npt.ArrayLike,
    slice_index: _ArrayLike,
) -> float:
    """Compute the paper's soft accuracy: a prediction equal to its slice's class or an adjacent slice's.

    Adjacent: position +-1 in the same stack.

    A stack is one (patient, phase) short-axis stack; its slices need not all be present (a neighbour that
    is absent from the samples does not count).

    Args:
        pred: predicted classes ``(N,)``.
        target: true classes ``(N,)``.
        stack_ids: stack of each sample ``(N,)`` (any hashable, e.g. ``"patient001/ED"``).
        slice_index: position of each sample in its stack ``(N,)`` (slice index; the direction does not
            matter).

    Returns:
        The soft accuracy (``nan`` for no samples).

    Raises:
        ValueError: lengths differ, or a (stack, slice) pair occurs twice.

    Example:
        >>> # one stack OAP IN IN OBS, predicted IN IN IN IN: slice 0 and 3 border an IN slice
        >>> soft_accuracy([1, 1, 1, 1], [0, 1, 1, 2], ["a"] * 4, [0, 1, 2, 3])
        1.0
        >>> soft_accuracy([2, 1, 1, 0], [0, 1, 1, 2], ["a"] * 4, [0, 1, 2, 3])
        0.5

    """
    p, t = _pair(pred, target)
    pos = _labels(slice_index, "slice_index")
    ids: list[Any] = (
        stack_ids.tolist() if isinstance(stack_ids, np.ndarray) else list(cast(Iterable[Any], stack_ids))
    )
    if not len(ids) == len(pos) == len(p):
        raise ValueError(f"{len(p)} predictions, {len(ids)} stack ids and {len(pos)} slice indices")
    truth: dict[tuple[Any, int], int] = {}
    for s, z, c in zip(ids, pos.tolist(), t.tolist(), strict=True):
        if (s, z) in truth:
            raise ValueError(f"slice {z} of stack {s!r} occurs twice")
        truth[(s, z)] = c
    if not truth:
        return float("nan")
    ok = 0
    for s, z, c in zip(ids, pos.tolist(), p.tolist(), strict=True):
        ok += c in (truth[(s, z)], truth.get((s, z - 1)), truth.get((s, z + 1)))
    return ok / len(p)


def _probabilities(probs: _ArrayLike) -> torch.Tensor:
    x = probs.detach().cpu() if isinstance(probs, torch.Tensor) else torch.as_tensor(np.asarray(probs))
    if x.ndim != 2:
        raise ValueError(f"probabilities must be (N, K), got shape {tuple(x.shape)}")
    return x.double()


def one_vs_rest_auc(probs: _ArrayLike, target: _ArrayLike) -> tuple[float, npt.NDArray[np.float64]]:
    """One-vs-rest ROC AUC per class and their class-count-weighted mean (the paper's "micro-averaged AUC").

    Computed with MONAI's :func:`monai.metrics.compute_roc_auc` (``average="none"`` and ``"weighted"``; see
    the module docstring for why ``"weighted"``). A class absent from ``target`` (or present in every
    sample) has AUC ``nan`` and weight 0 (it is left out of the mean).

    Args:
        probs: class scores ``(N, K)`` (softmax probabilities or logits: only their order matters).
        target: true classes ``(N,)``.

    Returns:
        ``(weighted AUC, per-class AUC (K,))``.

    Raises:
        ValueError: shapes that do not fit.

    Example:
        >>> p = [[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.2, 0.7], [0.2, 0.7, 0.1]]
        >>> auc, per_class = one_vs_rest_auc(p, [0, 1, 2, 2])
        >>> per_class.tolist(), round(auc, 4)
        ([1.0, 0.6666666666666666, 0.75], 0.7917)

    """
    from monai.metrics import compute_roc_auc

    x = _probabilities(probs)
    t = _labels(target, "target")
    if x.shape[0] != t.shape[0]:
        raise ValueError(f"{x.shape[0]} probability rows for {t.shape[0]} targets")
    k = x.shape[1]
    onehot = torch.nn.functional.one_hot(torch.as_tensor(t), k).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class never (or always) present: nan, said above
        per_class = np.asarray(compute_roc_auc(x, onehot, average="none"), dtype=np.float64)
    support = onehot.sum(0).numpy()
    valid = ~np.isnan(per_class) & (support > 0)
    if not valid.any():
        return float("nan"), per_class
    if valid.all():
        weighted = float(compute_roc_auc(x, onehot, average="weighted"))  # type: ignore[arg-type]
    else:  # MONAI's weighted mean would propagate the nan of an absent class
        weighted = float(np.average(per_class[valid], weights=support[valid]))
    return weighted, per_class


@dataclass(frozen=True)
class ClassificationMetrics:
    """The slice-range paper's evaluation of one set of predictions.

    Attributes:
        class_names: names of the classes, in class order.
        n: number of samples.
        accuracy: see :func:`accuracy`.
        soft_accuracy: see :func:`soft_accuracy` (``nan`` when no stack order was given).
        auc_weighted: the paper's "micro-averaged AUC" (class-count-weighted one-vs-rest AUC).
        auc: one-vs-rest AUC per class.
        precision: per class.
        recall: per class.
        f1: per class.
        support: true samples per class.
        confusion: ``(K, K)`` confusion matrix, truth in rows.

    """

    class_names: tuple[str, ...]
    n: int
    accuracy: float
    soft_accuracy: float
    auc_weighted: float
    auc: tuple[float, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    f1: tuple[float, ...]
    support: tuple[int, ...]
    confusion: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-ready dictionary (``f1_oap``, ``precision_in``, ..., ``nan`` as ``None``).

        Returns:
            The metrics.

        """

        def clean(v: float) -> float | None:
            return None if np.isnan(v) else float(v)

        out: dict[str, Any] = {
            "n": self.n,
            "accuracy": clean(self.accuracy),
            "soft_accuracy": clean(self.soft_accuracy),
            "auc_weighted": clean(self.auc_weighted),
            "confusion": [list(r) for r in self.confusion],
        }
        for i, name in enumerate(self.class_names):
            key = name.lower()
            for field in ("precision", "recall", "f1", "auc"):
                out[f"{field}_{key}"] = clean(getattr(self, field)[i])
            out[f"support_{key}"] = self.support[i]
        return out


def classification_metrics(
    probs: _ArrayLike,
    target: _ArrayLike,
    stack_ids: Sequence[Hashable] | npt.ArrayLike | None = None,
    slice_index: _ArrayLike | None = None,
    class_names: Sequence[str] = _CLASS_NAMES,
    pred: _ArrayLike | None = None,
) -> ClassificationMetrics:
    """All of the paper's metrics from class probabilities.

    Args:
        probs: ``(N, K)`` class probabilities (or logits).
        target: ``(N,)`` true classes.
        stack_ids: stack of each sample, for soft accuracy (with ``slice_index``).
        slice_index: slice position of each sample in its stack.
        class_names: ``K`` names.
        pred: predicted classes (default: argmax of ``probs``; pass e.g. the monotone-ordered labels of a
            per-stack consistency step).

    Returns:
        A :class:`ClassificationMetrics`.

    Raises:
        ValueError: shapes that do not fit, or ``class_names`` of the wrong length.

    Example:
        >>> p = [[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.2, 0.7], [0.2, 0.7, 0.1]]
        >>> m = classification_metrics(p, [0, 1, 2, 2], ["a"] * 4, [0, 1, 2, 3])
        >>> m.accuracy, m.f1, round(m.auc_weighted, 4)
        (0.75, (1.0, 0.6666666666666666, 0.6666666666666666), 0.7917)

    """
    x = _probabilities(probs)
    k = x.shape[1]
    if len(class_names) != k:
        raise ValueError(f"{len(class_names)} class names for {k} classes")
    p = _labels(pred, "pred") if pred is not None else x.argmax(1).numpy().astype(np.int64)
    t = _labels(target, "target")
    scores = per_class_scores(p, t, k)
    auc_w, auc = one_vs_rest_auc(x, t)
    soft = float("nan")
    if stack_ids is not None and slice_index is not None:
        soft = soft_accuracy(p, t, stack_ids, slice_index)
    m = confusion_matrix(p, t, k)
    return ClassificationMetrics(
        class_names=tuple(class_names),
        n=int(t.size),
        accuracy=accuracy(p, t),
        soft_accuracy=soft,
        auc_weighted=auc_w,
        auc=tuple(float(a) for a in auc),
        precision=tuple(float(v) for v in scores["precision"]),
        recall=tuple(float(v) for v in scores["recall"]),
        f1=tuple(float(v) for v in scores["f1"]),
        support=tuple(int(v) for v in scores["support"]),
        confusion=tuple(tuple(int(v) for v in row) for row in m),
    )
