"""Motion-style augmentations (dictionary versions)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import ensure_tuple_rep

from cardiacseg.transforms._dict import InvertsPerKey, SeedsInner
from cardiacseg.transforms.motion.array import RandRespiratoryMotion, RandSliceMisalignment

__all__ = ["RandRespiratoryMotiond", "RandSliceMisalignmentd"]


class RandRespiratoryMotiond(SeedsInner, RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandRespiratoryMotion`; apply to image keys only (labels stay true).

    Args:
        keys: image keys.
        prob: probability of applying.
        kwargs: see :class:`RandRespiratoryMotion`.

    Example:
        >>> t = RandRespiratoryMotiond("image", prob=0.3, amplitude_px=(2, 6))

    """

    backend = RandRespiratoryMotion.backend

    def __init__(
        self, keys: KeysCollection, prob: float = 0.1, allow_missing_keys: bool = False, **kwargs: Any
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.transform = RandRespiratoryMotion(prob=1.0, **kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
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
        first = True
        for key in self.key_iterator(d):
            if first:
                self.transform.randomize(shape=d[key].shape[1:3])
                first = False
            d[key] = self.transform(d[key], randomize=False)
        return d


class RandSliceMisalignmentd(SeedsInner, RandomizableTransform, MapTransform, InvertsPerKey):
    """Dictionary version of :class:`RandSliceMisalignment`: the same shifts for image and label.

    Args:
        keys: keys to shift.
        prob: probability of applying.
        max_shift_px: largest shift per axis.
        slice_prob: probability that a slice moves.
        mode: per key; default bilinear for the first key, nearest for the others.
        allow_missing_keys: skip absent keys.

    Example:
        >>> t = RandSliceMisalignmentd(("image", "label"), prob=0.3, max_shift_px=4)

    """

    backend = RandSliceMisalignment.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.1,
        max_shift_px: float = 5.0,
        slice_prob: float = 0.5,
        mode: Sequence[str] | str | None = None,
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        n = len(self.keys)
        self.modes = (
            (["bilinear"] + ["nearest"] * (n - 1)) if mode is None else list(ensure_tuple_rep(mode, n))
        )
        self.transform = RandSliceMisalignment(prob=1.0, max_shift_px=max_shift_px, slice_prob=slice_prob)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Shift the slices of every selected key by the same draw.

        Args:
            data: the sample.

        Returns:
            A new dictionary.

        """
        d = dict(data)
        self.randomize(None)
        keys = list(self.key_iterator(d))
        n_slices = d[keys[0]].shape[3] if keys and d[keys[0]].ndim == 4 else 0
        self.transform.randomize(n_slices=n_slices)
        if not self._do_transform:
            self.transform.shifts = self.transform.shifts * 0
        for key, mode in zip(self.keys, self.modes, strict=True):
            if key in d:
                d[key] = self.transform(d[key], randomize=False, mode=mode)
        return d
