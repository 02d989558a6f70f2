"""Slice-range targets (OAP / IN / OBS) derived from expert segmentations, and items to train a classifier.

Each short-axis slice is *out of apical* (OAP: beyond the apex, no LV blood pool), *in* (IN: LV blood pool
and myocardium, valid for quantification) or *out of basal* (OBS: above the base; at most a small crescent
of basal myocardium, no LV blood pool in a myocardial ring). Definitions from the slice-range
classification study (transfer learning on Cardiac Atlas Project stacks), which follows the SCMR
post-processing recommendations (Schulz-Menger et al., JCMR 2013/2020); see ``docs/slice_range.md``.

The classes are decided by anatomy, not by file order:

1. **Direction** (:func:`stack_direction`): which end of the stack is basal. Four cues, each a number in
   ``[-1, 1]`` that is positive when the base lies at high slice indices, computed over the slices between
   the first and last slice carrying any label (all labelled phases pooled):

   - ``rv_area``: rank correlation of RV blood-pool area with the slice index (the RV is largest at the
     base and does not reach the apex);
   - ``rv_balance``: RV area in the upper half of the span minus the lower half, over the total;
   - ``lv_area``: rank correlation of LV blood-pool area with the slice index (the cavity narrows to the
     apex and vanishes there);
   - ``myo_fraction``: minus the rank correlation of ``MYO / (LV + MYO)`` with the slice index (the
     myocardial ring closes to a cap at the apex).

   The score is their weighted mean (:data:`CUE_WEIGHTS`: RV cues 1, LV cues 0.5, since on ACDC the LV
   cues point the wrong way under an apical aneurysm or a thinned infarcted apex). The stack is
   *ambiguous* when fewer than three slices carry labels, when ``|score| < min_score``, or when the RV
   cues and the LV cues (each pair averaged) point in opposite directions with ``|mean| >= min_score``
   both; without any cue the ``fallback`` direction is used (flagged).
2. **Classes** (:func:`slice_range_labels`): a slice is *valid* when it has LV blood pool
   (``>= min_lv_pixels``) whose border touches myocardium for at least ``min_coverage`` of its length
   (:func:`cardiacseg.clinical.slice_range.myocardial_coverage`, the SCMR "at least half surrounded by
   myocardium" rule at the base). IN is the range from the most apical to the most basal valid slice;
   slices apical to it are OAP (the myocardial cap without cavity included), slices basal to it are OBS
   (a basal myocardial crescent without blood pool, or blood pool opening into the atrium/outflow tract
   with less than ``min_coverage`` ring, included). A non-valid slice *inside* the range (no LV between
   LV slices: an annotation gap, which should not happen) is kept IN, so that the range stays contiguous,
   and reported in ``gaps``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from cardiacseg.data.datalist import acdc_group, kfold_patients
from cardiacseg.enums import CardiacLabel, SliceRange
from cardiacseg.io.ssl4mis import list_ssl4mis_patients, read_ssl4mis_study
from cardiacseg.typing import FloatArray, LabelArray, PathLike

__all__ = [
    "CUE_WEIGHTS",
    "UNDETERMINED",
    "SliceRangeLabels",
    "StackDirection",
    "patient_folds",
    "slice_context",
    "slice_range_items",
    "slice_range_labels",
    "stack_direction",
]

#: Class value of slices whose class cannot be decided (a stack without any valid LV slice).
UNDETERMINED = -1

_PHASE_NAMES = ("ED", "ES")


@dataclass(frozen=True)
class StackDirection:
    """Which end of a short-axis stack is basal, with the evidence.

    Attributes:
        apex_to_base: ``+1`` when the slice index increases from apex to base (slice 0 apical), ``-1`` when
            it decreases (slice 0 basal).
        ambiguous: the evidence was missing, weak or contradictory (see :func:`stack_direction`).
        score: mean of the cues in ``[-1, 1]`` (positive: base at high indices); 0 without evidence.
        cues: each cue's value (pooled over phases); absent when it could not be computed.
        reason: why the stack is ambiguous (empty otherwise).

    """

    apex_to_base: int
    ambiguous: bool
    score: float
    cues: dict[str, float] = field(default_factory=dict)
    reason: str = ""


class SliceRangeLabels(NamedTuple):
    """Slice-range classes of one phase's stack and how they were decided.

    Attributes:
        classes: ``(Z,)`` int64, :class:`~cardiacseg.enums.SliceRange` values in stack order
            (:data:`UNDETERMINED` everywhere when no slice is valid).
        apex_to_base: ``+1`` (slice 0 apical) or ``-1`` (slice 0 basal).
        ambiguous: the direction is ambiguous, or no slice is valid.
        gaps: indices of non-valid slices inside the IN range (labelled IN).
        direction: the full direction decision.

    """

    classes: npt.NDArray[np.int64]
    apex_to_base: int
    ambiguous: bool
    gaps: tuple[int, ...]
    direction: StackDirection


def _as_stack(labels_zyx: LabelArray) -> LabelArray:
    arr = np.asarray(labels_zyx)
    if arr.ndim != 3:
        raise ValueError(f"expected a (Z, Y, X) label map, got shape {arr.shape}")
    return arr


def _rank_correlation(values: npt.NDArray[np.float64]) -> float | None:
    """Spearman correlation of ``values`` with their index (average ranks for ties); ``None`` if constant."""
    from scipy.stats import rankdata

    if values.size < 3 or np.ptp(values) == 0:
        return None
    r = rankdata(values)
    z = np.arange(values.size, dtype=np.float64)
    return float(np.corrcoef(z, r)[0, 1])


def _balance(values: npt.NDArray[np.float64]) -> float | None:
    """``(upper half - lower half) / total`` of ``values`` along the index (middle slice left out)."""
    n = values.size
    lower, upper = float(values[: n // 2].sum()), float(values[(n + 1) // 2 :].sum())
    if lower + upper <= 0:
        return None
    return (upper - lower) / (upper + lower)


#: Weight of each direction cue. The RV's basal predominance holds across the ACDC pathologies; the LV
#: cues fail where the LV shape is abnormal (apical aneurysm in MINF keeps a large cavity at the apex,
#: a thinned infarcted apex lowers the myocardial fraction there), so they count half.
CUE_WEIGHTS: dict[str, float] = {"rv_area": 1.0, "rv_balance": 1.0, "lv_area": 0.5, "myo_fraction": 0.5}
_RV_CUES, _LV_CUES = ("rv_area", "rv_balance"), ("lv_area", "myo_fraction")


def _direction_cues(arr: LabelArray) -> tuple[dict[str, float], int]:
    """Cues of one phase (positive: base at high slice indices) and the number of labelled slices."""
    lv = (arr == CardiacLabel.LV).sum(axis=(1, 2)).astype(np.float64)
    myo = (arr == CardiacLabel.MYO).sum(axis=(1, 2)).astype(np.float64)
    rv = (arr == CardiacLabel.RV).sum(axis=(1, 2)).astype(np.float64)
    heart = np.nonzero((lv + myo + rv) > 0)[0]
    cues: dict[str, float] = {}
    if heart.size < 3:
        return cues, int(heart.size)
    span = slice(int(heart[0]), int(heart[-1]) + 1)
    found = {
        "rv_area": _rank_correlation(rv[span]),
        "rv_balance": _balance(rv[span]),
        "lv_area": _rank_correlation(lv[span]),
    }
    wall = (lv + myo)[span]
    frac = _rank_correlation(myo[span][wall > 0] / wall[wall > 0])
    found["myo_fraction"] = None if frac is None else -frac
    cues = {k: v for k, v in found.items() if v is not None}
    return cues, int(heart.size)


def stack_direction(
    labels: LabelArray | Sequence[LabelArray], min_score: float = 0.3, fallback: int = -1
) -> StackDirection:
    """Decide which end of a short-axis stack is basal from its segmentation (one or several phases).

    The cues (``rv_area``, ``rv_balance``, ``lv_area``, ``myo_fraction``; module docstring) are computed
    per phase over the span of slices carrying any label, averaged over phases weighted by the number of
    labelled slices, and combined with :data:`CUE_WEIGHTS`. Pass all labelled phases of one acquisition
    (ED and ES) to decide once.

    Args:
        labels: ``(Z, Y, X)`` internal labels (0 BG, 1 LV, 2 MYO, 3 RV), or a sequence of them (phases of
            one stack, same ``Z``).
        min_score: the least ``|score|`` for a confident decision; RV and LV cue pairs at least this
            strong in opposite directions also make the stack ambiguous.
        fallback: direction used when no cue can be computed (``-1``: slice 0 basal, the order of ACDC and
            of most short-axis exports; flagged ambiguous).

    Returns:
        A :class:`StackDirection`.

    Raises:
        ValueError: not 3D label maps, phases of different slice counts, or ``fallback`` not ``+1``/``-1``.

    Example:
        >>> ring = np.zeros((9, 9), np.uint8); ring[1:8, 1:8] = 2; ring[3:6, 3:6] = 1
        >>> base = ring.copy(); base[0:3, 0:3] = 3          # RV beside the LV at the base
        >>> cap = np.zeros((9, 9), np.uint8); cap[3:6, 3:6] = 2  # apical myocardial cap
        >>> d = stack_direction(np.stack([base, base, ring, cap]))
        >>> d.apex_to_base, d.ambiguous
        (-1, False)

    """
    if fallback not in (1, -1):
        raise ValueError(f"fallback must be +1 or -1, got {fallback}")
    stacks = [_as_stack(labels)] if isinstance(labels, np.ndarray) else [_as_stack(s) for s in labels]
    if len({s.shape[0] for s in stacks}) > 1:
        raise ValueError(f"phases have different slice counts: {[s.shape[0] for s in stacks]}")
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    for s in stacks:
        cues, n = _direction_cues(s)
        for k, v in cues.items():
            sums[k] = sums.get(k, 0.0) + n * v
            weights[k] = weights.get(k, 0.0) + n
    pooled = {k: sums[k] / weights[k] for k in sums}
    if not pooled:
        return StackDirection(fallback, True, 0.0, {}, "fewer than 3 labelled slices: fallback direction")
    total = sum(CUE_WEIGHTS[k] for k in pooled)
    score = float(sum(CUE_WEIGHTS[k] * v for k, v in pooled.items()) / total)
    direction = 1 if score > 0 else -1
    reasons = []
    if abs(score) < min_score:
        reasons.append(f"weak evidence (|score| {abs(score):.2f} < {min_score})")
    rv = [pooled[k] for k in _RV_CUES if k in pooled]
    lv = [pooled[k] for k in _LV_CUES if k in pooled]
    if rv and lv:
        rv_mean, lv_mean = float(np.mean(rv)), float(np.mean(lv))
        if rv_mean * lv_mean < 0 and min(abs(rv_mean), abs(lv_mean)) >= min_score:
            reasons.append(f"RV cues ({rv_mean:+.2f}) and LV cues ({lv_mean:+.2f}) disagree")
    if len(pooled) < 2:
        reasons.append("a single cue")
    return StackDirection(direction, bool(reasons), score, pooled, "; ".join(reasons))


def slice_range_labels(
    labels_zyx: LabelArray,
    apex_to_base: int | StackDirection | None = None,
    min_coverage: float = 0.5,
    min_lv_pixels: int = 1,
) -> SliceRangeLabels:
    """Classify each slice of one phase as OAP, IN or OBS from its segmentation (rule: module docstring).

    Args:
        labels_zyx: ``(Z, Y, X)`` internal labels of one phase (0 BG, 1 LV, 2 MYO, 3 RV).
        apex_to_base: the stack direction (``+1``: slice 0 apical, ``-1``: slice 0 basal) or a
            :class:`StackDirection` (e.g. decided once from ED and ES together); decided from this phase
            alone by :func:`stack_direction` when ``None``.
        min_coverage: the least fraction of the LV blood pool's border touching myocardium for a valid
            slice (0.5: SCMR's basal rule).
        min_lv_pixels: the least LV blood-pool area (pixels) for a valid slice (1: any blood pool; the
            paper's OAP is "no appearance of the LV blood pool").

    Returns:
        A :class:`SliceRangeLabels`.

    Raises:
        ValueError: not a 3D label map, or ``apex_to_base`` not ``+1``/``-1``.

    Example:
        >>> ring = np.zeros((9, 9), np.uint8); ring[1:8, 1:8] = 2; ring[3:6, 3:6] = 1
        >>> crescent = np.zeros((9, 9), np.uint8); crescent[1:3, 1:8] = 2
        >>> cap = np.zeros((9, 9), np.uint8); cap[3:6, 3:6] = 2
        >>> out = slice_range_labels(np.stack([crescent, ring, ring, cap, cap * 0]), apex_to_base=-1)
        >>> [SliceRange(c).name for c in out.classes]
        ['OBS', 'IN', 'IN', 'OAP', 'OAP']

    """
    from cardiacseg.clinical.slice_range import myocardial_coverage  # torch-free callers stay light

    arr = _as_stack(labels_zyx)
    if apex_to_base is None:
        direction = stack_direction(arr)
    elif isinstance(apex_to_base, StackDirection):
        direction = apex_to_base
    elif apex_to_base in (1, -1):
        direction = StackDirection(int(apex_to_base), False, float(apex_to_base), {}, "")
    else:
        raise ValueError(f"apex_to_base must be +1 or -1, got {apex_to_base}")
    n = arr.shape[0]
    valid = np.array(
        [
            int((arr[z] == CardiacLabel.LV).sum()) >= max(min_lv_pixels, 1)
            and myocardial_coverage(arr[z]) >= min_coverage
            for z in range(n)
        ],
        dtype=bool,
    )
    order = np.arange(n) if direction.apex_to_base == 1 else np.arange(n)[::-1]  # apex -> base
    classes = np.full(n, UNDETERMINED, dtype=np.int64)
    if not valid.any():
        return SliceRangeLabels(classes, direction.apex_to_base, True, (), direction)
    hits = np.nonzero(valid[order])[0]
    first, last = int(hits[0]), int(hits[-1])
    ranked = np.full(n, int(SliceRange.IN), dtype=np.int64)
    ranked[:first] = int(SliceRange.OAP)
    ranked[last + 1 :] = int(SliceRange.OBS)
    classes[order] = ranked
    gaps = tuple(sorted(int(order[i]) for i in range(first, last + 1) if not valid[order[i]]))
    return SliceRangeLabels(classes, direction.apex_to_base, direction.ambiguous, gaps, direction)


def slice_context(stack: npt.NDArray[Any], z: int, context: int, apex_to_base: int) -> npt.NDArray[Any]:
    """Stack slice ``z`` and its ``context`` neighbours on each side as channels, ordered apex to base.

    Channel ``context`` is slice ``z`` itself; channels before it are its apical neighbours (nearest
    last), channels after it its basal neighbours. Neighbours beyond the stack repeat the edge slice.
    Use the same function at inference, with the direction from the geometry
    (:class:`~cardiacseg.transforms.NormalizeSAXOrientation` puts slice 0 at the base: ``-1``).

    Args:
        stack: ``(Z, ...)`` slices of one phase.
        z: the slice index.
        context: neighbours on each side (0: the slice alone).
        apex_to_base: ``+1`` (slice 0 apical) or ``-1`` (slice 0 basal).

    Returns:
        ``(2 * context + 1, ...)`` array.

    Raises:
        ValueError: ``z`` outside the stack, negative ``context`` or a direction other than ``+1``/``-1``.

    Example:
        >>> s = np.arange(4)[:, None]
        >>> slice_context(s, 0, 1, apex_to_base=-1)[:, 0].tolist()  # slice 0 basal: apical neighbour 1
        [1, 0, 0]

    """
    n = stack.shape[0]
    if not 0 <= z < n or context < 0 or apex_to_base not in (1, -1):
        raise ValueError(f"bad slice {z} of {n}, context {context} or direction {apex_to_base}")
    idx = np.clip(z + apex_to_base * np.arange(-context, context + 1), 0, n - 1)
    return stack[idx]


def slice_range_items(
    root: PathLike,
    patients: Sequence[str] | None = None,
    phases: Sequence[str] = ("ED", "ES"),
    crop_size: int = 160,
    context: int = 0,
    min_coverage: float = 0.5,
) -> list[dict[str, Any]]:
    """2D (or 2.5D) items for training a slice-range classifier on the SSL4MIS copy of ACDC.

    Each stack is cropped around the heart *without labels*: the centre is
    :meth:`cardiacseg.transforms.HeartCrop.find_centre` on the image with ED and ES as channels (temporal
    variance, :func:`~cardiacseg.transforms.locate_heart`), one centre per patient, as a classifier sees it
    at inference. Intensities are left as read (the SSL4MIS copy is min-max scaled to ``[0, 1]``); apply
    the training pipeline's normalisation (e.g. :class:`~cardiacseg.transforms.SliceZScore`) downstream.
    Targets come from :func:`slice_range_labels` with one direction per patient decided from both phases.

    Args:
        root: the ``acdc_ssl4mis`` folder.
        patients: ids (default: all).
        phases: ``"ED"`` and/or ``"ES"``.
        crop_size: side of the square in-plane crop (pixels; zero-padded where the image is smaller).
        context: neighbours on each side as extra channels (0: 2D, 1: 2.5D with 3 channels), ordered apex
            to base (:func:`slice_context`).
        min_coverage: see :func:`slice_range_labels`.

    Returns:
        One item per (patient, phase, slice) with ``image`` ``(2 * context + 1, X, Y)`` float32
        (cardiacseg's channel-first layout: ``image[c].T`` shows the slice as stored), ``label`` (int,
        :class:`~cardiacseg.enums.SliceRange`), ``patient``, ``phase``, ``slice``, ``group`` (ACDC
        pathology), ``apex_to_base``, ``ambiguous`` (direction flagged), ``gap`` (an IN slice without valid
        LV), ``centre`` (the crop centre ``(x, y)``, pixels). Stacks without any valid LV slice are left out.

    Raises:
        ValueError: unknown phase name, negative ``context``.

    Example:
        >>> root = "../shared/data/acdc_ssl4mis"
        >>> items = slice_range_items(root, ["patient001"], context=1)  # doctest: +SKIP
        >>> items[0]["image"].shape, items[0]["label"]  # doctest: +SKIP
        ((3, 160, 160), 2)

    """
    import torch

    from cardiacseg.transforms import HeartCrop

    for ph in phases:
        if ph not in _PHASE_NAMES:
            raise ValueError(f"phase must be 'ED' or 'ES', got {ph!r}")
    if context < 0:
        raise ValueError(f"context must be >= 0, got {context}")
    ids = list(patients) if patients is not None else list_ssl4mis_patients(root)
    crop = HeartCrop((crop_size, crop_size))
    items: list[dict[str, Any]] = []
    for pid in ids:
        study = read_ssl4mis_study(Path(root), pid)
        xyz = torch.from_numpy(np.ascontiguousarray(np.transpose(study.image, (0, 3, 2, 1))))  # (T, X, Y, Z)
        centre, _ = crop.find_centre(xyz)
        cropped: FloatArray = np.asarray(crop(xyz, centre=centre).numpy(), dtype=np.float32)  # (T, x, y, Z)
        phase_index = {"ED": study.ed_phase, "ES": study.es_phase}
        direction = stack_direction([study.labels[t] for t in sorted(study.labels)])
        for ph in phases:
            t = phase_index[ph]
            assert t is not None
            result = slice_range_labels(study.labels[t], direction, min_coverage=min_coverage)
            if (result.classes == UNDETERMINED).any():
                continue
            stack_zxy = np.ascontiguousarray(np.moveaxis(cropped[t], 2, 0))  # (Z, x, y)
            for z in range(study.n_slices):
                items.append(
                    {
                        "image": np.ascontiguousarray(
                            slice_context(stack_zxy, z, context, direction.apex_to_base)
                        ),
                        "label": int(result.classes[z]),
                        "patient": pid,
                        "phase": ph,
                        "slice": z,
                        "group": acdc_group(pid),
                        "apex_to_base": direction.apex_to_base,
                        "ambiguous": direction.ambiguous,
                        "gap": z in result.gaps,
                        "centre": (float(centre[0]), float(centre[1])),
                    }
                )
    return items


def patient_folds(
    patients: Sequence[str], n_folds: int = 5, seed: int = 0
) -> list[tuple[list[str], list[str]]]:
    """Patient-level folds stratified by ACDC pathology group (no patient in two validation folds).

    A thin front to :func:`cardiacseg.data.datalist.kfold_patients` with
    :func:`~cardiacseg.data.datalist.acdc_group` as the stratum, so each validation fold holds every
    group in near-equal share (the study's five-fold cross-validation was by patient too).

    Args:
        patients: patient ids (e.g. ``"patient042"``).
        n_folds: number of folds.
        seed: shuffling seed.

    Returns:
        ``[(train_ids, val_ids), ...]``, one per fold.

    Raises:
        ValueError: fewer patients than folds, or duplicate ids.

    Example:
        >>> folds = patient_folds([f"patient{i:03d}" for i in range(1, 101)])
        >>> [len(v) for _, v in folds], sorted({acdc_group(p) for p in folds[0][1]})
        ([20, 20, 20, 20, 20], ['DCM', 'HCM', 'MINF', 'NOR', 'RV'])

    """
    return kfold_patients(patients, n_folds, seed, stratify=acdc_group)
