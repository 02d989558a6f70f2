"""Slice-range prediction: classify every short-axis slice of a study as OAP (0), IN (1) or OBS (2).

The network (:class:`~cardiacseg.networks.nets.slice_classifier.SliceClassifier`) sees exactly the input it
was trained on (:func:`cardiacseg.transforms.slice_input.slice_classifier_input`: label-free heart crop from
the temporal variance, per-slice percentile z-score, 2.5D neighbours ordered apex to base). Optionally the
per-slice predictions are made consistent along the stack (:func:`monotone_slice_labels`): the labelling of
the form ``OAP ... OAP IN ... IN OBS ... OBS`` from apex to base with the highest summed log-probability,
found by dynamic programming, in the known stack direction or the better of the two.

Source: the slice-range paper (``../shared/papers/slice-range.txt``) classifies slices one by one; the
ordering step is cardiacseg's addition (a stack from apex to base can only go OAP, IN, OBS).
The predicted ranges reach :mod:`cardiacseg.clinical` as plain arrays
(:func:`cardiacseg.clinical.slice_range.slice_range_from_classes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from cardiacseg.io.study import CineStudy
from cardiacseg.networks.factory import get_network
from cardiacseg.networks.weights import load_state_dict_file
from cardiacseg.transforms.slice_input import slice_classifier_input
from cardiacseg.typing import PathLike

__all__ = [
    "SliceRangeClassifier",
    "SliceRangePrediction",
    "monotone_slice_labels",
    "shipped_slice_range_bundle",
]


def shipped_slice_range_bundle() -> Path:
    """Return the folder of the shipped ``slice_range_classifier`` bundle (package data).

    Returns:
        The bundle folder (``configs/inference.json`` and ``models/model.pt`` inside).

    Raises:
        FileNotFoundError: the bundle or its weights are missing from this installation.

    Example:
        >>> shipped_slice_range_bundle().name  # doctest: +SKIP
        'slice_range_classifier'

    """
    from importlib import resources

    root = Path(str(resources.files("cardiacseg") / "slice_range_classifier"))
    if not (root / "configs" / "inference.json").is_file() or not (root / "models" / "model.pt").is_file():
        raise FileNotFoundError(
            f"{root}: shipped slice-range classifier (configs/inference.json, models/model.pt) not found; "
            "pass --slice-classifier BUNDLE"
        )
    return root


_N_CLASSES = 3


def _best_non_decreasing(log_probs: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.int64], float]:
    """Viterbi over labels that never decrease along axis 0 (each class may be empty)."""
    n, k = log_probs.shape
    score = np.empty((n, k))
    back = np.zeros((n, k), np.int64)
    score[0] = log_probs[0]
    for z in range(1, n):
        best_arg = np.zeros(k, np.int64)
        for c in range(1, k):  # running argmax of the previous row over classes <= c
            best_arg[c] = c if score[z - 1, c] > score[z - 1, best_arg[c - 1]] else best_arg[c - 1]
        back[z] = best_arg
        score[z] = score[z - 1, best_arg] + log_probs[z]
    labels = np.zeros(n, np.int64)
    labels[-1] = int(np.argmax(score[-1]))
    for z in range(n - 1, 0, -1):
        labels[z - 1] = back[z, labels[z]]
    return labels, float(score[-1, labels[-1]])


def monotone_slice_labels(
    log_probs: npt.ArrayLike, apex_to_base: int | None = None
) -> tuple[npt.NDArray[np.int64], int, float]:
    """Best labelling ``OAP* IN* OBS*`` from apex to base of one stack's per-slice log-probabilities.

    Maximises the summed log-probability of the chosen classes over labellings that are non-decreasing
    (OAP 0 <= IN 1 <= OBS 2) from the apex to the base, by dynamic programming (O(Z K^2)). Any of the three
    runs may be empty.

    Args:
        log_probs: ``(Z, 3)`` per-slice class log-probabilities, slices in stack order.
        apex_to_base: ``+1`` (slice 0 apical: labels non-decreasing with the index), ``-1`` (slice 0 basal:
            non-increasing), or ``None``: the better of the two.

    Returns:
        ``(labels (Z,), direction used (+1/-1), summed log-probability)``.

    Raises:
        ValueError: not ``(Z, K)`` with ``Z >= 1``, or a bad direction.

    Example:
        >>> lp = np.log([[.8, .1, .1], [.2, .7, .1], [.6, .3, .1], [.1, .8, .1], [.1, .2, .7]])
        >>> labels, direction, _ = monotone_slice_labels(lp, apex_to_base=1)
        >>> labels.tolist(), direction  # slice 2 (argmax OAP) between IN slices becomes IN
        ([0, 1, 1, 1, 2], 1)

    """
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 2 or lp.shape[0] < 1:
        raise ValueError(f"log_probs must be (Z, K) with Z >= 1, got shape {lp.shape}")
    if apex_to_base not in (None, 1, -1):
        raise ValueError(f"apex_to_base must be +1, -1 or None, got {apex_to_base}")
    best: tuple[npt.NDArray[np.int64], int, float] | None = None
    for d in (1, -1) if apex_to_base is None else (apex_to_base,):
        labels, score = _best_non_decreasing(lp if d == 1 else lp[::-1])
        labels = labels if d == 1 else labels[::-1].copy()
        if best is None or score > best[2]:
            best = (labels, d, score)
    assert best is not None
    return best


@dataclass(frozen=True)
class SliceRangePrediction:
    """Slice-range prediction of one phase.

    Attributes:
        classes: ``(Z,)`` int64 classes (OAP 0, IN 1, OBS 2) in stack order, ordered when the predictor
            enforces the order, else the argmax.
        probabilities: ``(Z, 3)`` float32 softmax probabilities.
        argmax: ``(Z,)`` the per-slice argmax (before ordering).
        apex_to_base: stack direction used (``+1``: slice 0 apical, ``-1``: basal), ``None`` when neither
            given nor decided (order not enforced, 2D).
        centre: crop centre ``(x, y)`` in pixels.

    """

    classes: npt.NDArray[np.int64]
    probabilities: npt.NDArray[np.float32]
    argmax: npt.NDArray[np.int64]
    apex_to_base: int | None
    centre: tuple[float, float]


#: Top-level keys of a slice-range bundle's ``inference.json`` that :meth:`from_bundle` may override.
_BUNDLE_OVERRIDES = frozenset(
    {"weights", "backbone", "context", "crop_size", "batch_size", "device", "apex_to_base", "enforce_order"}
)


class SliceRangeClassifier:
    """Classify the slices of cine studies with a slice-range network (load once, predict many studies).

    Args:
        network: a classifier ``(B, C, H, W) -> (B, 3)`` logits, ``C = 2 * context + 1``.
        crop_size: side of the heart crop (pixels, as in training).
        context: neighbours per side (0: 2D; 1: 2.5D); default: from ``network.in_channels`` when it has
            one, else 0.
        apex_to_base: stack direction when known (``+1``: slice 0 apical; ``-1``: slice 0 basal, e.g. after
            :class:`~cardiacseg.transforms.NormalizeSAXOrientation`); ``None``: unknown, decided per phase
            as the direction whose ordered labelling is more probable (for 2.5D both channel orders are run).
        enforce_order: make each phase's classes ``OAP* IN* OBS*`` from apex to base
            (:func:`monotone_slice_labels`); False: per-slice argmax.
        batch_size: slices per forward pass.
        device: torch device.

    Raises:
        ValueError: bad ``context`` or ``apex_to_base``.

    Example:
        >>> clf = SliceRangeClassifier.from_checkpoint("model.pt", backbone="resnet34")  # doctest: +SKIP
        >>> clf.predict(study)[0]  # doctest: +SKIP
        array([2, 1, 1, 1, 1, 1, 1, 0, 0])

    """

    def __init__(
        self,
        network: nn.Module,
        crop_size: int = 160,
        context: int | None = None,
        apex_to_base: int | None = None,
        enforce_order: bool = True,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
    ):
        if context is None:
            context = (int(getattr(network, "in_channels", 1)) - 1) // 2
        if context < 0:
            raise ValueError(f"context must be >= 0, got {context}")
        if apex_to_base not in (None, 1, -1):
            raise ValueError(f"apex_to_base must be +1, -1 or None, got {apex_to_base}")
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.crop_size = crop_size
        self.context = context
        self.apex_to_base = apex_to_base
        self.enforce_order = enforce_order
        self.batch_size = batch_size
        #: weight file (set by :meth:`from_checkpoint`) and bundle folder (set by :meth:`from_bundle`)
        self.weights_file: Path | None = None
        self.bundle_dir: Path | None = None

    @classmethod
    def from_checkpoint(
        cls, weights: PathLike, backbone: str = "resnet34", context: int = 0, **kwargs: Any
    ) -> SliceRangeClassifier:
        """Build the predictor from a trained state dict.

        Args:
            weights: the classifier's ``model.pt`` (``SliceClassifier.state_dict()``).
            backbone: the backbone it was trained with.
            context: 0 (2D) or 1 (2.5D): the network has ``2 * context + 1`` input channels.
            kwargs: passed to the constructor.

        Returns:
            The predictor.

        Raises:
            FileNotFoundError: missing file.

        """
        net = get_network("slice_classifier", 2, 2 * context + 1, _N_CLASSES, backbone=backbone)
        net.load_state_dict(load_state_dict_file(weights))
        predictor = cls(net, context=context, **kwargs)
        predictor.weights_file = Path(weights)
        return predictor

    @classmethod
    def from_bundle(cls, bundle_dir: PathLike, **kwargs: Any) -> SliceRangeClassifier:
        """Build the predictor a bundle's ``configs/inference.json`` defines (its ``predictor`` key).

        Read with :class:`monai.bundle.ConfigParser` (``bundle_root`` set to the folder), as
        :meth:`cardiacseg.inferers.SlicePredictor.from_bundle` does; e.g. ``"predictor": {"_target_":
        "cardiacseg.inferers.slice_range.SliceRangeClassifier.from_checkpoint", "weights":
        "$@bundle_root + '/models/model.pt'", "backbone": "@backbone", ...}``.

        Args:
            bundle_dir: the bundle folder.
            kwargs: overrides of the config's top-level keys (``weights``, ``backbone``, ``context``,
                ``crop_size``, ``batch_size``, ``device``, ``apex_to_base``, ``enforce_order``).

        Returns:
            The predictor (``bundle_dir`` recorded).

        Raises:
            FileNotFoundError: no ``configs/inference.json``.
            TypeError: an unknown override, or a ``predictor`` that is not a :class:`SliceRangeClassifier`.

        """
        from cardiacseg.inferers.bundle_config import instantiate_bundle_predictor

        predictor, root = instantiate_bundle_predictor(bundle_dir, cls, _BUNDLE_OVERRIDES, kwargs)
        predictor.bundle_dir = root
        return predictor

    def _probabilities(self, inputs: torch.Tensor) -> torch.Tensor:
        """Softmax of ``(N, C, H, W)`` inputs, batched."""
        outs = []
        with torch.inference_mode():
            for i in range(0, inputs.shape[0], self.batch_size):
                logits = self.network(inputs[i : i + self.batch_size].to(self.device))
                outs.append(torch.softmax(logits.float(), dim=1).cpu())
        return torch.cat(outs)

    def predict_study(
        self, study: CineStudy, phases: Sequence[int] | None = None
    ) -> dict[int, SliceRangePrediction]:
        """Classes, probabilities and direction of every slice of the chosen phases.

        Args:
            study: the study (all phases locate the heart).
            phases: phases to classify (default: all).

        Returns:
            ``{phase: SliceRangePrediction}``.

        """
        sel = list(range(study.n_phases)) if phases is None else [int(t) for t in phases]
        image_txyz = np.transpose(np.asarray(study.image, dtype=np.float32), (0, 3, 2, 1))
        directions: tuple[int, ...] = (self.apex_to_base,) if self.apex_to_base is not None else (-1,)
        if self.apex_to_base is None and self.context > 0:
            directions = (1, -1)  # 2.5D inputs depend on the direction: run both
        probs: dict[int, torch.Tensor] = {}
        centre: tuple[float, float] | None = None
        for d in directions:
            x, centre = slice_classifier_input(
                image_txyz, sel, self.crop_size, self.context, apex_to_base=d, centre=centre
            )
            n_p, n_z = x.shape[:2]
            probs[d] = self._probabilities(x.reshape(n_p * n_z, *x.shape[2:])).reshape(n_p, n_z, -1)
        assert centre is not None
        direction_known = self.apex_to_base is not None or self.context > 0  # (2.5D: the input's order)
        out: dict[int, SliceRangePrediction] = {}
        for i, t in enumerate(sel):
            best: tuple[float, int | None, npt.NDArray[np.int64], torch.Tensor] | None = None
            for d, p in probs.items():
                lp = torch.log(p[i].double().clamp_min(1e-12)).numpy()
                used: int | None = d if direction_known else None
                if self.enforce_order:
                    labels, used, score = monotone_slice_labels(lp, used)
                else:
                    labels, score = lp.argmax(1).astype(np.int64), float(lp.max(1).sum())
                if best is None or score > best[0]:
                    best = (score, used, labels, p[i])
            assert best is not None
            _, used, labels, p_best = best
            out[t] = SliceRangePrediction(
                classes=labels,
                probabilities=p_best.numpy().astype(np.float32),
                argmax=p_best.argmax(1).numpy().astype(np.int64),
                apex_to_base=used,
                centre=centre,
            )
        return out

    def predict(
        self, study: CineStudy, phases: Sequence[int] | None = None
    ) -> dict[int, npt.NDArray[np.int64]]:
        """Slice classes per phase.

        Args:
            study: the study.
            phases: phases to classify (default: all).

        Returns:
            ``{phase: (Z,) int64}`` (OAP 0, IN 1, OBS 2), in the study's slice order.

        """
        return {t: p.classes for t, p in self.predict_study(study, phases).items()}

    def predict_probabilities(
        self, study: CineStudy, phases: Sequence[int] | None = None
    ) -> dict[int, npt.NDArray[np.float32]]:
        """Class probabilities per phase.

        Args:
            study: the study.
            phases: phases to classify (default: all).

        Returns:
            ``{phase: (Z, 3) float32}``.

        """
        return {t: p.probabilities for t, p in self.predict_study(study, phases).items()}
