"""Pre-processing and augmentation pipelines of the training bundles (named by dotted path in configs)."""

from __future__ import annotations

from monai.transforms import Compose, EnsureTyped, RandSpatialCropd

from cardiacseg.transforms.intensity.dictionary import SliceZScored
from cardiacseg.transforms.presets import get_preset
from cardiacseg.transforms.spatial.dictionary import HeartCropd

__all__ = ["train_transforms", "val_transforms"]


def val_transforms(crop_size: int = 160, keys: tuple[str, ...] = ("image", "label")) -> Compose:
    """Deterministic pre-processing of 2D slices: percentile z-score of the whole slice, heart-centred crop.

    The z-score is :class:`~cardiacseg.transforms.SliceZScore`, which
    ``SlicePredictor(zscore_region="slice")`` applies identically at inference (the predictor's default
    z-scores inside its crop: see ``docs/benchmarks/preprocessing_match.md``).

    Items carry ``image`` and ``label`` as ``(1, X, Y)`` and ``centre`` (the patient's heart centre, see
    :func:`cardiacseg.data.datalist.ssl4mis_slice_items`).

    Args:
        crop_size: side of the square heart crop in pixels.
        keys: image key first, then label keys.

    Returns:
        A MONAI ``Compose``.

    Example:
        >>> t = val_transforms(160)

    """
    return Compose(
        [
            SliceZScored(keys[0]),
            HeartCropd(keys, roi_size=(crop_size, crop_size), centre_key="centre"),
            EnsureTyped(keys, track_meta=False),
        ]
    )


def train_transforms(
    crop_size: int = 160,
    patch_size: int = 128,
    preset: str = "nnunet",
    keys: tuple[str, ...] = ("image", "label"),
) -> Compose:
    """:func:`val_transforms` followed by an augmentation preset and a random patch of ``patch_size``.

    The random patch inside the heart crop makes the network robust to an off-centre label-free crop at
    inference.

    Args:
        crop_size: heart crop side (pixels).
        patch_size: training patch side (pixels).
        preset: name of an augmentation preset (:mod:`cardiacseg.transforms.presets`).
        keys: image key first, then label keys.

    Returns:
        A MONAI ``Compose``.

    Example:
        >>> t = train_transforms(160, 128, "nnunet")

    """
    return Compose(
        [
            SliceZScored(keys[0]),
            HeartCropd(keys, roi_size=(crop_size, crop_size), centre_key="centre"),
            *get_preset(preset, keys, spatial_dims=2).transforms,
            RandSpatialCropd(keys, roi_size=(patch_size, patch_size), random_size=False),
            EnsureTyped(keys, track_meta=False),
        ]
    )
