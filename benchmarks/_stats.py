"""Statistics shared by the benchmarks: the paired patient bootstrap used to compare two models."""

from __future__ import annotations

import numpy as np


def bootstrap_mean_ci(
    differences: np.ndarray, rng: np.random.Generator, boot: int = 2000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of paired differences (one value per patient).

    The patients are resampled with replacement ``boot`` times (Efron and Tibshirani, *An Introduction to
    the Bootstrap*, 1993, ch. 13: the percentile interval).

    Args:
        differences: ``(N,)`` per-patient differences (model B minus model A), finite.
        rng: the generator drawing the resamples (pass one seeded generator for reproducible tables).
        boot: number of bootstrap resamples.
        level: coverage of the interval.

    Returns:
        ``(low, high)``.

    Raises:
        ValueError: ``differences`` is empty.

    Example:
        >>> low, high = bootstrap_mean_ci(np.array([1.0, 1.0, 1.0]), np.random.default_rng(0))
        >>> (low, high)
        (1.0, 1.0)

    """
    d = np.asarray(differences, dtype=float)
    if d.size == 0:
        raise ValueError("no paired differences to bootstrap")
    means = d[rng.integers(0, d.size, size=(boot, d.size))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)
