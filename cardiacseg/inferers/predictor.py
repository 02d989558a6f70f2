"""Slice-wise prediction of whole cine studies with a 2D network (load once, predict many studies).

Per study: in-plane resampling to the model's spacing (when the study's spacing is known), label-free
heart localisation from the temporal variance over the phases, a fixed-size heart crop, per-slice
percentile z-score, batched 2D inference over all (phase, slice) pairs, then the crop and the resampling
are inverted (MONAI's applied-operation records) so that the labels lie on the input grid.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from torch import nn

from cardiacseg.io.study import CineStudy
from cardiacseg.networks.factory import get_network
from cardiacseg.networks.weights import load_state_dict_file
from cardiacseg.transforms.intensity.array import PercentileNormalize
from cardiacseg.transforms.spatial.array import HeartCrop, InPlaneSpacing
from cardiacseg.transforms.utils import inplane_spacing_mm, study_to_metatensor
from cardiacseg.typing import LabelArray, PathLike

__all__ = ["SlicePredictor"]


class SlicePredictor:
    """Predict LV/MYO/RV label maps of cine studies with a 2D segmentation network.

    Args:
        network: a 2D network with 4 output channels (BG, LV, MYO, RV).
        target_spacing_mm: in-plane spacing the network was trained at (``None``: no resampling).
        crop_size: side of the heart crop in pixels at the target spacing.
        batch_size: slices per forward pass.
        device: torch device.

    Example:
        >>> predictor = SlicePredictor.from_bundle("bundles/cardiac_cine_seg")  # doctest: +SKIP
        >>> labels = predictor.predict(study)  # doctest: +SKIP

    """

    def __init__(
        self,
        network: nn.Module,
        target_spacing_mm: float | None = 1.5,
        crop_size: int = 160,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
    ):
        self.network = network.to(device).eval()
        self.target_spacing_mm = target_spacing_mm
        self.crop_size = crop_size
        self.batch_size = batch_size
        self.device = torch.device(device)
        self._normalize = PercentileNormalize(mode="zscore")

    @classmethod
    def from_checkpoint(cls, weights: PathLike, network_name: str = "unet", **kwargs: Any) -> SlicePredictor:
        """Build a predictor from a state-dict file.

        Args:
            weights: ``model.pt`` saved by the training bundle.
            network_name: name for :func:`~cardiacseg.networks.get_network`.
            kwargs: passed to the constructor.

        Returns:
            The predictor.

        Raises:
            FileNotFoundError: the file does not exist.

        """
        net = get_network(network_name, 2, 1, 4)
        net.load_state_dict(load_state_dict_file(weights))
        return cls(net, **kwargs)

    @classmethod
    def from_bundle(cls, bundle_dir: PathLike, **kwargs: Any) -> SlicePredictor:
        """Build a predictor from a bundle folder (``configs/inference.json`` settings, ``models/model.pt``).

        Args:
            bundle_dir: the bundle folder.
            kwargs: override constructor arguments.

        Returns:
            The predictor.

        Raises:
            FileNotFoundError: missing weights.

        """
        import json

        root = Path(bundle_dir)
        settings: dict[str, Any] = {"network_name": "unet", "target_spacing_mm": 1.5, "crop_size": 160}
        cfg = root / "configs" / "inference.json"
        if cfg.exists():
            data = json.loads(cfg.read_text())
            for key in settings:
                if key in data and not str(data[key]).startswith(("$", "@")):
                    settings[key] = data[key]
        settings.update(kwargs)
        name = settings.pop("network_name")
        return cls.from_checkpoint(root / "models" / "model.pt", name, **settings)

    def _forward(self, slices: torch.Tensor) -> torch.Tensor:
        outs = []
        with torch.inference_mode():
            for i in range(0, slices.shape[0], self.batch_size):
                batch = slices[i : i + self.batch_size].to(self.device)
                outs.append(torch.softmax(self.network(batch).float(), dim=1).cpu())
        return torch.cat(outs)

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
        sel = list(range(study.n_phases)) if phases is None else list(phases)
        img: torch.Tensor = study_to_metatensor(study)
        spacing = inplane_spacing_mm(img)
        resample = None
        if self.target_spacing_mm is not None and spacing is not None:
            resample = InPlaneSpacing(self.target_spacing_mm, mode=1)
            img = resample(img)
        crop = HeartCrop((self.crop_size, self.crop_size))
        centre, _ = crop.find_centre(img)
        cropped = crop(img, centre=centre)
        assert isinstance(cropped, MetaTensor)
        _, x, y, z = cropped.shape
        arr = cropped.as_tensor()[sel]  # (T, X, Y, Z)
        slices = arr.permute(0, 3, 1, 2).reshape(-1, 1, x, y).clone()
        for i in range(slices.shape[0]):
            slices[i] = torch.as_tensor(self._normalize(slices[i]))
        probs = self._forward(slices).reshape(len(sel), z, 4, x, y).permute(0, 2, 3, 4, 1)  # (T, 4, X, Y, Z)
        out: dict[int, np.ndarray] = {}
        for k, t in enumerate(sel):
            p: torch.Tensor = MetaTensor(
                probs[k].contiguous(), affine=cropped.affine.clone(), meta=dict(cropped.meta)
            )
            p.applied_operations = copy.deepcopy(cropped.applied_operations)  # type: ignore[attr-defined]
            p = crop.inverse(p)
            if resample is not None:
                p = resample.inverse(p)
            arr_p = np.asarray(p.detach().cpu().numpy(), dtype=np.float32)  # (4, X, Y, Z) on the input grid
            out[t] = np.ascontiguousarray(np.transpose(arr_p, (0, 3, 2, 1)))
        return out

    def predict(self, study: CineStudy, phases: Sequence[int] | None = None) -> dict[int, LabelArray]:
        """Label maps (argmax of the probabilities) on the input grid.

        Args:
            study: the study.
            phases: phases to segment (default: all).

        Returns:
            ``{phase: (Z, Y, X) uint8}`` with internal labels.

        Example:
            >>> labels = predictor.predict(study, [study.ed_phase, study.es_phase])  # doctest: +SKIP

        """
        return {
            t: np.argmax(p, axis=0).astype(np.uint8)
            for t, p in self.predict_probabilities(study, phases).items()
        }
