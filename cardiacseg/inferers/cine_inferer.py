"""A MONAI :class:`~monai.inferers.Inferer` running the cardiacseg slice-wise pipeline on a short-axis stack.

Generic MONAI tooling (a bundle's ``evaluator``, MONAI Label's ``BundleInferTask``, model-zoo scripts)
calls ``inferer(inputs, network)`` on a batch of images loaded by MONAI transforms. This inferer gives
those tools exactly what ``cardiacseg segment`` computes for the same image: in-plane resampling to the
model's spacing, the heart crop, the per-slice z-score, the 2D network on every slice with the bundle's
test-time augmentation, and the probabilities mapped back to the input grid
(:meth:`~cardiacseg.inferers.SlicePredictor.predict_probabilities`). Post-processing is left to the
bundle's ``postprocessing`` (:class:`~cardiacseg.postprocess.dictionary.PostProcessd`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import Inferer
from torch import nn

from cardiacseg.inferers.predictor import SlicePredictor
from cardiacseg.io.nifti import spacing_from_affine
from cardiacseg.io.study import CineStudy

__all__ = ["CineSliceInferer"]


def _no_geometry(meta: dict[str, Any], b: int) -> bool:
    """Whether batch item ``b`` comes from a NIfTI header that declares no geometry.

    That is ``qform_code == sform_code == 0`` and unit ``pixdim[1:4]``: the rule of
    :func:`cardiacseg.io.nifti.read_nifti_study` for an unknown spacing.
    """
    values = []
    for key, item_ndim in (("qform_code", 0), ("sform_code", 0), ("pixdim", 1)):
        if key not in meta:
            return False
        v = np.asarray(torch.as_tensor(meta[key]).cpu(), np.float64)
        values.append(np.ravel(v[b] if v.ndim > item_ndim else v))  # batched meta has a leading B axis
    q, s, pixdim = values
    return bool(q[0] == 0 and s[0] == 0 and pixdim.size >= 4 and np.allclose(pixdim[1:4], 1.0))


class CineSliceInferer(Inferer):
    """Slice-wise inference of one short-axis stack per batch item, as ``cardiacseg segment`` does it.

    Args:
        target_spacing_mm: in-plane spacing the network was trained at (``None``: no resampling).
        crop_size: side of the heart crop in pixels at the target spacing.
        crop_fallback_size: larger crop used when the prediction touches the crop border (``None``: off).
        batch_size: network inputs per forward pass.
        tta: ``"none"``, ``"flip"`` or ``"flip_rot90"`` (see :class:`~cardiacseg.inferers.SlicePredictor`).
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"``.
        zscore_region: ``"crop"`` or ``"slice"``.

    Inputs are ``(B, 1, X, Y, Z)`` tensors in NIfTI voxel order (what MONAI's ``LoadImaged`` +
    ``EnsureChannelFirstd`` give for a 3D NIfTI short-axis stack: one cardiac phase). The spacing is read
    from the :class:`~monai.data.MetaTensor` affine; a plain tensor, or a NIfTI whose header says it has
    no geometry (``qform_code`` and ``sform_code`` both 0, as :func:`~cardiacseg.io.nifti.write_nifti`
    writes an image of unknown spacing), is handled like a study of unknown spacing
    (:func:`~cardiacseg.inferers.assumed_pixel_spacing`), exactly as ``cardiacseg segment`` reads it. The
    output is ``(B, 4, X, Y, Z)`` float32 softmax probabilities (background, LV, MYO, RV) on the input grid, a
    MetaTensor carrying the input's affine and meta-data.

    Raises:
        ValueError: inputs that are not 5-D or have more than one channel (one phase per image).

    Example:
        >>> inferer = CineSliceInferer(tta="none")  # doctest: +SKIP
        >>> probs = inferer(image[None], network)  # (1, 4, X, Y, Z)  # doctest: +SKIP

    """

    def __init__(
        self,
        target_spacing_mm: float | None = 1.5,
        crop_size: int = 160,
        crop_fallback_size: int | None = None,
        batch_size: int = 32,
        tta: str = "none",
        precision: str = "fp32",
        zscore_region: str = "crop",
    ) -> None:
        super().__init__()
        self.settings: dict[str, Any] = {
            "target_spacing_mm": target_spacing_mm,
            "crop_size": crop_size,
            "crop_fallback_size": crop_fallback_size,
            "batch_size": batch_size,
            "tta": tta,
            "precision": precision,
            "zscore_region": zscore_region,
        }

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Probabilities of each stack in the batch on its own grid.

        Args:
            inputs: ``(B, 1, X, Y, Z)`` images.
            network: a 2D network with 4 output channels (or a callable module).
            args: ignored (MONAI's inferer signature).
            kwargs: ignored.

        Returns:
            ``(B, 4, X, Y, Z)`` float32 probabilities.

        Raises:
            ValueError: inputs that are not ``(B, 1, X, Y, Z)``.

        """
        if inputs.ndim != 5 or inputs.shape[1] != 1:
            raise ValueError(
                f"CineSliceInferer expects (B, 1, X, Y, Z) short-axis stacks (one cardiac phase per image), "
                f"got shape {tuple(inputs.shape)}"
            )
        if not isinstance(network, nn.Module):
            raise ValueError(
                f"CineSliceInferer needs a torch nn.Module network, got {type(network).__name__}"
            )
        device = next(network.parameters()).device
        predictor = SlicePredictor(network, device=device, **self.settings)
        affine = inputs.affine if isinstance(inputs, MetaTensor) else None
        meta: dict[str, Any] = dict(inputs.meta) if isinstance(inputs, MetaTensor) else {}
        outs = []
        for b in range(inputs.shape[0]):
            aff = None
            if affine is not None and not _no_geometry(meta, b):
                aff = np.asarray(torch.as_tensor(affine[b] if affine.ndim == 3 else affine).cpu(), np.float64)
            image = np.asarray(torch.as_tensor(inputs[b, 0]).detach().float().cpu().numpy())  # (X, Y, Z)
            study = CineStudy(
                image=np.ascontiguousarray(np.transpose(image, (2, 1, 0))[None]),  # (1, Z, Y, X)
                spacing_mm=None if aff is None else spacing_from_affine(aff),
                affine=aff,
                source="CineSliceInferer input",
            )
            probs = predictor.predict_probabilities(study)[0]  # (4, Z, Y, X)
            outs.append(torch.from_numpy(np.ascontiguousarray(np.transpose(probs, (0, 3, 2, 1)))))
        out = torch.stack(outs).to(inputs.device)
        if isinstance(inputs, MetaTensor):
            return MetaTensor(out, affine=inputs.affine, meta=inputs.meta)
        return out
