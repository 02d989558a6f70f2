"""Image-level uncertainty of a segmentation from its class probabilities (for active learning and QC).

The score is the mean **predictive entropy** of the voxels the model considers possibly heart. With
test-time augmentation the probabilities are the mean over the augmented views, so the entropy contains
the views' disagreement as well as each view's own uncertainty (the "total uncertainty" of Gal et al.,
"Deep Bayesian Active Learning with Image Data", ICML 2017; MONAI Label's epistemic scoring uses the same
entropy over dropout samples). Averaging over the heart region, not the whole image, keeps the score
independent of the field of view: a study is uncertain when its heart boundaries are, however much
background surrounds it.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["HEART_REGION_BG_PROBABILITY", "heart_region_entropy"]

#: A voxel belongs to the heart region when its background probability is below this value.
HEART_REGION_BG_PROBABILITY = 0.95


def heart_region_entropy(
    probabilities: npt.ArrayLike, bg_probability: float = HEART_REGION_BG_PROBABILITY
) -> float:
    """Mean predictive entropy (nats) of the voxels whose background probability is below a threshold.

    Args:
        probabilities: ``(C, ...)`` class probabilities that sum to 1 over axis 0, channel 0 background
            (e.g. ``(4, Z, Y, X)`` from :meth:`~cardiacseg.inferers.SlicePredictor.predict_probabilities`).
        bg_probability: the heart region is where ``probabilities[0] < bg_probability``.

    Returns:
        The mean entropy in nats, between 0 (every heart voxel certain) and ``log(C)``. When the region is
        empty (the model sees no heart at all) the maximum ``log(C)``: such an image is the one most worth a
        person's look.

    Raises:
        ValueError: fewer than two channels, or probabilities outside [0, 1].

    Example:
        >>> import numpy as np
        >>> p = np.zeros((4, 1, 1, 2)); p[0, ..., 0] = 1.0; p[1:, ..., 1] = 1 / 3
        >>> round(heart_region_entropy(p), 4)  # only the second voxel counts: log(3)
        1.0986

    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim < 2 or p.shape[0] < 2:
        raise ValueError(f"expected (C, ...) probabilities with C >= 2, got shape {p.shape}")
    if p.size and (np.nanmin(p) < -1e-6 or np.nanmax(p) > 1 + 1e-6):
        raise ValueError("probabilities must lie in [0, 1]")
    region = p[0] < bg_probability
    if not region.any():
        return math.log(p.shape[0])
    q = np.clip(p[:, region], 1e-12, 1.0)
    entropy = -(q * np.log(q)).sum(axis=0)
    return float(entropy.mean())
