"""Switchable post-processing and the data-driven choice of steps (as nnU-Net decides from validation)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cardiacseg.enums import STRUCTURES
from cardiacseg.metrics import dice_score
from cardiacseg.postprocess.steps import STEPS, foreground_box
from cardiacseg.typing import LabelArray, PathLike
from cardiacseg.utils.atomic import atomic_write_text

__all__ = ["PostProcessor", "PostprocessingChoice", "postprocessed_dice", "select_postprocessing"]

_CLASSES = {s.key: s for s in STRUCTURES}

#: Background pixels kept around the foreground's bounding box when post-processing.
_BOX_MARGIN = 2


class PostProcessor:
    """Apply a chosen list of post-processing steps (names from :data:`STEPS`) in their canonical order.

    Args:
        steps: step names; unknown names raise.

    Raises:
        ValueError: an unknown step name.

    Example:
        >>> pp = PostProcessor(["fill_holes", "rv_without_lv"])
        >>> pp.steps
        ('fill_holes', 'rv_without_lv')

    """

    def __init__(self, steps: Sequence[str] = ()):
        unknown = [s for s in steps if s not in STEPS]
        if unknown:
            raise ValueError(f"unknown post-processing step(s) {unknown}; choose from {list(STEPS)}")
        self.steps = tuple(s for s in STEPS if s in steps)

    def __call__(self, labels: LabelArray, spacing_mm: Sequence[float] | None = None) -> LabelArray:
        """Apply the steps to one ``(Z, Y, X)`` label map (the input is not modified).

        Args:
            labels: internal labels.
            spacing_mm: ``(z, y, x)`` spacing in mm or ``None``.

        Returns:
            The post-processed labels.

        """
        arr = np.asarray(labels, dtype=np.uint8)
        # Work on the foreground's in-plane bounding box plus a background margin: every step is
        # translation-invariant and needs only a background ring around the heart (fill_holes), so the
        # result is identical, and labelling a small box instead of the whole matrix is much faster.
        box = foreground_box(arr, _BOX_MARGIN) if self.steps and arr.ndim == 3 else None
        sub = arr if box is None else arr[box]
        for name in self.steps:
            sub = STEPS[name](sub, spacing_mm)
        if box is None:
            return sub
        out = np.zeros_like(arr)
        out[box] = sub
        return out

    def __repr__(self) -> str:
        return f"PostProcessor({list(self.steps)})"


@dataclass
class PostprocessingChoice:
    """Result of :func:`select_postprocessing`.

    Attributes:
        steps: the steps kept.
        baseline: mean Dice per class without post-processing.
        trials: per candidate step, the mean Dice per class with it added to the steps kept so far, and
            whether it was kept.
        n_cases: number of label maps the choice was made on.
        tolerance: minimum gain in mean foreground Dice required to keep a step.

    Example:
        >>> PostprocessingChoice(["fill_holes"], {"lv": 0.9}, [], 2, 0.0).steps
        ['fill_holes']

    """

    steps: list[str]
    baseline: dict[str, float]
    trials: list[dict[str, object]] = field(default_factory=list)
    n_cases: int = 0
    tolerance: float = 0.0

    def save(self, path: PathLike, overwrite: bool = True) -> Path:
        """Write the choice as JSON (atomically).

        Args:
            path: output file, e.g. ``bundles/cardiac_cine_seg/configs/postprocessing.json``.
            overwrite: allow replacing an existing file.

        Returns:
            The path.

        """
        return atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n", overwrite=overwrite)

    @staticmethod
    def load_steps(path: PathLike) -> list[str]:
        """Read the kept steps from a saved choice.

        Args:
            path: a JSON file written by :meth:`save`.

        Returns:
            The step names.

        Raises:
            ValueError: the file is not a post-processing choice (names the file).

        """
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            raise ValueError(f"{path}: not a post-processing choice (no 'steps' list)")
        return [str(s) for s in data["steps"]]


def postprocessed_dice(
    preds: Sequence[LabelArray],
    refs: Sequence[LabelArray],
    steps: Sequence[str] = (),
    spacings: Sequence[Sequence[float] | None] | None = None,
) -> dict[str, float]:
    """Mean Dice per structure of the predictions after the post-processing ``steps``.

    The measure :func:`select_postprocessing` decides with: per case and structure, the Dice of the
    post-processed ``(Z, Y, X)`` prediction against the reference; a case counts for a structure only when
    its reference has that structure.

    Args:
        preds: predicted ``(Z, Y, X)`` label maps (internal labels).
        refs: reference label maps, same order and shapes.
        steps: step names from :data:`~cardiacseg.postprocess.steps.STEPS` (applied in canonical order).
        spacings: ``(z, y, x)`` spacing of each case (default: unknown for all).

    Returns:
        ``{"lv": ..., "myo": ..., "rv": ...}`` (nan for a structure no reference has).

    Raises:
        ValueError: lengths differ, or an unknown step.

    Example:
        >>> ref = np.zeros((1, 8, 8), np.uint8); ref[0, 2:6, 2:6] = 1
        >>> pred = ref.copy(); pred[0, 0, 7] = 1
        >>> round(postprocessed_dice([pred], [ref])["lv"], 3)  # 2 * 16 / (17 + 16)
        0.97
        >>> postprocessed_dice([pred], [ref], ["lcc_slice"])["lv"]
        1.0

    """
    pp = PostProcessor(steps)
    sp: Sequence[Sequence[float] | None] = spacings if spacings is not None else [None] * len(preds)
    scores: dict[str, list[float]] = {k: [] for k in _CLASSES}
    for p, r, s in zip(preds, refs, sp, strict=True):
        q = pp(p, s)
        for name, value in _CLASSES.items():
            if (r == value).any():
                scores[name].append(dice_score(q == value, r == value))
    return {k: float(np.mean(v)) if v else float("nan") for k, v in scores.items()}


def _fg(d: dict[str, float]) -> float:
    vals = [v for v in d.values() if not np.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def select_postprocessing(
    preds: Sequence[LabelArray],
    refs: Sequence[LabelArray],
    spacings: Sequence[Sequence[float] | None] | None = None,
    candidates: Sequence[str] = tuple(STEPS),
    tolerance: float = 0.0,
) -> PostprocessingChoice:
    """Choose post-processing steps greedily from validation predictions, as nnU-Net does.

    Candidates are tried one at a time in canonical order, each added to the steps kept so far; a step is
    kept when the mean foreground Dice (mean over LV, MYO, RV of the per-case Dice) rises by more than
    ``tolerance`` and no structure's mean Dice falls by more than ``tolerance``.

    Args:
        preds: predicted ``(Z, Y, X)`` label maps of validation cases (never training cases).
        refs: reference label maps, same order and shapes.
        spacings: ``(z, y, x)`` spacing of each case (``None`` entries when unknown).
        candidates: step names to consider.
        tolerance: required gain (Dice points as a fraction).

    Returns:
        :class:`PostprocessingChoice` with the per-step evidence.

    Raises:
        ValueError: lengths differ or no cases.

    Example:
        >>> ref = np.zeros((1, 8, 8), np.uint8); ref[0, 2:6, 2:6] = 1
        >>> pred = ref.copy(); pred[0, 0, 7] = 1
        >>> select_postprocessing([pred], [ref], candidates=["lcc_slice"]).steps
        ['lcc_slice']

    """
    if not preds or len(preds) != len(refs):
        raise ValueError(
            f"need matching non-empty predictions and references, got {len(preds)} and {len(refs)}"
        )
    sp: Sequence[Sequence[float] | None] = spacings if spacings is not None else [None] * len(preds)
    kept: list[str] = []
    current = postprocessed_dice(preds, refs, [], sp)
    baseline = dict(current)
    trials: list[dict[str, object]] = []
    for step in [s for s in STEPS if s in candidates]:
        trial = postprocessed_dice(preds, refs, [*kept, step], sp)
        gain = _fg(trial) - _fg(current)
        worst = min((trial[k] - current[k] for k in trial if not np.isnan(trial[k])), default=0.0)
        keep = gain > tolerance and worst >= -tolerance
        trials.append({"step": step, "dice": trial, "gain_mean_fg": gain, "kept": keep})
        if keep:
            kept.append(step)
            current = trial
    return PostprocessingChoice(kept, baseline, trials, len(preds), tolerance)
