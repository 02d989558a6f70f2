"""Intensity transforms (array versions): CLAHE, percentile normalisation, N4 bias correction, lighting.

:func:`percentile_zscore` is *the* intensity pre-processing of the 2D segmentation models, defined once:
training and validation (:mod:`cardiacseg.engines.pipelines`) apply it through :class:`SliceZScore` to whole
slices before the heart crop; :class:`~cardiacseg.inferers.SlicePredictor` applies it inside its heart
crop (default) or, with ``zscore_region="slice"``, through :class:`SliceZScore` exactly as in training.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from monai.config import NdarrayOrTensor
from monai.transforms import (
    ClipIntensityPercentiles,
    NormalizeIntensity,
    RandomizableTransform,
    ScaleIntensity,
)
from monai.transforms.transform import Transform
from monai.utils import TransformBackends
from monai.utils.type_conversion import convert_to_dst_type, convert_to_numpy

from cardiacseg.transforms._slices import map_inplane

__all__ = [
    "CLAHE",
    "N4BiasFieldCorrection",
    "PercentileNormalize",
    "RandLighting",
    "SliceZScore",
    "percentile_zscore",
]


class CLAHE(Transform):
    """Contrast-limited adaptive histogram equalisation (scikit-image) of every 2D slice.

    Each in-plane slice of a channel-first ``(C, X, Y[, Z])`` image is min-max scaled to [0, 1] and
    equalised with :func:`skimage.exposure.equalize_adapthist`; the output lies in [0, 1]. MetaTensor
    meta-data (affine, applied operations) is kept.

    Args:
        clip_limit: normalised clip limit (higher = more contrast), as in scikit-image.
        kernel_size: tile size in pixels (int or pair); ``None`` = 1/8 of the slice, scikit-image's default.
        nbins: histogram bins.

    Example:
        >>> import numpy as np
        >>> out = CLAHE(clip_limit=0.02)(np.random.rand(1, 64, 64).astype(np.float32))
        >>> float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        True

    """

    backend = [TransformBackends.NUMPY]

    def __init__(
        self, clip_limit: float = 0.01, kernel_size: int | tuple[int, int] | None = None, nbins: int = 256
    ):
        if clip_limit <= 0:
            raise ValueError(f"clip_limit must be positive, got {clip_limit}")
        self.clip_limit = clip_limit
        self.kernel_size = kernel_size
        self.nbins = nbins

    def _one(self, s: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        from skimage.exposure import equalize_adapthist

        lo, hi = float(s.min()), float(s.max())
        if hi <= lo:
            return np.zeros_like(s, dtype=np.float64)
        return np.asarray(
            equalize_adapthist(
                (s - lo) / (hi - lo),
                kernel_size=self.kernel_size,
                clip_limit=self.clip_limit,
                nbins=self.nbins,
            )
        )

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Equalise ``img`` of shape ``(C, X, Y[, Z])``.

        Args:
            img: channel-first image.

        Returns:
            The equalised image, same type and meta-data.

        """
        out = map_inplane(convert_to_numpy(img), self._one)
        return convert_to_dst_type(
            out, img, dtype=torch.float32 if isinstance(img, torch.Tensor) else np.float32
        )[0]


class PercentileNormalize(Transform):
    """Clip to intensity percentiles (default 0.5-99.5 %), then z-score or min-max to [0, 1].

    Built from MONAI's :class:`~monai.transforms.ClipIntensityPercentiles`,
    :class:`~monai.transforms.NormalizeIntensity` and :class:`~monai.transforms.ScaleIntensity`.

    Args:
        lower: lower percentile.
        upper: upper percentile.
        mode: ``"zscore"`` (zero mean, unit variance) or ``"minmax"`` ([0, 1]).
        channel_wise: statistics per channel (per phase for cine input).

    Example:
        >>> import numpy as np
        >>> x = np.random.rand(1, 32, 32).astype(np.float32) * 800
        >>> y = PercentileNormalize(mode="minmax")(x)
        >>> round(float(y.min()), 3), round(float(y.max()), 3)
        (0.0, 1.0)

    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        lower: float = 0.5,
        upper: float = 99.5,
        mode: Literal["zscore", "minmax"] = "zscore",
        channel_wise: bool = False,
    ):
        if not 0 <= lower < upper <= 100:
            raise ValueError(f"need 0 <= lower < upper <= 100, got {lower}, {upper}")
        if mode not in ("zscore", "minmax"):
            raise ValueError(f"mode must be 'zscore' or 'minmax', got {mode!r}")
        self.clip = ClipIntensityPercentiles(lower=lower, upper=upper, channel_wise=channel_wise)
        self.norm: Transform = (
            NormalizeIntensity(channel_wise=channel_wise)
            if mode == "zscore"
            else ScaleIntensity(minv=0.0, maxv=1.0, channel_wise=channel_wise)
        )

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Normalise ``img``.

        Args:
            img: channel-first image.

        Returns:
            The normalised image.

        """
        out: NdarrayOrTensor = self.norm(self.clip(img))
        return out


#: torch.quantile's largest input (elements)
_QUANTILE_MAX_NUMEL = 2**24


def percentile_zscore(slices: torch.Tensor, lower: float = 0.5, upper: float = 99.5) -> torch.Tensor:
    """Per-slice clip to percentiles, then z-score: :class:`PercentileNormalize` vectorised over slices.

    The statistics of each slice are its own (the clipped slice's mean and population standard deviation;
    a constant slice becomes 0).

    Args:
        slices: ``(N, 1, X, Y)``.
        lower: lower percentile.
        upper: upper percentile.

    Returns:
        The normalised slices (a new float32 tensor).

    Example:
        >>> x = torch.rand(3, 1, 16, 16) * 500
        >>> y = percentile_zscore(x)
        >>> bool(torch.allclose(y[1], torch.as_tensor(PercentileNormalize(mode="zscore")(x[1])), atol=1e-5))
        True

    """
    out = torch.empty_like(slices, dtype=torch.float32)
    n_px = max(1, int(np.prod(slices.shape[1:])))
    step = max(1, min(64, _QUANTILE_MAX_NUMEL // n_px))  # torch.quantile's input size is limited
    q_at = torch.tensor([lower / 100.0, upper / 100.0])
    for i in range(0, slices.shape[0], step):
        part = slices[i : i + step]
        flat = part.reshape(part.shape[0], -1).float()
        q = torch.quantile(flat, q_at, dim=1, keepdim=True)
        c = torch.minimum(torch.maximum(flat, q[0]), q[1])
        std = c.std(dim=1, unbiased=False, keepdim=True)
        z = (c - c.mean(dim=1, keepdim=True)) / torch.where(std > 0, std, torch.ones_like(std))
        out[i : i + step] = z.reshape(part.shape)
    return out


class SliceZScore(Transform):
    """Z-score every in-plane slice over the whole slice (after clipping to percentiles).

    The intensity pre-processing of cardiacseg's 2D models, one definition for training and inference:
    each ``(X, Y)`` slice of a channel-first ``(C, X, Y)`` slice or ``(C, X, Y, Z)`` stack (every channel,
    e.g. every phase, and every slice on its own) is clipped to its ``lower``-``upper`` percentiles and
    z-scored with its own mean and standard deviation (:func:`percentile_zscore`). Apply it to the whole
    slice, *before* any heart crop: the statistics then do not depend on where the crop lies, and padding
    added by the crop is 0 (the slice mean) in training and at inference alike.

    Args:
        lower: lower percentile.
        upper: upper percentile.

    Example:
        >>> x = np.random.rand(2, 32, 32, 3).astype(np.float32) * 800
        >>> y = SliceZScore()(x)
        >>> ref = PercentileNormalize(mode="zscore")(x[1:2, :, :, 2])[0]
        >>> bool(np.allclose(y[1, :, :, 2], ref, atol=1e-5))
        True

    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, lower: float = 0.5, upper: float = 99.5):
        if not 0 <= lower < upper <= 100:
            raise ValueError(f"need 0 <= lower < upper <= 100, got {lower}, {upper}")
        self.lower, self.upper = lower, upper

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Normalise every slice of ``img``.

        Args:
            img: ``(C, X, Y)`` or ``(C, X, Y, Z)``.

        Returns:
            The normalised image, float32, of the input's type (MetaTensor meta-data kept).

        Raises:
            ValueError: fewer than 3 dimensions.

        """
        if img.ndim < 3:
            raise ValueError(f"SliceZScore needs a channel-first (C, X, Y[, Z]) image, got shape {img.shape}")
        t = torch.as_tensor(np.asarray(img)) if isinstance(img, np.ndarray) else img.as_subclass(torch.Tensor)
        moved = t.movedim((1, 2), (-2, -1))  # (C, [Z,] X, Y)
        z = percentile_zscore(moved.reshape(-1, 1, *moved.shape[-2:]), self.lower, self.upper)
        out = z.reshape(moved.shape).movedim((-2, -1), (1, 2)).contiguous()
        res: NdarrayOrTensor = convert_to_dst_type(out, img, dtype=torch.float32)[0]
        return res


class N4BiasFieldCorrection(Transform):
    """N4 bias-field correction (ITK) of every 2D slice, with an Otsu-style foreground mask.

    ITK is imported lazily (install the ``itk`` extra). Slices are corrected independently, which suits
    short-axis stacks of a few thick slices better than a 3D fit.

    Args:
        n_iterations: maximum iterations per fitting level (the number of levels is its length).
        mask_fraction: pixels above this fraction of the slice maximum form the fitting mask.
        control_points: B-spline control points per axis at the first level.
        convergence_threshold: N4 convergence threshold.

    Example:
        >>> corrected = N4BiasFieldCorrection()(image)  # doctest: +SKIP

    """

    backend = [TransformBackends.NUMPY]

    def __init__(
        self,
        n_iterations: tuple[int, ...] = (50, 50, 50, 50),
        mask_fraction: float = 0.05,
        control_points: int = 8,
        convergence_threshold: float = 1e-4,
    ):
        self.n_iterations = list(n_iterations)
        self.mask_fraction = mask_fraction
        self.control_points = control_points
        self.convergence_threshold = convergence_threshold

    def _one(self, s: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        import itk

        # N4 models v = u * b on positive values: shift only when there are non-positive ones
        offset = 1e-3 - float(s.min()) if float(s.min()) <= 0 else 0.0
        scale = float(s.max()) + offset  # N4 is multiplicative: fit on values scaled to <= 1
        shifted = np.ascontiguousarray((s + offset) / scale, dtype=np.float32)
        mask = (shifted > self.mask_fraction * float(shifted.max())).astype(np.uint8)
        if mask.sum() < 16:
            return s
        image_t = itk.Image[itk.F, 2]
        mask_t = itk.Image[itk.UC, 2]
        # explicit float template: the functional API picks a short-integer instantiation and truncates
        n4 = itk.N4BiasFieldCorrectionImageFilter[image_t, mask_t, image_t].New(
            Input=itk.image_from_array(shifted), MaskImage=itk.image_from_array(mask)
        )
        n4.SetMaximumNumberOfIterations(self.n_iterations)
        n4.SetNumberOfFittingLevels(len(self.n_iterations))
        n4.SetNumberOfControlPoints([self.control_points, self.control_points])
        n4.SetConvergenceThreshold(self.convergence_threshold)
        n4.Update()
        out = n4.GetOutput()
        return np.asarray(itk.array_from_image(out), dtype=np.float32) * scale - offset

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Correct ``img`` of shape ``(C, X, Y[, Z])``.

        Args:
            img: channel-first image.

        Returns:
            The corrected image, same type and meta-data.

        """
        out = map_inplane(convert_to_numpy(img), self._one)
        return convert_to_dst_type(
            out, img, dtype=torch.float32 if isinstance(img, torch.Tensor) else np.float32
        )[0]


#: Overshoot beyond [0, 1] still treated as a [0, 1] image by :class:`RandLighting` (interpolation).
RANGE_TOLERANCE = 0.05


class RandLighting(RandomizableTransform):
    """fastai-style lighting: random brightness and contrast in logit space.

    Written for images in [0, 1] (fastai). Any other range (raw DICOM intensities, z-scores) is mapped to
    [0, 1] by the image's own min/max, lit, and mapped back to that range, so presets s1/s2 work on any
    input instead of turning it white.

    ``x' = sigmoid(logit(x) * c + logit(b))`` with brightness ``b ~ U(0.5 (1 - L), 0.5 (1 + L))`` and
    contrast ``c`` log-uniform in ``[1 - L, 1 / (1 - L)]`` for ``max_lighting = L``, the "lighting"
    augmentation of the 7T transfer paper's fastai set-up (L = 0.4).

    Args:
        max_lighting: ``L`` in [0, 1).
        prob: probability of applying.

    Example:
        >>> import numpy as np
        >>> t = RandLighting(0.4, prob=1.0)
        >>> t.set_random_state(0)  # doctest: +ELLIPSIS
        <...>
        >>> out = t(np.full((1, 4, 4), 0.5, np.float32))
        >>> bool(0.0 < float(out.min()) < 1.0)
        True

    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, max_lighting: float = 0.4, prob: float = 0.75):
        RandomizableTransform.__init__(self, prob)
        if not 0 <= max_lighting < 1:
            raise ValueError(f"max_lighting must be in [0, 1), got {max_lighting}")
        self.max_lighting = max_lighting
        self.brightness = 0.5
        self.contrast = 1.0

    def randomize(self, data: object = None) -> None:
        """Draw brightness and contrast.

        Args:
            data: unused.

        """
        super().randomize(None)
        if not self._do_transform:
            return
        L = self.max_lighting
        self.brightness = float(self.R.uniform(0.5 * (1 - L), 0.5 * (1 + L)))
        self.contrast = float(np.exp(self.R.uniform(np.log(1 - L), -np.log(1 - L))))

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """Apply lighting to ``img`` (values are clipped to [0, 1] first).

        Args:
            img: channel-first image (any range; see the class docstring).
            randomize: draw new parameters.

        Returns:
            The transformed image.

        """
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        x = convert_to_numpy(img).astype(np.float64)
        # Images outside [0, 1] (raw DICOM values, z-scores as in the training pipeline) are mapped to
        # [0, 1] by their own min/max, lit, and mapped back, so the lighting never saturates them white.
        lo, hi = float(x.min()), float(x.max())
        rescale = (lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE) and hi > lo
        if rescale:
            x = (x - lo) / (hi - lo)
        eps = 1e-4
        x = np.clip(x, eps, 1 - eps)
        logit = np.log(x / (1 - x)) * self.contrast + np.log(self.brightness / (1 - self.brightness))
        out = 1.0 / (1.0 + np.exp(-logit))
        if rescale:
            out = out * (hi - lo) + lo
        out = out.astype(np.float32)
        return convert_to_dst_type(
            out, img, dtype=torch.float32 if isinstance(img, torch.Tensor) else np.float32
        )[0]
