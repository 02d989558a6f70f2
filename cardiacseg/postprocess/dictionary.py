"""The post-processing steps as a MONAI dictionary transform, for bundle ``postprocessing`` chains."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from cardiacseg.postprocess.select import PostProcessor
from cardiacseg.transforms.utils import spacing_zyx_mm

__all__ = ["PostProcessd"]


class PostProcessd(MapTransform):
    """Apply :class:`~cardiacseg.postprocess.PostProcessor` steps to ``(1, X, Y, Z)`` label maps.

    The label maps are internal labels (0 BG, 1 LV, 2 MYO, 3 RV) in NIfTI voxel order with one channel, as
    after ``AsDiscreted(argmax=True)`` in a MONAI bundle; the steps see them as ``(Z, Y, X)`` with the
    spacing taken from the MetaTensor affine (unknown for plain tensors), exactly as
    :meth:`~cardiacseg.inferers.SlicePredictor.predict` applies them. The input is not modified.

    Args:
        keys: keys of the label maps.
        steps: step names (:data:`~cardiacseg.postprocess.STEPS`); e.g. the bundle's
            ``configs/postprocessing.json`` via
            :meth:`~cardiacseg.postprocess.PostprocessingChoice.load_steps`.
        allow_missing_keys: do not raise for absent keys.

    Raises:
        ValueError: an unknown step, or a label map that is not ``(1, X, Y, Z)``.

    Example:
        >>> import torch
        >>> lab = torch.zeros(1, 8, 8, 2); lab[0, 1:4, 1:4, :] = 1; lab[0, 6, 6, 0] = 1
        >>> out = PostProcessd("pred", ["lcc_volume"])({"pred": lab})["pred"]
        >>> int(out.sum()), int(lab.sum())
        (18, 19)

    """

    def __init__(self, keys: KeysCollection, steps: Sequence[str], allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.processor = PostProcessor(steps)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Post-process the label maps under ``keys``.

        Args:
            data: a sample dictionary.

        Returns:
            A new dictionary with the post-processed label maps (same type, dtype and meta-data).

        Raises:
            ValueError: a label map that is not ``(1, X, Y, Z)``.

        """
        d = dict(data)
        for key in self.key_iterator(d):
            lab = d[key]
            if lab.ndim != 4 or lab.shape[0] != 1:
                raise ValueError(
                    f"PostProcessd expects (1, X, Y, Z) label maps under {key!r}, got {tuple(lab.shape)}"
                )
            spacing = spacing_zyx_mm(lab)
            arr = np.asarray(
                torch.as_tensor(lab).detach().cpu().numpy() if isinstance(lab, torch.Tensor) else lab
            )
            zyx = np.transpose(arr[0], (2, 1, 0)).astype(np.uint8)
            out = np.transpose(self.processor(zyx, spacing), (2, 1, 0))[None].astype(arr.dtype)
            if isinstance(lab, MetaTensor):
                d[key] = MetaTensor(
                    torch.from_numpy(np.ascontiguousarray(out)), affine=lab.affine, meta=lab.meta
                )
            elif isinstance(lab, torch.Tensor):
                d[key] = torch.from_numpy(np.ascontiguousarray(out)).to(lab.device)
            else:
                d[key] = out
        return d
