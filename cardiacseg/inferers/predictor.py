"""Slice-wise prediction of whole cine studies with 2D networks (load once, predict many studies).

Per study: in-plane resampling to the model's spacing, label-free heart localisation from the temporal
variance over the phases, a fixed-size heart crop, per-slice percentile z-score (by default inside the
crop; ``zscore_region="slice"``: over the whole slice before the crop, as the training pipeline does, with
the same :class:`~cardiacseg.transforms.SliceZScore`), batched 2D inference over
all (phase, slice) pairs with optional test-time augmentation (mirroring, 90-degree rotations) and an
ensemble of networks (softmax averaged), then the crop and the resampling are inverted (MONAI's
applied-operation records) so that the labels lie on the input grid; optional post-processing last.

When a study's spacing is unknown (e.g. the SSL4MIS copy of ACDC), pixels are taken to be the model's
spacing unless the image would then span more than :data:`MAX_ASSUMED_FOV_MM`; larger matrices are taken
to cover that field of view (a 512-pixel matrix is read as ~0.78 mm pixels rather than 1.5 mm).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from monai.data import MetaTensor
from torch import nn

from cardiacseg.io.limits import check_allocation
from cardiacseg.io.study import CineStudy
from cardiacseg.networks.factory import get_network
from cardiacseg.networks.precision import native_bf16, resolve_precision
from cardiacseg.networks.weights import load_state_dict_file
from cardiacseg.postprocess import PostProcessor
from cardiacseg.transforms.intensity.array import SliceZScore, percentile_zscore
from cardiacseg.transforms.spatial.array import HeartCrop, InPlaneSpacing
from cardiacseg.transforms.utils import SPACING_UNKNOWN, study_affine, with_neighbours
from cardiacseg.typing import LabelArray, PathLike
from cardiacseg.utils.timing import stage

__all__ = [
    "MAX_ASSUMED_FOV_MM",
    "TTA_MODES",
    "ZSCORE_REGIONS",
    "Allocation",
    "SlicePredictor",
    "assumed_pixel_spacing",
    "native_bf16",
    "percentile_zscore",
]

#: Largest field of view (mm) assumed for an image of unknown spacing.
MAX_ASSUMED_FOV_MM = 400.0

#: Phases whose probabilities are mapped back to the input grid in one call (bounds memory).
_INVERT_GROUP = 8


class Allocation(NamedTuple):
    """One large array that :class:`SlicePredictor` allocates for a study (see its ``memory_estimate``).

    Attributes:
        what: the array, with its shape, in words.
        n_bytes: bytes of one such array.
        copies: how many of them are alive at the same time.

    """

    what: str
    n_bytes: int
    copies: int = 1


#: Test-time augmentation modes: the number of views is 1, 4 (mirroring of both in-plane axes) or 8
#: (mirroring and 90-degree rotations: the dihedral group of the square crop).
_N_VIEWS = {"none": 1, "flip": 4, "flip_rot90": 8}
TTA_MODES = tuple(_N_VIEWS)

#: Where the per-slice z-score statistics are taken: ``"crop"`` (default), inside the heart crop;
#: ``"slice"``, the whole (resampled) slice before the crop, as in training
#: (:class:`~cardiacseg.transforms.SliceZScore`). With the shipped weights ``"slice"`` is not better on the
#: ACDC validation patients (``docs/benchmarks/preprocessing_match.md``), so the default stays ``"crop"``.
ZSCORE_REGIONS = ("crop", "slice")


def assumed_pixel_spacing(shape_yx: Sequence[int], target_spacing_mm: float) -> float:
    """Pixel size to assume for an image of unknown spacing.

    Args:
        shape_yx: in-plane matrix size.
        target_spacing_mm: the model's training spacing.

    Returns:
        ``target_spacing_mm``, or ``MAX_ASSUMED_FOV_MM / max(shape_yx)`` when that is smaller.

    Example:
        >>> assumed_pixel_spacing((216, 256), 1.5), round(assumed_pixel_spacing((428, 512), 1.5), 3)
        (1.5, 0.781)

    """
    return float(min(target_spacing_mm, MAX_ASSUMED_FOV_MM / max(shape_yx)))


def _views(x: torch.Tensor, mode: str) -> list[torch.Tensor]:
    if mode == "none":
        return [x]
    flips = [x, x.flip(-1), x.flip(-2), x.flip(-1, -2)]
    if mode == "flip":
        return flips
    t = x.transpose(-1, -2)
    return [*flips, t, t.flip(-1), t.flip(-2), t.flip(-1, -2)]


def _unview(outs: list[torch.Tensor], mode: str) -> torch.Tensor:
    """Undo :func:`_views` on each output and average."""
    undone = [outs[0]]
    if mode != "none":
        undone += [outs[1].flip(-1), outs[2].flip(-2), outs[3].flip(-1, -2)]
    if mode == "flip_rot90":
        undone += [
            o.transpose(-1, -2) for o in (outs[4], outs[5].flip(-1), outs[6].flip(-2), outs[7].flip(-1, -2))
        ]
    return torch.stack(undone).mean(0)


#: Width (pixels at the target spacing) of the crop's border band that triggers the fallback crop.
_BORDER_PX = 3


def _touches_border(probs: torch.Tensor) -> bool:
    """Whether predicted foreground of ``(T, C, X, Y, Z)`` probabilities lies in the crop's border band."""
    b = _BORDER_PX
    strips = (probs[:, :, :b], probs[:, :, -b:], probs[:, :, :, :b], probs[:, :, :, -b:])
    return any(bool((strip.argmax(1) > 0).any()) for strip in strips)


def _foreground_centre_in(
    img: torch.Tensor, cropped: torch.Tensor, probs: torch.Tensor
) -> tuple[float, float]:
    """Centre of the predicted foreground's bounding box, in voxels of the uncropped image."""
    fg = (probs.argmax(1) > 0).any(0).any(-1)  # (X, Y) on the crop
    xs, ys = torch.nonzero(fg, as_tuple=True)
    m = torch.linalg.inv(torch.as_tensor(img.affine).double()) @ torch.as_tensor(cropped.affine).double()  # type: ignore[attr-defined]
    cx, cy = (float(xs.min() + xs.max()) / 2.0, float(ys.min() + ys.max()) / 2.0)
    return float(m[0, 0] * cx + m[0, 3]), float(m[1, 1] * cy + m[1, 3])


def _bilinear_weights(
    n_out: int, n_in: int, scale: float, offset: float, border: bool = False
) -> torch.Tensor:
    """``(n_out, n_in)`` linear-interpolation matrix for source coordinate ``scale * i + offset``.

    Rows whose source coordinate falls outside ``[0, n_in - 1]`` are zero (no coverage), or with ``border``
    take the nearest edge value (torch/MONAI ``padding_mode="border"``).
    """
    c = torch.arange(n_out, dtype=torch.float64) * scale + offset
    inside = (c >= -1e-6) & (c <= n_in - 1 + 1e-6)
    if border:
        inside[:] = True
    c = c.clamp(0, n_in - 1)
    lo = c.floor().long().clamp(max=max(n_in - 2, 0))
    frac = c - lo
    w = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    w[rows, lo] = 1 - frac
    if n_in > 1:
        w[rows, lo + 1] += frac
    w[~inside] = 0
    return w.float()


def _inplane_map(
    src_affine: torch.Tensor, dst_affine: torch.Tensor
) -> tuple[float, float, float, float] | None:
    """Source-voxel coordinates of destination voxels, per in-plane axis, when the map is axis-aligned.

    The destination-voxel to source-voxel map is ``inv(src_affine) @ dst_affine``; when it only scales and
    shifts each in-plane axis and leaves the slice axis alone (true for in-plane resampling and cropping),
    bilinear interpolation between the grids separates into one matrix per axis (:func:`_bilinear_weights`).

    Returns:
        ``(scale_x, offset_x, scale_y, offset_y)``, or ``None`` when the map is not axis-aligned.

    """
    m = torch.linalg.inv(src_affine.double()) @ dst_affine.double()
    off = m[:3, :3] - torch.diag(torch.diagonal(m[:3, :3]))
    if float(off.abs().max()) > 1e-6 or abs(float(m[2, 2]) - 1) > 1e-6 or abs(float(m[2, 3])) > 1e-6:
        return None
    return float(m[0, 0]), float(m[0, 3]), float(m[1, 1]), float(m[1, 3])


def _separable_resample(probs: torch.Tensor, wx: torch.Tensor, wy: torch.Tensor) -> torch.Tensor:
    """Map crop-grid probabilities ``(G, C, Xc, Yc, Z)`` to the input grid as ``(G, C, Z, Y, X)``.

    Only the footprint of the crop is computed; outside it, background has probability 1.
    """
    g, c, _, _, z = probs.shape
    out = torch.zeros(g, c, z, wy.shape[0], wx.shape[0])
    out[:, 0] = 1.0
    rx = torch.nonzero(wx.sum(1) > 0).flatten()
    ry = torch.nonzero(wy.sum(1) > 0).flatten()
    if len(rx) == 0 or len(ry) == 0:
        return out
    x0, x1, y0, y1 = int(rx[0]), int(rx[-1]) + 1, int(ry[0]), int(ry[-1]) + 1
    p = probs.permute(0, 1, 4, 3, 2).float()  # (G, C, Z, Yc, Xc)
    box = wy[y0:y1] @ p @ wx[x0:x1].T  # (G, C, Z, y1-y0, x1-x0)
    cover = wy[y0:y1].sum(1)[:, None] * wx[x0:x1].sum(1)[None, :]
    box[:, 0] += 1.0 - cover
    out[..., y0:y1, x0:x1] = box
    return out


#: Top-level keys of a bundle's ``inference.json`` that :meth:`SlicePredictor.from_bundle` may override.
_BUNDLE_OVERRIDES = frozenset(
    {
        "weights",
        "network_name",
        "network_kwargs",
        "context_slices",
        "target_spacing_mm",
        "crop_size",
        "crop_fallback_size",
        "batch_size",
        "device",
        "tta",
        "precision",
        "zscore_region",
        "postprocess",
    }
)


class SlicePredictor:
    """Predict LV/MYO/RV label maps of cine studies with a 2D segmentation network or an ensemble.

    Args:
        network: a 2D network with 4 output channels (BG, LV, MYO, RV), or several (an ensemble: their
            softmax outputs are averaged).
        target_spacing_mm: in-plane spacing the network was trained at (``None``: no resampling).
        crop_size: side of the heart crop in pixels at the target spacing.
        crop_fallback_size: when set, a prediction whose foreground reaches the border of the crop (the
            heart may extend beyond it: a large heart, or an off-centre localisation) is redone with a crop
            of this side, centred on the predicted heart. Lets a small, fast ``crop_size`` be used safely.
        batch_size: network inputs per forward pass (slices x TTA views).
        device: torch device.
        tta: ``"none"``, ``"flip"`` (4 mirrored views) or ``"flip_rot90"`` (8 views); probabilities are
            averaged.
        postprocess: post-processing applied to the label maps by :meth:`predict` (``None``: none).
        precision: ``"fp32"``, ``"bf16"`` (autocast; about 1.5x faster here on a CPU with native bfloat16,
            e.g. AVX512-BF16 or AMX, and on GPUs; slower where bfloat16 is emulated), or ``"auto"``: bf16
            where :func:`native_bf16` says the device has it, else fp32.
        zscore_region: where each slice's z-score statistics are taken (:data:`ZSCORE_REGIONS`):
            ``"crop"``, inside the heart crop (what the shipped weights were evaluated and released with);
            ``"slice"``, the whole slice before the crop, as in training.
        context_slices: neighbouring slices on each side given to the network as further input channels
            (a 2.5D network trained on items of the same ``context_slices``,
            :func:`cardiacseg.transforms.utils.with_neighbours`; end slices repeat); 0: 2D.

    Raises:
        ValueError: unknown TTA mode, precision or z-score region, negative ``context_slices``,
            ``batch_size`` below 1, a crop side that is not a multiple of 16 of at least 32, or no network.

    Example:
        >>> predictor = SlicePredictor.from_bundle("bundles/cardiac_cine_seg")  # doctest: +SKIP
        >>> labels = predictor.predict(study)  # doctest: +SKIP

    """

    def __init__(
        self,
        network: nn.Module | Sequence[nn.Module],
        target_spacing_mm: float | None = 1.5,
        crop_size: int = 160,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
        crop_fallback_size: int | None = None,
        tta: str = "none",
        postprocess: PostProcessor | None = None,
        precision: str = "fp32",
        zscore_region: str = "crop",
        context_slices: int = 0,
    ):
        nets = [network] if isinstance(network, nn.Module) else list(network)
        if not nets:
            raise ValueError("SlicePredictor needs at least one network")
        if tta not in TTA_MODES:
            raise ValueError(f"unknown TTA mode {tta!r}; choose from {TTA_MODES}")
        if precision not in ("fp32", "bf16", "auto"):
            raise ValueError(f"precision must be 'fp32', 'bf16' or 'auto', got {precision!r}")
        if zscore_region not in ZSCORE_REGIONS:
            raise ValueError(f"zscore_region must be one of {ZSCORE_REGIONS}, got {zscore_region!r}")
        if context_slices < 0:
            raise ValueError(f"context_slices must be >= 0, got {context_slices}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 slice, got {batch_size}")
        for what, size in (("crop_size", crop_size), ("crop_fallback_size", crop_fallback_size)):
            if size is not None and (size < 32 or size % 16):
                raise ValueError(
                    f"{what} must be a multiple of 16 pixels, at least 32 (the networks halve the crop four "
                    f"times; the shipped model uses 160), got {size}"
                )
        self.zscore_region = zscore_region
        self.context_slices = int(context_slices)
        self.precision = resolve_precision(precision, device)
        # channels-last: oneDNN's fastest CPU convolution layout (about 1.4x here), same fp32 results
        self.networks = [n.to(device).eval().to(memory_format=torch.channels_last) for n in nets]  # type: ignore[call-overload]
        self.network = self.networks[0]
        self.tta = tta
        self.postprocess = postprocess
        self.target_spacing_mm = target_spacing_mm
        self.crop_size = crop_size
        self.crop_fallback_size = crop_fallback_size
        #: crop side used for the last study (``crop_size``, or ``crop_fallback_size`` after a fallback)
        self.last_crop_size: int | None = None
        self.batch_size = batch_size
        self.device = torch.device(device)
        #: weight files the networks were loaded from (set by :meth:`from_checkpoint`; empty otherwise)
        self.weights_files: list[Path] = []
        #: the bundle folder (set by :meth:`from_bundle`; ``None`` otherwise)
        self.bundle_dir: Path | None = None
        #: called as ``progress(done, total)`` after each network batch, counting slices of the current
        #: call (e.g. a progress bar inside a study); ``None``: silent
        self.progress: Callable[[int, int], None] | None = None

    @classmethod
    def from_checkpoint(
        cls,
        weights: PathLike | Sequence[PathLike],
        network_name: str | Sequence[str] = "unet",
        network_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> SlicePredictor:
        """Build a predictor from a state-dict file, or an ensemble from several.

        Args:
            weights: ``model.pt`` saved by the training bundle, or a list of them (ensemble).
            network_name: name for :func:`~cardiacseg.networks.get_network` (one, or one per file).
            network_kwargs: further arguments of :func:`~cardiacseg.networks.get_network` (e.g.
                ``{"channels": [16, 32, 64, 128, 256]}``), the same for every file; the training config's
                ``network_def`` must have had the same.
            kwargs: passed to the constructor; ``context_slices`` also sets the networks' input channels
                (``1 + 2 * context_slices``).

        Returns:
            The predictor.

        Raises:
            FileNotFoundError: the file does not exist.
            ValueError: the weights do not fit the network so built (another width, input channels...).

        """
        files: list[PathLike] = [weights] if isinstance(weights, str | os.PathLike) else list(weights)
        names = [network_name] * len(files) if isinstance(network_name, str) else list(network_name)
        if len(names) != len(files):
            raise ValueError(f"{len(files)} weight files but {len(names)} network names")
        nets = []
        for f, name in zip(files, names, strict=True):
            in_channels = 1 + 2 * int(kwargs.get("context_slices", 0))
            net = get_network(name, 2, in_channels, 4, **dict(network_kwargs or {}))
            try:
                net.load_state_dict(load_state_dict_file(f))
            except RuntimeError as exc:
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                raise ValueError(
                    f"{f}: the weights do not fit network {name!r} with {in_channels} input channel(s) and "
                    f"{dict(network_kwargs or {})}; set network_name, network_kwargs and context_slices as "
                    f"in training. First difference: {lines[1] if len(lines) > 1 else str(exc)}"
                ) from exc
            nets.append(net)
        predictor = cls(nets, **kwargs)
        predictor.weights_files = [Path(f) for f in files]
        return predictor

    @classmethod
    def from_bundle(cls, bundle_dir: PathLike, **kwargs: Any) -> SlicePredictor:
        """Build the predictor a bundle's ``configs/inference.json`` defines, read with MONAI's ConfigParser.

        The bundle's ``predictor`` definition is instantiated by :class:`monai.bundle.ConfigParser` (with
        ``bundle_root`` set to ``bundle_dir`` and ``configs/metadata.json`` as ``_meta_``), so every
        expression and reference of the config is honoured exactly as ``python -m monai.bundle run``
        would. Overrides replace the config's top-level values before parsing.

        Args:
            bundle_dir: the bundle folder.
            kwargs: overrides of the config's top-level keys: ``weights`` (files, an ensemble when
                several), ``network_name``, ``network_kwargs``, ``target_spacing_mm``, ``crop_size``,
                ``crop_fallback_size``, ``batch_size``, ``device``, ``tta``, ``precision``, ``zscore_region``,
                ``postprocess`` (a :class:`~cardiacseg.postprocess.PostProcessor`).

        Returns:
            The predictor (``bundle_dir`` and ``weights_files`` recorded on it).

        Raises:
            FileNotFoundError: no ``configs/inference.json``, or missing weights.
            TypeError: an override that is not a key of the config.

        Example:
            >>> p = SlicePredictor.from_bundle("cardiacseg/cardiac_cine_seg", tta="none")  # doctest: +SKIP

        """
        from cardiacseg.inferers.bundle_config import instantiate_bundle_predictor

        if isinstance(kwargs.get("weights"), str | os.PathLike):  # one file: an ensemble of one
            kwargs["weights"] = [kwargs["weights"]]
        predictor, root = instantiate_bundle_predictor(bundle_dir, cls, _BUNDLE_OVERRIDES, kwargs)
        predictor.bundle_dir = root
        return predictor

    def _forward(self, slices: torch.Tensor) -> torch.Tensor:
        outs = []
        # batch_size counts network inputs: with n TTA views, batch_size // n slices go through at a time
        # (bounds the activation memory, and larger CPU batches are not faster)
        step = max(1, self.batch_size // _N_VIEWS[self.tta])
        total = int(slices.shape[0])
        with torch.inference_mode():
            for i in range(0, slices.shape[0], step):
                batch = slices[i : i + step].to(self.device)
                acc = None
                for net in self.networks:
                    views = _views(batch, self.tta)
                    inp = torch.cat(views).contiguous(memory_format=torch.channels_last)
                    with torch.autocast(self.device.type, torch.bfloat16, enabled=self.precision == "bf16"):
                        logits = net(inp)
                    probs = torch.softmax(logits.float(), dim=1)
                    p = _unview(list(torch.split(probs, batch.shape[0])), self.tta)
                    acc = p if acc is None else acc + p
                assert acc is not None
                outs.append((acc / len(self.networks)).cpu())
                if self.progress is not None:
                    self.progress(min(i + step, total), total)
        return torch.cat(outs)

    def _with_assumed_spacing(self, study: CineStudy) -> CineStudy:
        """Give a large matrix of unknown spacing the pixel size of :func:`assumed_pixel_spacing`."""
        if study.spacing_mm is None and self.target_spacing_mm is not None:
            px = assumed_pixel_spacing(study.image.shape[2:], self.target_spacing_mm)
            if px != self.target_spacing_mm:  # a large matrix of unknown spacing: assume the field of view
                study = replace(study, spacing_mm=(1.0, px, px), affine=None, labels={}, annotated_slices={})
        return study

    def _resampled_shape(self, study: CineStudy) -> tuple[int, int] | None:
        """In-plane ``(X', Y')`` of the study at the model's spacing, computed without resampling anything.

        The same MONAI :class:`~monai.transforms.Spacing` grid as :meth:`_resampled_image`, run lazily on a
        zero-stride probe (no voxel is allocated). ``None`` when nothing is resampled.
        """
        if self.target_spacing_mm is None or study.spacing_mm is None:
            return None
        _, n_z, n_y, n_x = study.image.shape
        meta = {SPACING_UNKNOWN: False, "source": study.source}
        probe = MetaTensor(
            torch.zeros(()).expand(1, n_x, n_y, n_z), affine=torch.as_tensor(study_affine(study)), meta=meta
        )
        out = InPlaneSpacing(self.target_spacing_mm, mode="bilinear")(probe, lazy=True)
        shape = out.peek_pending_shape()  # type: ignore[attr-defined]
        return int(shape[0]), int(shape[1])

    def memory_estimate(self, study: CineStudy, phases: Sequence[int] | None = None) -> list[Allocation]:
        """List the large arrays that :meth:`predict` would allocate for ``study``, without allocating them.

        Derived from the code path of :meth:`predict_probabilities` (float32 unless stated; ``T`` phases,
        ``S`` selected phases, ``Z`` slices, ``(Y, X)`` input and ``(Y', X')`` resampled matrix, crop side
        ``s`` = the larger of ``crop_size`` and ``crop_fallback_size``, ``G = min(S, 8)`` phases mapped back
        at a time):

        * in-plane resampling (only when spacings are known): MONAI's one-phase probe with its sampling
          grid ``4 x (X', Y', Z)``; the row pass ``(T, Z, Y', X)``; the resampled image ``(T, Z, Y', X')``;
        * heart localisation: a float32 copy of the resampled image and the temporal-deviation temporary;
        * the z-score of whole slices (``zscore_region="slice"``): the selected phases ``(S, X', Y', Z)``,
          their slices and the normalised copy;
        * the heart crop: the padded image ``(T or S, max(X', s), max(Y', s), Z)`` when the image is smaller
          than the crop; the crop of the selected phases, its slices and (``zscore_region="crop"``) their
          normalised copy ``(S*Z, s, s)``;
        * with ``context_slices`` = k (2.5D), the network input ``(S*Z, 2k+1, s, s)``;
        * the network's probabilities ``(S*Z, 4, s, s)``: the per-batch outputs and their concatenation
          (plus those of the first crop when the fallback crop is enabled);
        * the probabilities mapped back to the input grid per phase group ``(G, 4, Z, Y, X)`` and the
          label maps ``(S, Z, Y, X)`` uint8.

        Network activations (bounded by ``batch_size`` and the crop, not by the study) are not included.

        Args:
            study: the study.
            phases: phases to segment (default: all).

        Returns:
            The allocations, largest first.

        Example:
            >>> from cardiacseg.data import make_cine_phantom
            >>> study, _ = make_cine_phantom(4, 2, shape=(128, 128), spacing_mm=(8.0, 1.5, 1.5))
            >>> allocs = SlicePredictor(nn.Identity(), crop_size=96).memory_estimate(study)
            >>> allocs[0].what, allocs[0].n_bytes
            ('probabilities on the input grid (G, 4, Z, Y, X) = (4, 4, 2, 128, 128) float32', 2097152)

        """
        study = self._with_assumed_spacing(study)
        n_t, n_z, n_y, n_x = (int(n) for n in study.image.shape)
        n_s = n_t if phases is None else len(phases)
        s = max(self.crop_size, self.crop_fallback_size or 0)
        f4 = 4
        out: list[Allocation] = []
        rxy = self._resampled_shape(study)
        rx, ry = (n_x, n_y) if rxy is None else rxy
        if rxy is not None:
            sp = study.spacing_mm
            assert sp is not None
            to = f"resampled from {sp[2]:.4g} x {sp[1]:.4g} mm to {self.target_spacing_mm:.4g} mm pixels"
            out += [
                Allocation(
                    f"resampling probe and grid, one phase (X', Y', Z) = {(rx, ry, n_z)} ({to})",
                    4 * rx * ry * n_z * f4,
                ),
                Allocation(
                    f"resampling row pass (T, Z, Y', X) = {(n_t, n_z, ry, n_x)} float32 ({to})",
                    n_t * n_z * ry * n_x * f4,
                ),
                Allocation(
                    f"resampled image (T, Z, Y', X') = {(n_t, n_z, ry, rx)} float32 ({to})",
                    n_t * n_z * ry * rx * f4,
                ),
            ]
        if n_t > 1:
            out.append(
                Allocation(
                    f"heart localisation copies (T, X', Y', Z) = {(n_t, rx, ry, n_z)} float32",
                    n_t * rx * ry * n_z * f4,
                    2,
                )
            )
        n_c, c_name = (n_t, "T") if self.zscore_region == "crop" else (n_s, "S")  # phases the crop sees
        if self.zscore_region == "slice":
            out.append(
                Allocation(
                    f"whole slices z-scored (S, X', Y', Z) = {(n_s, rx, ry, n_z)} float32",
                    n_s * rx * ry * n_z * f4,
                    3,
                )
            )
        if rx < s or ry < s:
            px, py = max(rx, s), max(ry, s)
            out.append(
                Allocation(
                    f"padded image for the {s}-pixel crop ({c_name}, X, Y, Z) = {(n_c, px, py, n_z)} float32",
                    n_c * px * py * n_z * f4,
                )
            )
        out.append(
            Allocation(
                f"cropped slices (S*Z, 1, s, s) = {(n_s * n_z, 1, s, s)} float32", n_s * n_z * s * s * f4, 3
            )
        )
        if self.context_slices:  # 2.5D: the neighbouring slices become input channels (a further copy)
            n_in = 1 + 2 * self.context_slices
            out.append(
                Allocation(
                    f"2.5D network input (S*Z, C, s, s) = {(n_s * n_z, n_in, s, s)} float32",
                    n_s * n_z * n_in * s * s * f4,
                )
            )
        n_prob = 2 if self.crop_fallback_size is None or self.crop_fallback_size <= self.crop_size else 3
        out.append(
            Allocation(
                f"network probabilities (S*Z, 4, s, s) = {(n_s * n_z, 4, s, s)} float32",
                n_s * n_z * 4 * s * s * f4,
                n_prob,
            )
        )
        g = min(n_s, _INVERT_GROUP)
        out.append(
            Allocation(
                f"probabilities on the input grid (G, 4, Z, Y, X) = {(g, 4, n_z, n_y, n_x)} float32",
                g * 4 * n_z * n_y * n_x * f4,
                2,
            )
        )
        out.append(
            Allocation(f"label maps (S, Z, Y, X) = {(n_s, n_z, n_y, n_x)} uint8", n_s * n_z * n_y * n_x)
        )
        return sorted(out, key=lambda a: -a.n_bytes)

    def check_memory(self, study: CineStudy, phases: Sequence[int] | None = None) -> None:
        """Refuse a study whose prediction would allocate an array over the memory budget, before any.

        Args:
            study: the study.
            phases: phases to segment (default: all).

        Raises:
            InputTooLargeError: the largest array of :meth:`memory_estimate` exceeds
                :func:`~cardiacseg.io.limits.max_array_bytes`; the message names the study's source and
                the array (e.g. a 256 x 256 image with 50 mm pixels resampled to 1.5 mm: 8501 x 8501).

        Example:
            >>> SlicePredictor(network).check_memory(study)  # doctest: +SKIP

        """
        largest = self.memory_estimate(study, phases)[0]
        check_allocation(largest.n_bytes, f"prediction: {largest.what}", study.source or "study")

    def _resampled_image(self, study: CineStudy) -> tuple[torch.Tensor, torch.Tensor, InPlaneSpacing | None]:
        """Return the study as a ``(T, X, Y, Z)`` MetaTensor at the model's in-plane spacing.

        MONAI's :class:`~monai.transforms.Spacing` (through :class:`InPlaneSpacing`) defines the output grid,
        from a one-channel probe of the same shape and affine; when the map between the grids only scales
        and shifts the in-plane axes (always, for in-plane resampling), the interpolation itself is done for
        all phases and slices as two matrix products on the study's own ``(T, Z, Y, X)`` layout (bilinear,
        border padding: what ``InPlaneSpacing(mode="bilinear")`` computes, tested). Otherwise MONAI
        resamples.

        Returns:
            ``(image, input affine, resampler)``; the resampler is ``None`` when nothing was resampled and
            is returned for the MONAI inverse of the general case.

        """
        affine = torch.as_tensor(study_affine(study))
        meta = {SPACING_UNKNOWN: study.spacing_mm is None, "source": study.source}
        _, n_z, n_y, n_x = study.image.shape
        image = torch.from_numpy(np.asarray(study.image, dtype=np.float32))
        if self.target_spacing_mm is None or study.spacing_mm is None:
            return MetaTensor(image.permute(0, 3, 2, 1), affine=affine, meta=meta), affine, None
        resample = InPlaneSpacing(self.target_spacing_mm, mode="bilinear")  # torch; inverse likewise
        probe = resample(MetaTensor(torch.zeros(1, n_x, n_y, n_z), affine=affine.clone(), meta=dict(meta)))
        out_affine = torch.as_tensor(probe.affine).double()  # type: ignore[attr-defined]
        axes = _inplane_map(affine, out_affine)  # input voxels of the output grid
        if axes is None or probe.shape[3] != n_z:
            full = resample(MetaTensor(image.permute(0, 3, 2, 1).contiguous(), affine=affine, meta=meta))
            return full, affine, resample
        sx, ox, sy, oy = axes
        wx = _bilinear_weights(probe.shape[1], n_x, sx, ox, border=True)
        wy = _bilinear_weights(probe.shape[2], n_y, sy, oy, border=True)
        res = wy @ image @ wx.T  # (T, Z, Y', X')
        return (
            MetaTensor(res.permute(0, 3, 2, 1), affine=out_affine.to(affine.dtype), meta=meta),
            affine,
            None,
        )

    def predict_probabilities(
        self, study: CineStudy, phases: Sequence[int] | None = None
    ) -> dict[int, np.ndarray]:
        """Class probabilities on the input grid.

        Args:
            study: the study (all phases are used to locate the heart).
            phases: phases to segment (default: all).

        Returns:
            ``{phase: (4, Z, Y, X) float32}``.

        """
        return dict(self._iter_probabilities(study, phases))

    def _iter_probabilities(
        self, study: CineStudy, phases: Sequence[int] | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(phase, (4, Z, Y, X) probabilities)``, mapping a few phases back at a time."""
        sel = list(range(study.n_phases)) if phases is None else list(phases)
        with stage("resample/crop"):
            study = self._with_assumed_spacing(study)
            self.check_memory(study, sel)
            img, in_affine, resample = self._resampled_image(study)
            in_shape = (int(study.image.shape[3]), int(study.image.shape[2]))  # (X, Y)
            size = self.crop_size
            crop = HeartCrop((size, size))
            centre, _ = crop.find_centre(img)  # on the raw intensities of all phases
            src = img
            if self.zscore_region == "slice":  # as in training: z-score whole slices, then crop
                normed = SliceZScore()(img.as_tensor()[sel])  # type: ignore[attr-defined]
                meta = {k: v for k, v in img.meta.items() if k != "affine"}  # type: ignore[attr-defined]
                src = MetaTensor(normed, affine=img.affine.clone(), meta=meta)  # type: ignore[attr-defined]
                src.applied_operations = copy.deepcopy(img.applied_operations)  # type: ignore[attr-defined]
        while True:
            with stage("resample/crop"):
                cropped = crop(src, centre=centre)
                assert isinstance(cropped, MetaTensor)
                _, x, y, z = cropped.shape
                arr = cropped.as_tensor() if src is not img else cropped.as_tensor()[sel]  # (S, X, Y, Z)
                slices = arr.permute(0, 3, 1, 2).reshape(-1, 1, x, y).clone()
                if self.zscore_region == "crop":
                    slices = percentile_zscore(slices)
                slices = with_neighbours(slices, z, self.context_slices)  # 2.5D: neighbours as channels
            with stage("network"):
                logits_probs = self._forward(slices)
            probs = logits_probs.reshape(len(sel), z, 4, x, y).permute(0, 2, 3, 4, 1)  # (T,4,X,Y,Z)
            fallback = self.crop_fallback_size
            if fallback is None or fallback <= size or not _touches_border(probs):
                break
            centre = _foreground_centre_in(img, cropped, probs)
            size = fallback
            crop = HeartCrop((size, size))
        self.last_crop_size = size
        axes = _inplane_map(cropped.affine, in_affine)  # crop voxels of the input grid
        if axes is not None:  # in-plane scaling + shift only: exact bilinear inversion as two matmuls
            sx, ox, sy, oy = axes
            wx = _bilinear_weights(in_shape[0], x, sx, ox)
            wy = _bilinear_weights(in_shape[1], y, sy, oy)
            for g0 in range(0, len(sel), _INVERT_GROUP):
                with stage("inverse"):
                    group = _separable_resample(probs[g0 : g0 + _INVERT_GROUP], wx, wy)  # (G, 4, Z, Y, X)
                for k in range(group.shape[0]):
                    yield sel[g0 + k], group[k].numpy()
            return
        meta = {key: v for key, v in cropped.meta.items() if key != "affine"}
        for g0 in range(0, len(sel), _INVERT_GROUP):
            with stage("inverse"):
                group = probs[g0 : g0 + _INVERT_GROUP]  # phases inverted together as channels
                p: torch.Tensor = MetaTensor(
                    group.reshape(-1, x, y, z).contiguous(), affine=cropped.affine.clone(), meta=dict(meta)
                )
                p.applied_operations = copy.deepcopy(cropped.applied_operations)  # type: ignore[attr-defined]
                p = crop.inverse(p)
                if resample is not None:
                    p = resample.inverse(p)
                arr_p = np.asarray(p.detach().cpu().numpy(), dtype=np.float32)  # (G*4, X, Y, Z), input grid
                arr_p = arr_p.reshape(group.shape[0], 4, *arr_p.shape[1:])
            for k in range(group.shape[0]):
                yield sel[g0 + k], np.ascontiguousarray(np.transpose(arr_p[k], (0, 3, 2, 1)))

    def predict(
        self,
        study: CineStudy,
        phases: Sequence[int] | None = None,
        uncertainty: dict[int, float] | None = None,
    ) -> dict[int, LabelArray]:
        """Label maps (argmax of the probabilities) on the input grid.

        Args:
            study: the study.
            phases: phases to segment (default: all).
            uncertainty: when given, filled with each phase's mean predictive entropy in the heart region
                (:func:`~cardiacseg.metrics.uncertainty.heart_region_entropy`, nats; with TTA the
                probabilities are the views' mean, so the views' disagreement counts).

        Returns:
            ``{phase: (Z, Y, X) uint8}`` with internal labels.

        Example:
            >>> labels = predictor.predict(study, [study.ed_phase, study.es_phase])  # doctest: +SKIP

        """
        out = {}
        for t, p in self._iter_probabilities(study, phases):  # probabilities of all phases never held at once
            with stage("post-processing"):
                if uncertainty is not None:
                    from cardiacseg.metrics.uncertainty import heart_region_entropy

                    uncertainty[t] = heart_region_entropy(p)
                lab = np.argmax(p, axis=0).astype(np.uint8)
                out[t] = lab if self.postprocess is None else self.postprocess(lab, study.spacing_mm)
        return out
