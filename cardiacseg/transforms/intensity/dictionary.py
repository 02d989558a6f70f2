"""Intensity transforms (dictionary versions)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Literal

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform

from cardiacseg.transforms._dict import PerKeyd, SeedsInner
from cardiacseg.transforms.intensity.array import (
    CLAHE,
    N4BiasFieldCorrection,
    PercentileNormalize,
    RandLighting,
    SliceZScore,
)

__all__ = ["CLAHEd", "N4BiasFieldCorrectiond", "PercentileNormalized", "RandLightingd", "SliceZScored"]


class CLAHEd(PerKeyd):
    """Dictionary version of :class:`CLAHE` (apply to image keys only).

    Args:
        keys: keys to transform.
        clip_limit: see :class:`CLAHE`.
        kernel_size: see :class:`CLAHE`.
        nbins: see :class:`CLAHE`.
        allow_missing_keys: skip absent keys.

    Example:
        >>> import numpy as np
        >>> CLAHEd("image")({"image": np.random.rand(1, 32, 32)})["image"].shape
        (1, 32, 32)

    """

    backend = CLAHE.backend

    def __init__(
        self,
        keys: KeysCollection,
        clip_limit: float = 0.01,
        kernel_size: int | tuple[int, int] | None = None,
        nbins: int = 256,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.transform = CLAHE(clip_limit, kernel_size, nbins)


class PercentileNormalized(PerKeyd):
    """Dictionary version of :class:`PercentileNormalize`.

    Args:
        keys: keys to transform.
        lower: lower percentile.
        upper: upper percentile.
        mode: ``"zscore"`` or ``"minmax"``.
        channel_wise: statistics per channel.
        allow_missing_keys: skip absent keys.

    Example:
        >>> import numpy as np
        >>> out = PercentileNormalized("image")({"image": np.random.rand(1, 8, 8)})

    """

    backend = PercentileNormalize.backend

    def __init__(
        self,
        keys: KeysCollection,
        lower: float = 0.5,
        upper: float = 99.5,
        mode: Literal["zscore", "minmax"] = "zscore",
        channel_wise: bool = False,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.transform = PercentileNormalize(lower, upper, mode, channel_wise)


class SliceZScored(PerKeyd):
    """Dictionary version of :class:`SliceZScore` (image keys only).

    Args:
        keys: keys to transform.
        lower: lower percentile.
        upper: upper percentile.
        allow_missing_keys: skip absent keys.

    Example:
        >>> import numpy as np
        >>> out = SliceZScored("image")({"image": np.random.rand(1, 8, 8)})

    """

    backend = SliceZScore.backend

    def __init__(
        self, keys: KeysCollection, lower: float = 0.5, upper: float = 99.5, allow_missing_keys: bool = False
    ):
        super().__init__(keys, allow_missing_keys)
        self.transform = SliceZScore(lower, upper)


class N4BiasFieldCorrectiond(PerKeyd):
    """Dictionary version of :class:`N4BiasFieldCorrection`.

    Args:
        keys: keys to transform.
        n_iterations: iterations per fitting level.
        mask_fraction: mask threshold as a fraction of the slice maximum.
        allow_missing_keys: skip absent keys.

    Example:
        >>> out = N4BiasFieldCorrectiond("image")(sample)  # doctest: +SKIP

    """

    backend = N4BiasFieldCorrection.backend

    def __init__(
        self,
        keys: KeysCollection,
        n_iterations: tuple[int, ...] = (50, 50, 50, 50),
        mask_fraction: float = 0.05,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.transform = N4BiasFieldCorrection(n_iterations, mask_fraction)


class RandLightingd(SeedsInner, RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandLighting`: one draw applied to every selected key.

    Args:
        keys: image keys (never labels).
        max_lighting: see :class:`RandLighting`.
        prob: probability of applying.
        allow_missing_keys: skip absent keys.

    Example:
        >>> import numpy as np
        >>> out = RandLightingd("image", prob=1.0)({"image": np.random.rand(1, 8, 8)})

    """

    backend = RandLighting.backend

    def __init__(
        self,
        keys: KeysCollection,
        max_lighting: float = 0.4,
        prob: float = 0.75,
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.transform = RandLighting(max_lighting, prob=1.0)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """Apply one draw to every selected key.

        Args:
            data: the sample.

        Returns:
            A new dictionary.

        """
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        self.transform.randomize()
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key], randomize=False)
        return d
