"""Shared plumbing of the dictionary transforms: one array transform applied to every selected key."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.transforms import InvertibleTransform, MapTransform


class PerKeyd(MapTransform):
    """Apply ``self.transform`` to every selected key (subclasses build ``self.transform``)."""

    transform: Any

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Apply to every selected key.

        Args:
            data: the sample.

        Returns:
            A new dictionary (arrays of other keys are shared, not copied).

        """
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


class InvertsPerKey(InvertibleTransform):  # used with MapTransform, which provides key_iterator
    """Mixin for map transforms over one array transform: undo ``self.transform`` on every selected key."""

    transform: Any

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Undo the transform on every selected key.

        Args:
            data: a transformed sample.

        Returns:
            A new dictionary.

        """
        d = dict(data)
        for key in self.key_iterator(d):  # type: ignore[attr-defined]
            d[key] = self.transform.inverse(d[key])
        return d


class SeedsInner:
    """Mixin for random dictionary transforms holding an inner random array transform ``self.transform``."""

    transform: Any

    def set_random_state(self, seed: int | None = None, state: Any = None) -> Any:
        """Seed this transform and its inner one.

        Args:
            seed: random seed.
            state: a ``numpy.random.RandomState``.

        Returns:
            self.

        """
        super().set_random_state(seed, state)  # type: ignore[misc]
        self.transform.set_random_state(seed, state)
        return self


class InvertiblePerKeyd(PerKeyd, InvertsPerKey):
    """:class:`PerKeyd` whose transform is invertible."""
