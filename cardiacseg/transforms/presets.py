"""Augmentation presets: each function returns a MONAI ``Compose`` over ``("image", "label")``.

Images are expected intensity-normalised (``PercentileNormalize``) and channel-first; labels hold
integer classes and always get nearest-neighbour interpolation and the same spatial draw as the image.

- :func:`s1`, :func:`s2`: the two fastai settings of the 7T transfer-learning study.
- :func:`nnunet`: nnU-Net's default 2D augmentation with its probabilities.
- :func:`lvrv`: the light set of the LV/RV pipeline study.
- :func:`motion`: :func:`nnunet` plus respiratory ghosting and (3D) slice misalignment.

Pictures of each on a real ACDC slice: ``docs/images/transforms/``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from monai.transforms import (
    Compose,
    Identityd,
    OneOf,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandRotate90d,
    RandRotated,
    RandScaleIntensityd,
    RandScaleIntensityFixedMeand,
    RandSimulateLowResolutiond,
    RandZoomd,
)

from cardiacseg.transforms.intensity.dictionary import RandLightingd
from cardiacseg.transforms.motion.dictionary import RandRespiratoryMotiond, RandSliceMisalignmentd

__all__ = ["PRESETS", "get_preset", "lvrv", "motion", "nnunet", "s1", "s2"]

Keys = Sequence[str]


def _split(keys: Keys) -> tuple[str, list[str]]:
    if not keys:
        raise ValueError("keys must name at least the image")
    return keys[0], list(keys)


def _modes(keys: Keys, image: str, interp: str = "bilinear") -> list[str]:
    return [interp if k == image else "nearest" for k in keys]


def _rotate_zoom(
    keys: Keys,
    spatial_dims: int,
    max_rotate_rad: float,
    rotate_prob: float,
    zoom: tuple[float, float],
    zoom_prob: float,
) -> list[Callable[..., object]]:
    """Rotate in plane (about the slice axis in 3D) and zoom isotropically; nearest for labels."""
    image, ks = _split(keys)
    return [
        RandRotated(
            ks,
            range_x=0.0 if spatial_dims == 3 else max_rotate_rad,
            range_z=max_rotate_rad if spatial_dims == 3 else 0.0,
            prob=rotate_prob,
            mode=_modes(ks, image),
            padding_mode="zeros",
            keep_size=True,
        ),
        RandZoomd(
            ks,
            prob=zoom_prob,
            min_zoom=zoom[0],
            max_zoom=zoom[1],
            mode=_modes(ks, image),
            padding_mode="constant",
            keep_size=True,
        ),
    ]


def _fastai_set(keys: Keys, spatial_dims: int, max_rotate_deg: float) -> list[Callable[..., object]]:
    """Fastai's affine (rotation, zoom in 1-1.2, zero padding) and lighting, each with probability 0.75."""
    image, _ = _split(keys)
    return [
        *_rotate_zoom(keys, spatial_dims, math.radians(max_rotate_deg), 0.75, (1.0, 1.2), 0.75),
        RandLightingd(image, max_lighting=0.4, prob=0.75),
    ]


def s1(keys: Keys = ("image", "label"), spatial_dims: int = 2) -> Compose:
    """Build fastai setting s1 (7T study): no flip, rotation 20°, lighting 0.4, zoom 1.2, zero padding.

    fastai applies the affine part and the lighting each with probability 0.75; its default perspective
    warp is not reproduced.

    Args:
        keys: image key first, then label keys.
        spatial_dims: 2 (in-plane rotation) or 3 (rotation about the slice axis).

    Returns:
        A ``Compose``. Lighting works in logit space on [0, 1]; other ranges (raw DICOM values, z-scores)
        are mapped to [0, 1] by the image's min/max and back (:class:`RandLighting`).

    Example:
        >>> aug = s1()
        >>> _ = aug.set_random_state(0)

    """
    return Compose(_fastai_set(keys, spatial_dims, 20.0))


def s2(keys: Keys = ("image", "label"), spatial_dims: int = 2) -> Compose:
    """Build fastai setting s2: s1 plus left-right flips and rotations of 90° (rotation ranges over ±90°).

    90° rotations swap the in-plane axes: use square inputs (e.g. after :class:`HeartCrop`).

    Args:
        keys: image key first, then label keys.
        spatial_dims: 2 or 3.

    Returns:
        A ``Compose``.

    Example:
        >>> aug = s2()

    """
    _, ks = _split(keys)
    return Compose(
        [
            RandFlipd(ks, prob=0.5, spatial_axis=0),
            RandRotate90d(ks, prob=0.5, max_k=3, spatial_axes=(0, 1)),
            *_fastai_set(keys, spatial_dims, 90.0),
        ]
    )


def nnunet(keys: Keys = ("image", "label"), spatial_dims: int = 2) -> Compose:
    """nnU-Net's default augmentation (2D configuration) with its probabilities.

    Rotation ±180° (p 0.2), scaling 0.7-1.4 (p 0.2), Gaussian noise variance 0-0.1 (p 0.1), Gaussian
    blur sigma 0.5-1 (p 0.2), multiplicative brightness 0.75-1.25 (p 0.15), contrast 0.75-1.25 (p 0.15),
    low-resolution simulation 0.5-1 (p 0.25), gamma 0.7-1.5 (p 0.3, and inverted p 0.1), mirroring of
    each in-plane axis (p 0.5). For 3D stacks of thick short-axis slices rotation is about the slice axis.

    Args:
        keys: image key first, then label keys.
        spatial_dims: 2 or 3.

    Returns:
        A ``Compose``.

    Example:
        >>> aug = nnunet()

    """
    image, ks = _split(keys)
    return Compose(
        [
            *_rotate_zoom(keys, spatial_dims, math.pi, 0.2, (0.7, 1.4), 0.2),
            RandGaussianNoised(image, prob=0.1, mean=0.0, std=math.sqrt(0.1), sample_std=True),
            RandGaussianSmoothd(
                image,
                prob=0.2,
                sigma_x=(0.5, 1.0),
                sigma_y=(0.5, 1.0),
                sigma_z=(0.0, 0.0) if spatial_dims == 3 else (0.5, 1.0),
            ),
            RandScaleIntensityd(image, factors=0.25, prob=0.15),
            RandScaleIntensityFixedMeand(image, prob=0.15, factors=0.25, preserve_range=True),
            RandSimulateLowResolutiond(
                image,
                prob=0.25,
                zoom_range=(0.5, 1.0),
                upsample_mode="trilinear" if spatial_dims == 3 else "bilinear",
            ),
            RandAdjustContrastd(image, prob=0.1, gamma=(0.7, 1.5), invert_image=True, retain_stats=True),
            RandAdjustContrastd(image, prob=0.3, gamma=(0.7, 1.5), invert_image=False, retain_stats=True),
            RandFlipd(ks, prob=0.5, spatial_axis=0),
            RandFlipd(ks, prob=0.5, spatial_axis=1),
        ]
    )


def lvrv(keys: Keys = ("image", "label"), spatial_dims: int = 2) -> Compose:
    """Build the light set of the LV/RV pipeline study: ±5° rotation, ±5 px translation, zoom 0.8-1.2, flips.

    The whole set is applied to about half of the samples (the other half pass unchanged).

    Args:
        keys: image key first, then label keys.
        spatial_dims: 2 or 3.

    Returns:
        A ``Compose``.

    Example:
        >>> aug = lvrv()

    """
    image, ks = _split(keys)
    rot = math.radians(5)
    rotate_range = (rot,) if spatial_dims == 2 else (0.0, 0.0, rot)
    translate = (5, 5) if spatial_dims == 2 else (5, 5, 0)
    scale = (0.2, 0.2) if spatial_dims == 2 else (0.2, 0.2, 0.0)
    augment = Compose(
        [
            RandAffined(
                ks,
                prob=1.0,
                rotate_range=rotate_range,
                translate_range=translate,
                scale_range=scale,
                mode=_modes(ks, image),
                padding_mode="zeros",
            ),
            RandFlipd(ks, prob=0.5, spatial_axis=0),
            RandFlipd(ks, prob=0.5, spatial_axis=1),
        ]
    )
    return Compose([OneOf([augment, Identityd(ks)], weights=[0.5, 0.5])])


def motion(keys: Keys = ("image", "label"), spatial_dims: int = 2) -> Compose:
    """nnU-Net's set plus motion: respiratory ghosting (p 0.3) and, for 3D stacks, slice misalignment (p 0.3).

    Args:
        keys: image key first, then label keys.
        spatial_dims: 2 or 3 (slice misalignment needs a stack).

    Returns:
        A ``Compose``.

    Example:
        >>> aug = motion(spatial_dims=3)

    """
    image, ks = _split(keys)
    extra: list[Callable[..., object]] = [
        RandRespiratoryMotiond(
            image, prob=0.3, amplitude_px=(2.0, 10.0), corrupted_fraction=(0.1, 0.4), max_rotation_deg=3.0
        )
    ]
    if spatial_dims == 3:
        extra.append(
            RandSliceMisalignmentd(
                ks,
                prob=0.3,
                max_shift_px=5.0,
                slice_prob=0.5,
                mode=["bilinear" if k == image else "nearest" for k in ks],
            )
        )
    return Compose([*nnunet(keys, spatial_dims).transforms, *extra])


#: Preset functions by name.
PRESETS: dict[str, Callable[..., Compose]] = {
    "s1": s1,
    "s2": s2,
    "nnunet": nnunet,
    "lvrv": lvrv,
    "motion": motion,
}


def get_preset(name: str, keys: Keys = ("image", "label"), spatial_dims: int = 2) -> Compose:
    """Build a preset by name.

    Args:
        name: one of :data:`PRESETS`.
        keys: image key first, then label keys.
        spatial_dims: 2 or 3.

    Returns:
        The ``Compose``.

    Raises:
        ValueError: unknown name.

    Example:
        >>> get_preset("nnunet").__class__.__name__
        'Compose'

    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name](keys, spatial_dims)
