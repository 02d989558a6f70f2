"""Motion-style augmentations MONAI lacks: respiratory ghosting in k-space and slice misalignment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import InvertibleTransform, RandomizableTransform
from monai.utils import TraceKeys, TransformBackends
from monai.utils.type_conversion import convert_to_dst_type, convert_to_numpy
from scipy import ndimage

from cardiacseg.transforms._slices import map_inplane

__all__ = ["RandRespiratoryMotion", "RandSliceMisalignment", "respiratory_kspace_corruption"]


def _as_range(value: float | Sequence[float], name: str) -> tuple[float, float]:
    lo, hi = (0.0, float(value)) if np.isscalar(value) else (float(value[0]), float(value[1]))  # type: ignore[index,arg-type]
    if lo < 0 or hi < lo:
        raise ValueError(f"{name} must be a non-negative number or (low, high) with low <= high, got {value}")
    return lo, hi


def respiratory_kspace_corruption(
    image: npt.NDArray[np.float32],
    line_groups: npt.NDArray[np.int64],
    shifts_px: npt.NDArray[np.float64],
    angles_deg: npt.NDArray[np.float64],
    phase_encode_axis: int,
) -> npt.NDArray[np.float32]:
    """Replace groups of phase-encode lines of a 2D image's k-space by those of moved copies.

    Args:
        image: 2D ``(X, Y)`` slice.
        line_groups: for each phase-encode line (in centred k-space order), the group it was acquired in
            (``-1`` = reference position, not corrupted).
        shifts_px: ``(n_groups, 2)`` rigid in-plane translation of each group, in pixels.
        angles_deg: ``(n_groups,)`` in-plane rotation of each group.
        phase_encode_axis: 0 or 1.

    Returns:
        The real part of the inverse FFT of the mixed k-space (the image itself where no line is moved).

    Example:
        >>> import numpy as np
        >>> img = np.random.rand(32, 32).astype(np.float32)
        >>> out = respiratory_kspace_corruption(img, -np.ones(32, np.int64), np.zeros((0, 2)), np.zeros(0), 0)
        >>> bool(np.allclose(out, img, atol=1e-5))
        True

    """
    k = np.fft.fftshift(np.fft.fft2(image))
    nx, ny = image.shape
    fx = np.fft.fftshift(np.fft.fftfreq(nx))[:, None]
    fy = np.fft.fftshift(np.fft.fftfreq(ny))[None, :]
    for g in range(len(shifts_px)):
        lines = np.nonzero(line_groups == g)[0]
        if not len(lines):
            continue
        moved = image
        if angles_deg[g]:
            moved = ndimage.rotate(image, float(angles_deg[g]), reshape=False, order=1, mode="nearest")
        km = np.fft.fftshift(np.fft.fft2(moved))
        km = km * np.exp(-2j * np.pi * (fx * shifts_px[g, 0] + fy * shifts_px[g, 1]))
        if phase_encode_axis == 0:
            k[lines, :] = km[lines, :]
        else:
            k[:, lines] = km[:, lines]
    return np.real(np.fft.ifft2(np.fft.ifftshift(k))).astype(np.float32)


class RandRespiratoryMotion(RandomizableTransform):
    """Simulate breathing during a segmented cine acquisition: ghosting along the phase-encode axis.

    A fraction of the phase-encode lines (outside a central band that fixes the reference position) is
    split into ``n_groups`` groups, acquired at other respiratory positions: each group's lines are
    taken from the k-space of the image moved by its own rigid translation (and optionally rotation).
    Severity grows with the ``amplitude_px`` (largest displacement) and the ``corrupted_fraction`` of
    lines. Zero amplitude (and no rotation) leaves the image unchanged. The same draw is applied to every
    channel and slice (one acquisition). Labels are not changed: the anatomy is where it was.

    Args:
        prob: probability of applying.
        amplitude_px: maximum displacement in pixels, number or ``(low, high)`` range to draw from.
        corrupted_fraction: fraction of phase-encode lines moved, number or range.
        n_groups: number of respiratory positions among the corrupted lines.
        max_rotation_deg: maximum in-plane rotation of a group.
        phase_encode_axis: 0, 1, or ``None`` to draw one.
        centre_fraction: fraction of central k-space lines kept at the reference position.

    Example:
        >>> import numpy as np
        >>> t = RandRespiratoryMotion(prob=1.0, amplitude_px=(4, 8), corrupted_fraction=0.3)
        >>> _ = t.set_random_state(0)
        >>> t(np.random.rand(1, 64, 64).astype(np.float32)).shape
        (1, 64, 64)

    """

    backend = [TransformBackends.NUMPY]

    def __init__(
        self,
        prob: float = 0.1,
        amplitude_px: float | Sequence[float] = (2.0, 8.0),
        corrupted_fraction: float | Sequence[float] = (0.1, 0.4),
        n_groups: int = 4,
        max_rotation_deg: float = 0.0,
        phase_encode_axis: int | None = None,
        centre_fraction: float = 0.08,
    ):
        RandomizableTransform.__init__(self, prob)
        self.amplitude_px = _as_range(amplitude_px, "amplitude_px")
        self.corrupted_fraction = _as_range(corrupted_fraction, "corrupted_fraction")
        if self.corrupted_fraction[1] > 1:
            raise ValueError(f"corrupted_fraction must be <= 1, got {corrupted_fraction}")
        if n_groups < 1:
            raise ValueError(f"n_groups must be >= 1, got {n_groups}")
        if phase_encode_axis not in (None, 0, 1):
            raise ValueError(f"phase_encode_axis must be 0, 1 or None, got {phase_encode_axis}")
        self.n_groups = n_groups
        self.max_rotation_deg = float(max_rotation_deg)
        self.phase_encode_axis = phase_encode_axis
        self.centre_fraction = centre_fraction
        self._draw: dict[str, Any] = {}

    def randomize(self, data: object = None, shape: Sequence[int] | None = None) -> None:
        """Draw axis, corrupted lines, displacements and rotations for an in-plane ``shape``.

        Args:
            data: unused.
            shape: in-plane ``(X, Y)`` size.

        """
        super().randomize(None)
        if not self._do_transform or shape is None:
            return
        axis = int(self.R.randint(2)) if self.phase_encode_axis is None else self.phase_encode_axis
        n = int(shape[axis])
        amp = float(self.R.uniform(*self.amplitude_px))
        frac = float(self.R.uniform(*self.corrupted_fraction))
        centre = np.abs(np.arange(n) - n // 2) <= max(1, round(self.centre_fraction * n / 2))
        candidates = np.nonzero(~centre)[0]
        n_bad = min(len(candidates), round(frac * n))
        bad = self.R.choice(candidates, size=n_bad, replace=False) if n_bad else np.zeros(0, np.int64)
        groups = -np.ones(n, dtype=np.int64)
        groups[bad] = self.R.randint(self.n_groups, size=n_bad)
        direction = self.R.uniform(-1.0, 1.0, size=(self.n_groups, 2))
        self._draw = {
            "axis": axis,
            "groups": groups,
            "shifts": direction * amp,
            "angles": self.R.uniform(-1.0, 1.0, size=self.n_groups) * self.max_rotation_deg,
            "amplitude": amp,
            "fraction": frac,
        }

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """Corrupt ``img`` of shape ``(C, X, Y[, Z])``.

        Args:
            img: channel-first image.
            randomize: draw new parameters (``False`` reuses the last draw, e.g. for several keys).

        Returns:
            The corrupted image, same type and meta-data.

        """
        if randomize:
            self.randomize(shape=img.shape[1:3])
        if not self._do_transform:
            return img
        d = self._draw
        if not d or (d["amplitude"] == 0 and not np.any(d["angles"])):
            return img

        def one(s: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
            return respiratory_kspace_corruption(s, d["groups"], d["shifts"], d["angles"], d["axis"])

        out = map_inplane(convert_to_numpy(img), one)
        return convert_to_dst_type(
            out, img, dtype=torch.float32 if isinstance(img, torch.Tensor) else np.float32
        )[0]


class RandSliceMisalignment(RandomizableTransform, InvertibleTransform):
    """Independent in-plane shifts of the slices of a stack (breath-hold mismatch between slices).

    For ``(C, X, Y, Z)`` input, each slice is moved, with probability ``slice_prob``, by a translation
    drawn from ``[-max_shift_px, max_shift_px]`` per axis (linear interpolation for images, nearest for
    labels via ``mode``). 2D input is returned unchanged. Invertible (content shifted out is lost).

    Args:
        prob: probability of applying to a stack.
        max_shift_px: largest shift per axis in pixels.
        slice_prob: probability that a given slice moves.
        mode: ``"bilinear"`` (order 1) or ``"nearest"`` (order 0).

    Example:
        >>> import numpy as np
        >>> t = RandSliceMisalignment(prob=1.0, max_shift_px=4)
        >>> _ = t.set_random_state(1)
        >>> t(np.random.rand(1, 32, 32, 6).astype(np.float32)).shape
        torch.Size([1, 32, 32, 6])

    """

    backend = [TransformBackends.NUMPY]

    def __init__(
        self, prob: float = 0.1, max_shift_px: float = 5.0, slice_prob: float = 0.5, mode: str = "bilinear"
    ):
        RandomizableTransform.__init__(self, prob)
        if mode not in ("bilinear", "nearest"):
            raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
        self.max_shift_px = float(max_shift_px)
        self.slice_prob = slice_prob
        self.mode = mode
        self.shifts = np.zeros((0, 2))

    def randomize(self, data: object = None, n_slices: int = 0) -> None:
        """Draw one shift per slice.

        Args:
            data: unused.
            n_slices: number of slices.

        """
        super().randomize(None)
        if not self._do_transform:
            return
        moved = self.R.uniform(size=n_slices) < self.slice_prob
        self.shifts = (
            self.R.uniform(-self.max_shift_px, self.max_shift_px, size=(n_slices, 2)) * moved[:, None]
        )

    @staticmethod
    def _shift(
        arr: npt.NDArray[np.float32], shifts: npt.NDArray[np.float64], order: int
    ) -> npt.NDArray[np.float32]:
        out = np.empty_like(arr)
        for c in range(arr.shape[0]):
            for z in range(arr.shape[3]):
                if np.any(shifts[z]):
                    out[c, :, :, z] = ndimage.shift(
                        arr[c, :, :, z], shifts[z], order=order, mode="constant", cval=0.0
                    )
                else:
                    out[c, :, :, z] = arr[c, :, :, z]
        return out

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True, mode: str | None = None) -> torch.Tensor:
        """Shift the slices of ``img``.

        Args:
            img: ``(C, X, Y, Z)`` stack.
            randomize: draw new shifts (``False`` reuses them, e.g. for the label).
            mode: overrides ``self.mode``.

        Returns:
            MetaTensor with the operation recorded for inversion.

        """
        t = img if isinstance(img, MetaTensor) else MetaTensor(torch.as_tensor(img))
        if randomize:
            self.randomize(n_slices=t.shape[3] if t.ndim == 4 else 0)
        do = self._do_transform and t.ndim == 4 and np.any(self.shifts)
        mode = mode or self.mode
        if do:
            arr = convert_to_numpy(t).astype(np.float32)
            out = self._shift(arr, self.shifts, 0 if mode == "nearest" else 1)
            t = convert_to_dst_type(out.astype(convert_to_numpy(img).dtype, copy=False), t)[0]
        assert isinstance(t, MetaTensor)
        self.push_transform(t, extra_info={"shifts": self.shifts.tolist() if do else [], "mode": mode})  # type: ignore[no-untyped-call]
        return t

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        """Shift the slices back.

        Args:
            data: output of this transform.

        Returns:
            The stack on its original in-plane positions.

        """
        transform = self.pop_transform(data)
        shifts = np.asarray(transform[TraceKeys.EXTRA_INFO]["shifts"], dtype=np.float64)
        if not len(shifts):
            return data
        order = 0 if transform[TraceKeys.EXTRA_INFO]["mode"] == "nearest" else 1
        arr = convert_to_numpy(data)
        out = self._shift(arr.astype(np.float32), -shifts, order).astype(arr.dtype, copy=False)
        result: torch.Tensor = convert_to_dst_type(out, data)[0]
        return result
