"""Spatial transforms (dictionary versions): one decision, applied to every key."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import InvertibleTransform, MapTransform
from monai.utils import ensure_tuple_rep

from cardiacseg.transforms._dict import InvertiblePerKeyd, InvertsPerKey
from cardiacseg.transforms.spatial.array import HeartCrop, InPlaneSpacing, NormalizeSAXOrientation

__all__ = ["HeartCropd", "InPlaneSpacingd", "NormalizeSAXOrientationd"]


class InPlaneSpacingd(MapTransform, InvertibleTransform):
    """Dictionary version of :class:`InPlaneSpacing` with a mode per key.

    Args:
        keys: keys to resample.
        pixdim_mm: target in-plane spacing.
        mode: per key, default third-order spline for the first key and nearest for the others.
        source_spacing_mm: spacing to assume when unknown.
        allow_missing_keys: skip absent keys.

    Example:
        >>> t = InPlaneSpacingd(("image", "label"), 1.25, mode=(3, "nearest"))

    """

    def __init__(
        self,
        keys: KeysCollection,
        pixdim_mm: float | Sequence[float] = 1.25,
        mode: Sequence[str | int] | str | int | None = None,
        source_spacing_mm: Sequence[float] | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        n = len(self.keys)
        modes = ([3] + ["nearest"] * (n - 1)) if mode is None else list(ensure_tuple_rep(mode, n))
        self.transforms = {
            k: InPlaneSpacing(pixdim_mm, mode=m, source_spacing_mm=source_spacing_mm)
            for k, m in zip(self.keys, modes, strict=True)
        }

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        """Resample every selected key.

        Args:
            data: the sample.

        Returns:
            A new dictionary.

        """
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transforms[key](d[key])
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        """Undo the resampling of every selected key.

        Args:
            data: a transformed sample.

        Returns:
            A new dictionary.

        """
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transforms[key].inverse(d[key])
        return d


class HeartCropd(MapTransform, InvertsPerKey):
    """Dictionary version of :class:`HeartCrop`: one centre for all keys.

    The centre comes from ``label_key`` when that key is present and has foreground (training), else
    from the temporal variance of ``image_key`` (inference).

    Args:
        keys: keys to crop.
        roi_size: in-plane output size.
        image_key: key used for label-free localisation.
        label_key: key used when present, or ``None``.
        sigma_mm: see :func:`locate_heart`.
        centre_key: key holding a precomputed ``(x, y)`` centre (e.g. of a patient's whole label volume);
            used first when present.
        allow_missing_keys: skip absent keys.

    Example:
        >>> t = HeartCropd(("image", "label"), roi_size=(128, 128))

    """

    def __init__(
        self,
        keys: KeysCollection,
        roi_size: Sequence[int] | int = (128, 128),
        image_key: str = "image",
        label_key: str | None = "label",
        sigma_mm: float = 12.0,
        centre_key: str | None = "centre",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.transform = HeartCrop(roi_size, sigma_mm)
        self.image_key = image_key
        self.label_key = label_key
        self.centre_key = centre_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Crop every selected key around one centre.

        Args:
            data: the sample.

        Returns:
            A new dictionary.

        """
        d = dict(data)
        if self.centre_key is not None and d.get(self.centre_key) is not None:
            centre = tuple(float(c) for c in d[self.centre_key])
        else:
            label = d.get(self.label_key) if self.label_key is not None else None
            centre, _ = self.transform.find_centre(d[self.image_key], label)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key], centre=centre)
        return d


class NormalizeSAXOrientationd(InvertiblePerKeyd):
    """Dictionary version of :class:`NormalizeSAXOrientation` (each key reoriented from its own affine).

    Args:
        keys: keys to reorient.
        allow_missing_keys: skip absent keys.

    Example:
        >>> t = NormalizeSAXOrientationd(("image", "label"))

    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.transform = NormalizeSAXOrientation()
