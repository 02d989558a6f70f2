"""Spatial transforms (array versions): in-plane resampling, heart-centred crop, short-axis orientation.

All work on channel-first ``(C, X, Y)`` or ``(C, X, Y, Z)`` tensors (cine phases may be channels) and are
invertible through MONAI's applied-operations mechanism.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from monai.data import MetaTensor
from monai.transforms import BorderPad, Flip, InvertibleTransform, Rotate90, Spacing, SpatialCrop
from monai.transforms.transform import Transform
from monai.utils import TraceKeys, TransformBackends
from monai.utils.type_conversion import convert_to_numpy
from scipy import ndimage

from cardiacseg.transforms.utils import SPACING_UNKNOWN, inplane_spacing_mm

__all__ = ["APEX_DIRECTION_RAS", "HeartCrop", "InPlaneSpacing", "NormalizeSAXOrientation", "locate_heart"]

#: Approximate direction of the LV apex from the base in RAS+ patient coordinates (left, anterior, inferior).
APEX_DIRECTION_RAS = np.array([-1.0, 1.0, -1.0]) / np.sqrt(3.0)


class InPlaneSpacing(Spacing):
    """Resample the in-plane axes to a target spacing, leaving the slice axis alone.

    A thin layer over MONAI's :class:`~monai.transforms.Spacing` (so it is invertible) that refuses
    input whose spacing is unknown unless ``source_spacing_mm`` is given. Images default to third-order
    spline interpolation; pass ``mode="nearest"`` for labels.

    Args:
        pixdim_mm: target ``(x, y)`` spacing in mm (one number for both).
        mode: interpolation: spline order (int) or ``"nearest"``/``"bilinear"``.
        padding_mode: out-of-grid handling (scipy names for integer modes, torch names otherwise).
        source_spacing_mm: ``(x, y)`` spacing to assume when the input's spacing is unknown.
        kwargs: further :class:`~monai.transforms.Spacing` arguments.

    Example:
        >>> import numpy as np
        >>> from cardiacseg.transforms.utils import slice_to_metatensor
        >>> img = slice_to_metatensor(np.random.rand(100, 100).astype(np.float32), (2.0, 2.0))
        >>> tuple(InPlaneSpacing(1.0)(img).shape)
        (1, 199, 199)

    """

    def __init__(
        self,
        pixdim_mm: float | Sequence[float] = 1.25,
        mode: str | int = 3,
        padding_mode: str | None = None,
        source_spacing_mm: Sequence[float] | None = None,
        **kwargs: Any,
    ):
        if isinstance(pixdim_mm, (int, float)):
            xy: tuple[float, ...] = (float(pixdim_mm), float(pixdim_mm))
        else:
            xy = tuple(float(p) for p in pixdim_mm)
        if len(xy) != 2 or min(xy) <= 0:
            raise ValueError(f"pixdim_mm must be one or two positive numbers, got {pixdim_mm}")
        if padding_mode is None:
            padding_mode = "nearest" if isinstance(mode, int) else "border"
        super().__init__(pixdim=(xy[0], xy[1], -1.0), mode=mode, padding_mode=padding_mode, **kwargs)
        self.source_spacing_mm = (
            None if source_spacing_mm is None else tuple(float(s) for s in source_spacing_mm)
        )

    def __call__(self, data_array: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        """Resample ``data_array`` (``(C, X, Y[, Z])``).

        Args:
            data_array: channel-first image or label.
            args: passed to :class:`~monai.transforms.Spacing`.
            kwargs: passed to :class:`~monai.transforms.Spacing`.

        Returns:
            The resampled MetaTensor.

        Raises:
            ValueError: when the input spacing is unknown and no ``source_spacing_mm`` was given.

        """
        if inplane_spacing_mm(data_array) is None:
            if self.source_spacing_mm is None:
                raise ValueError(
                    "in-plane spacing of the input is unknown (no affine / spacing-unknown flag); "
                    "pass source_spacing_mm=(x, y) to state it"
                )
            arr = data_array if isinstance(data_array, torch.Tensor) else torch.as_tensor(data_array)
            aff = np.eye(4)
            aff[0, 0], aff[1, 1] = self.source_spacing_mm
            meta = {k: v for k, v in arr.meta.items() if k != "affine"} if isinstance(arr, MetaTensor) else {}
            meta[SPACING_UNKNOWN] = False
            data_array = MetaTensor(
                arr.as_tensor() if isinstance(arr, MetaTensor) else arr,
                affine=torch.as_tensor(aff),
                meta=meta,
            )
        out: torch.Tensor = super().__call__(data_array, *args, **kwargs)
        return out


def _foreground_centre(label: npt.NDArray[np.generic]) -> tuple[float, float] | None:
    """Centre of the in-plane bounding box of the label foreground of a ``(C, X, Y[, Z])`` array."""
    fg = np.asarray(label) > 0
    fg2 = fg.reshape(fg.shape[0], fg.shape[1], fg.shape[2], -1).any(axis=(0, 3))
    if not fg2.any():
        return None
    xs, ys = np.nonzero(fg2)
    return (float(xs.min() + xs.max()) / 2.0, float(ys.min() + ys.max()) / 2.0)


def locate_heart(
    img: torch.Tensor | npt.NDArray[np.generic],
    spacing_xy_mm: Sequence[float] | None = None,
    sigma_mm: float = 12.0,
    thresholds: Sequence[float] = (0.4, 0.5, 0.6),
    assumed_spacing_mm: float = 1.5,
) -> tuple[float, float] | None:
    """Find the heart in a cine image without labels: where intensity varies most over the cycle.

    The temporal standard deviation over the channels (phases) is averaged over slices and smoothed
    (Gaussian, ``sigma_mm``); for each threshold, the connected region above ``threshold x max`` that holds
    the maximum gives a weighted centroid, and the centroids are averaged (robust to the choice of
    threshold: the region grows from the LV over the RV).

    Args:
        img: ``(T, X, Y[, Z])`` with at least two phases as channels.
        spacing_xy_mm: in-plane spacing; ``assumed_spacing_mm`` when ``None``.
        sigma_mm: smoothing width.
        thresholds: fractions of the maximum defining the regions.
        assumed_spacing_mm: pixel size assumed when spacing is unknown.

    Returns:
        ``(x, y)`` centre in voxel coordinates, or ``None`` with a single phase (no temporal signal).

    Example:
        >>> from cardiacseg.data import make_cine_phantom
        >>> from cardiacseg.transforms.utils import study_to_metatensor
        >>> study, _ = make_cine_phantom(n_phases=8)
        >>> cx, cy = locate_heart(study_to_metatensor(study), (1.0, 1.0))

    """
    arr = convert_to_numpy(img).astype(np.float32)
    if arr.shape[0] < 2:
        return None
    std = arr.std(axis=0)
    m = std.reshape(std.shape[0], std.shape[1], -1).mean(axis=2)
    sx, sy = (assumed_spacing_mm, assumed_spacing_mm) if spacing_xy_mm is None else spacing_xy_mm
    m = ndimage.gaussian_filter(m, sigma=(sigma_mm / sx, sigma_mm / sy))
    if float(m.max()) <= 0:
        return None
    peak = np.unravel_index(int(np.argmax(m)), m.shape)
    centres = []
    for thr in thresholds:
        regions, _ = ndimage.label(m >= thr * float(m.max()))
        region = regions == regions[peak]
        xs, ys = np.nonzero(region)
        w = m[region]
        centres.append(((xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()))
    return float(np.mean([c[0] for c in centres])), float(np.mean([c[1] for c in centres]))


class _Composite(InvertibleTransform):
    """Run invertible MONAI transforms and record them as one applied operation of this transform."""

    def _run(self, img: torch.Tensor, ops: Sequence[Transform], extra: dict[str, Any]) -> torch.Tensor:
        out = img if isinstance(img, MetaTensor) else MetaTensor(torch.as_tensor(img))
        before = len(out.applied_operations)
        for op in ops:
            out = op(out)
        assert isinstance(out, MetaTensor)
        inner = [out.applied_operations.pop() for _ in range(len(out.applied_operations) - before)][::-1]
        self.push_transform(out, extra_info={"inner": inner, **extra})  # type: ignore[no-untyped-call]
        return out

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        """Undo the operation recorded last on ``data``.

        Args:
            data: a MetaTensor produced by this transform (possibly after further invertible ones were
                undone).

        Returns:
            The MetaTensor on the input grid.

        """
        transform = self.pop_transform(data)
        inner = transform[TraceKeys.EXTRA_INFO]["inner"]
        out = data
        for info in reversed(inner):
            assert isinstance(out, MetaTensor)
            inverter = _inverter(info)
            # MONAI matches the recorded transform by instance id: hand it to a shared stateless inverter
            out.applied_operations.append({**info, TraceKeys.ID: id(inverter)})
            out = inverter.inverse(out)
        return out


class HeartCrop(_Composite):
    """Crop (padding where needed) the in-plane axes to a fixed size centred on the heart.

    The centre comes from, in order: the ``centre`` argument, the label's foreground (``label`` argument,
    training), or :func:`locate_heart` on the image itself (inference, needs several phases as channels).
    With a single phase and no label the image centre is used. The slice axis is untouched. Invertible:
    ``inverse`` restores the original grid exactly (content outside the crop becomes zero).

    Args:
        roi_size: in-plane output size ``(x, y)`` in voxels.
        sigma_mm: smoothing for :func:`locate_heart`.
        thresholds: region thresholds for :func:`locate_heart`.

    Example:
        >>> from cardiacseg.data import make_cine_phantom
        >>> from cardiacseg.transforms.utils import study_to_metatensor
        >>> study, _ = make_cine_phantom(n_phases=4)
        >>> crop = HeartCrop((96, 96))
        >>> out = crop(study_to_metatensor(study))
        >>> tuple(out.shape), tuple(crop.inverse(out).shape)
        ((4, 96, 96, 10), (4, 192, 192, 10))

    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        roi_size: Sequence[int] | int = (128, 128),
        sigma_mm: float = 12.0,
        thresholds: Sequence[float] = (0.4, 0.5, 0.6),
    ):
        self.roi_size = (
            (int(roi_size), int(roi_size)) if isinstance(roi_size, int) else tuple(int(r) for r in roi_size)
        )
        self.sigma_mm = sigma_mm
        self.thresholds = tuple(thresholds)

    def find_centre(
        self, img: torch.Tensor, label: torch.Tensor | None = None
    ) -> tuple[tuple[float, float], str]:
        """Decide the crop centre.

        Args:
            img: ``(C, X, Y[, Z])`` image (phases as channels for label-free localisation).
            label: optional label on the same grid.

        Returns:
            ``((x, y), how)`` where ``how`` is ``"label"``, ``"temporal_variance"`` or ``"image_centre"``.

        """
        if label is not None:
            c = _foreground_centre(convert_to_numpy(label))
            if c is not None:
                return c, "label"
        c = locate_heart(img, inplane_spacing_mm(img), self.sigma_mm, self.thresholds)
        if c is not None:
            return c, "temporal_variance"
        return ((img.shape[1] - 1) / 2.0, (img.shape[2] - 1) / 2.0), "image_centre"

    def __call__(
        self, img: torch.Tensor, centre: Sequence[float] | None = None, label: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Crop ``img`` around the heart.

        Args:
            img: ``(C, X, Y[, Z])``.
            centre: in-plane ``(x, y)`` centre in voxels; found automatically when ``None``.
            label: label used to find the centre (training).

        Returns:
            MetaTensor ``(C, roi_x, roi_y[, Z])``.

        """
        how = "given"
        if centre is None:
            centre, how = self.find_centre(img, label)
        size = img.shape[1:3]
        start = [int(np.floor(c - r / 2.0 + 0.5)) for c, r in zip(centre, self.roi_size, strict=True)]
        end = [s + r for s, r in zip(start, self.roi_size, strict=True)]
        before = [max(0, -s) for s in start]
        after = [max(0, e - n) for e, n in zip(end, size, strict=True)]
        border = [before[0], after[0], before[1], after[1]] + [0, 0] * (img.ndim - 3)
        roi_start = [s + b for s, b in zip(start, before, strict=True)] + [0] * (img.ndim - 3)
        roi_end = [e + b for e, b in zip(end, before, strict=True)] + list(img.shape[3:])
        ops: list[Transform] = []
        if any(border):
            ops.append(BorderPad(spatial_border=border))
        ops.append(SpatialCrop(roi_start=roi_start, roi_end=roi_end))
        out = self._run(img, ops, {"centre": [float(c) for c in centre], "how": how})
        assert isinstance(out, MetaTensor)
        out.meta["heart_crop_centre"] = [float(c) for c in centre]
        out.meta["heart_crop_how"] = how
        return out


def _dihedral_ops(k: int, flip: bool) -> list[Transform]:
    ops: list[Transform] = []
    if flip:
        ops.append(Flip(spatial_axis=0))
    if k:
        ops.append(Rotate90(k=k, spatial_axes=(0, 1)))
    return ops


class NormalizeSAXOrientation(_Composite):
    """Put short-axis stacks in one orientation: slice 0 at the base, anatomy displayed radiologically.

    From the affine (RAS+): the slice axis is flipped when it points from apex to base (the apex lies
    left, anterior and inferior), and of the eight in-plane flips/rotations the one is chosen whose
    first axis points most to the patient's left and second axis most to posterior, so that
    ``imshow(arr[c, :, :, z].T)`` shows the RV on the viewer's left. What was done is stored in
    ``meta["sax_orientation"]``; with unknown geometry nothing is done (``"unknown"``). Invertible.

    Example:
        >>> out = NormalizeSAXOrientation()(study_to_metatensor(study))  # doctest: +SKIP
        >>> out.meta["sax_orientation"]  # doctest: +SKIP
        {'slice_axis_flipped': True, 'inplane_flip': False, 'inplane_rot90': 1}

    """

    backend = [TransformBackends.TORCH]

    def choose(self, affine: npt.NDArray[np.float64], spatial_dims: int) -> dict[str, Any]:
        """Pick the orientation operations for an affine.

        Args:
            affine: 4x4 voxel-to-RAS affine.
            spatial_dims: 2 or 3.

        Returns:
            ``{"slice_axis_flipped", "inplane_flip", "inplane_rot90"}``.

        """
        best: tuple[float, int, bool] = (-np.inf, 0, False)
        left, posterior = np.array([-1.0, 0, 0]), np.array([0, -1.0, 0])
        for flip in (False, True):
            for k in range(4):
                probe = MetaTensor(torch.zeros(1, 3, 5, 1), affine=torch.as_tensor(affine))
                for op in _dihedral_ops(k, flip):
                    probe = op(probe)
                aff = np.asarray(probe.affine, dtype=np.float64)
                d0 = aff[:3, 0] / np.linalg.norm(aff[:3, 0])
                d1 = aff[:3, 1] / np.linalg.norm(aff[:3, 1])
                score = float(d0 @ left + d1 @ posterior)
                if score > best[0] + 1e-9:
                    best = (score, k, flip)
        normal = affine[:3, 2]
        flipped = spatial_dims == 3 and float(normal @ APEX_DIRECTION_RAS) < 0
        return {"slice_axis_flipped": bool(flipped), "inplane_flip": best[2], "inplane_rot90": best[1]}

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """Reorient ``img`` (``(C, X, Y[, Z])`` MetaTensor with a real affine).

        Args:
            img: channel-first image or label.

        Returns:
            The reoriented MetaTensor (``meta["sax_orientation"]`` says what was done).

        """
        t = img if isinstance(img, MetaTensor) else MetaTensor(torch.as_tensor(img))
        if t.meta.get(SPACING_UNKNOWN, not isinstance(img, MetaTensor)):
            out = self._run(t, [], {"orientation": "unknown"})
            assert isinstance(out, MetaTensor)
            out.meta["sax_orientation"] = "unknown"
            return out
        plan = self.choose(np.asarray(t.affine, dtype=np.float64), t.ndim - 1)
        ops: list[Transform] = [Flip(spatial_axis=2)] if plan["slice_axis_flipped"] else []
        ops += _dihedral_ops(plan["inplane_rot90"], plan["inplane_flip"])
        out = self._run(t, ops, {"orientation": plan})
        assert isinstance(out, MetaTensor)
        out.meta["sax_orientation"] = plan
        return out


def _inverter(info: dict[str, Any]) -> InvertibleTransform:
    """Return a MONAI transform able to undo one recorded inner operation."""
    name = info[TraceKeys.CLASS_NAME]
    if name == "Flip":  # Flip.inverse uses the instance's axis, not the recorded one
        return Flip(spatial_axis=info[TraceKeys.EXTRA_INFO]["axes"])
    if name == "Rotate90":
        return Rotate90()
    if name == "BorderPad":
        return BorderPad(spatial_border=0)
    if name == "SpatialCrop":
        return SpatialCrop(roi_start=[0], roi_end=[1])
    raise ValueError(f"cannot invert inner operation {name}")
