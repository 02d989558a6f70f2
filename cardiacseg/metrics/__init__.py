"""Segmentation metrics, framework-free: per-class Dice, HD95 and mean surface distance in mm.

Surface distances use MONAI's implementations with the voxel spacing; without spacing they are in
pixels/voxels and the result says so (``unit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import torch
from monai.metrics.utils import get_edge_surface_distance

from cardiacseg.enums import STRUCTURES

__all__ = ["ClassMetrics", "dice_score", "segmentation_metrics"]


@dataclass(frozen=True)
class ClassMetrics:
    """Metrics of one structure.

    Attributes:
        name: ``"LV"``, ``"MYO"`` or ``"RV"``.
        dice: Dice overlap (``nan`` when both masks are empty).
        hd95: 95th percentile symmetric surface distance (``nan`` when a mask is empty).
        msd: mean symmetric surface distance.
        unit: ``"mm"`` or ``"voxel"``.
        ref_voxels: voxels of the reference.
        pred_voxels: voxels of the prediction.

    Example:
        >>> ClassMetrics("LV", 0.9, 2.0, 1.0, "mm", 10, 11).dice
        0.9

    """

    name: str
    dice: float
    hd95: float
    msd: float
    unit: str
    ref_voxels: int
    pred_voxels: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary.

        Returns:
            The fields.

        """
        return asdict(self)


def dice_score(pred: npt.NDArray[np.bool_], ref: npt.NDArray[np.bool_]) -> float:
    """Dice overlap of two binary masks.

    Args:
        pred: predicted mask.
        ref: reference mask.

    Returns:
        ``2 |A n B| / (|A| + |B|)``; ``nan`` when both are empty.

    Example:
        >>> import numpy as np
        >>> dice_score(np.array([1, 1, 0], bool), np.array([1, 0, 0], bool))
        0.6666666666666666

    """
    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    denom = int(p.sum()) + int(r.sum())
    return float("nan") if denom == 0 else 2.0 * float((p & r).sum()) / denom


def _surface(
    pred: npt.NDArray[np.bool_], ref: npt.NDArray[np.bool_], spacing: Sequence[float] | None
) -> tuple[float, float]:
    if not pred.any() or not ref.any():
        return float("nan"), float("nan")
    _, dists, _ = get_edge_surface_distance(
        torch.as_tensor(pred),
        torch.as_tensor(ref),
        distance_metric="euclidean",
        spacing=None if spacing is None else tuple(float(s) for s in spacing),
        symmetric=True,
    )
    both = torch.cat([d.flatten() for d in dists]).double()
    return float(torch.quantile(both, 0.95)), float(both.mean())


def segmentation_metrics(
    pred: npt.NDArray[np.integer], ref: npt.NDArray[np.integer], spacing: Sequence[float] | None = None
) -> list[ClassMetrics]:
    """Dice, HD95 and MSD of LV, MYO and RV between two internal label maps.

    Args:
        pred: predicted labels, 2D or 3D.
        ref: reference labels, same shape.
        spacing: spacing per axis in mm (array order); ``None`` gives distances in voxels.

    Returns:
        One :class:`ClassMetrics` per structure.

    Raises:
        ValueError: shapes differ, or the spacing has the wrong length.

    Example:
        >>> import numpy as np
        >>> a = np.zeros((8, 8), np.uint8); a[2:6, 2:6] = 1
        >>> segmentation_metrics(a, a, (1.0, 1.0))[0].dice
        1.0

    """
    p, r = np.asarray(pred), np.asarray(ref)
    if p.shape != r.shape:
        raise ValueError(f"prediction shape {p.shape} differs from reference {r.shape}")
    if spacing is not None and len(spacing) != p.ndim:
        raise ValueError(f"spacing {spacing} has {len(spacing)} entries for a {p.ndim}-D label map")
    unit = "voxel" if spacing is None else "mm"
    out = []
    for value, name in ((s, s.name) for s in STRUCTURES):
        pm, rm = p == value, r == value
        hd95, msd = _surface(pm, rm, spacing)
        out.append(ClassMetrics(name, dice_score(pm, rm), hd95, msd, unit, int(rm.sum()), int(pm.sum())))
    return out
