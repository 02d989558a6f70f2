"""Differentiable, bounded, batch-wise image perturbations for adversarial data augmentation (AdvChain).

AdvChain (Chen C, Qin C, Ouyang C, et al., "Enhancing MR image segmentation with realistic adversarial
data augmentation", Medical Image Analysis 2022, arXiv:2108.03429), as used against respiratory motion in
the CMRxMotion study (``cmrxmotion.txt``, section 2.4): a chain of parametric perturbations — intensity
noise, a smooth multiplicative bias field, a small affine transform and a smooth diffeomorphic
deformation — whose parameters are optimised by a few steps of projected gradient ascent to maximise the
disagreement between the network's predictions on the clean and the perturbed image; the network then
trains on the supervised loss plus a consistency loss on that perturbation
(:class:`cardiacseg.engines.adversarial.AdversarialIteration`).

Every perturbation works on a batch ``(B, C, H, W)`` of 2D slices, is differentiable in its parameters
and the image, is the identity at zero strength (``strength=0`` or parameters at zero), keeps its
parameters within bounds (:meth:`AdversarialPerturbation.project`), and is seeded (a ``torch.Generator``
passed to :meth:`AdversarialPerturbation.reset`). Spatial perturbations also warp other maps the same way
(:meth:`AdversarialPerturbation.warp`, e.g. the clean prediction); intensity perturbations leave them
alone. Displacements are in pixels and use MONAI's ``Warp`` and ``DVF2DDF`` (scaling and squaring).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import DVF2DDF, Warp
from torch import nn

__all__ = [
    "AdvAffine",
    "AdvBias",
    "AdvMorph",
    "AdvNoise",
    "AdversarialChain",
    "AdversarialPerturbation",
    "default_chain",
]


class AdversarialPerturbation(nn.Module):
    """A parametric perturbation: ``reset`` draws parameters for a batch, ``forward`` applies them.

    Args:
        strength: scales the perturbation; 0 makes it the identity.

    Attributes:
        spatial: whether it moves pixels (then :meth:`warp` applies the same motion to other maps).

    """

    spatial = False

    def __init__(self, strength: float = 1.0) -> None:
        super().__init__()
        if strength < 0:
            raise ValueError(f"strength must be >= 0, got {strength}")
        self.strength = float(strength)
        self.params = nn.Parameter(torch.zeros(0), requires_grad=True)

    def _shape(self, x: torch.Tensor) -> tuple[int, ...]:
        raise NotImplementedError

    def reset(
        self, x: torch.Tensor, generator: torch.Generator | None = None, init_fraction: float = 0.5
    ) -> None:
        """Draw random parameters for the batch ``x`` (uniform within ``init_fraction`` of the bounds).

        Args:
            x: the batch ``(B, C, H, W)`` the parameters are for.
            generator: seeds the draw (reproducible augmentation).
            init_fraction: fraction of the bound the initial values may reach (0: start at the identity).

        """
        shape = self._shape(x)
        u = torch.rand(shape, generator=generator, dtype=torch.float32) * 2.0 - 1.0
        self.params = nn.Parameter((u * init_fraction).to(x.device), requires_grad=True)
        self.project()

    @torch.no_grad()
    def project(self) -> None:
        """Clamp the parameters into their bounds (values are in units of the bound: ``[-1, 1]``)."""
        self.params.clamp_(-1.0, 1.0)

    def warp(self, y: torch.Tensor) -> torch.Tensor:
        """Apply the perturbation's motion to another map ``(B, K, H, W)`` (identity for intensity ones)."""
        return y


class AdvNoise(AdversarialPerturbation):
    """Additive noise of RMS at most ``epsilon`` per image (in the image's units, e.g. z-scores).

    Args:
        epsilon: RMS bound of the noise.
        strength: scales ``epsilon``.

    Example:
        >>> noise, x = AdvNoise(0.1), torch.zeros(2, 1, 8, 8)
        >>> noise.reset(x, torch.Generator().manual_seed(0))
        >>> bool(noise(x).pow(2).mean(dim=(1, 2, 3)).sqrt().max() <= 0.1 + 1e-6)
        True

    """

    def __init__(self, epsilon: float = 0.1, strength: float = 1.0) -> None:
        super().__init__(strength)
        self.epsilon = float(epsilon)

    def _shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return tuple(x.shape)

    @torch.no_grad()
    def project(self) -> None:
        """Scale each image's noise down to RMS 1 (in units of ``epsilon``) when it exceeds it."""
        rms = self.params.pow(2).mean(dim=tuple(range(1, self.params.ndim)), keepdim=True).sqrt()
        self.params.mul_(torch.clamp(1.0 / rms.clamp_min(1e-12), max=1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + epsilon * strength * params``."""
        return x + self.epsilon * self.strength * self.params


class AdvBias(AdversarialPerturbation):
    """A smooth multiplicative bias field ``exp(b)``, ``|b| <= magnitude``, from a coarse control grid.

    Args:
        control_points: control points per side (bicubic upsampling makes the field smooth).
        magnitude: bound of the log-field ``b`` (0.3: gain between 0.74 and 1.35).
        strength: scales ``magnitude``.

    Example:
        >>> bias, x = AdvBias(4, 0.3), torch.ones(1, 1, 16, 16)
        >>> bias.reset(x, torch.Generator().manual_seed(0))
        >>> y = bias(x); bool((y.min() >= math.exp(-0.3) - 1e-5) and (y.max() <= math.exp(0.3) + 1e-5))
        True

    """

    def __init__(self, control_points: int = 4, magnitude: float = 0.3, strength: float = 1.0) -> None:
        super().__init__(strength)
        if control_points < 2:
            raise ValueError(f"control_points must be >= 2, got {control_points}")
        self.control_points = control_points
        self.magnitude = float(magnitude)

    def _shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (x.shape[0], 1, self.control_points, self.control_points)

    def field(self, size: Sequence[int]) -> torch.Tensor:
        """Return the log bias field ``(B, 1, H, W)``, within ``±magnitude * strength``."""
        up = F.interpolate(self.params, size=tuple(size), mode="bicubic", align_corners=True)
        return self.magnitude * self.strength * up.clamp(-1.0, 1.0)  # bicubic can overshoot the controls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x * exp(field)``."""
        return x * torch.exp(self.field(x.shape[2:]))


def _reference_grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    """Pixel coordinates ``(2, H, W)``: row index, column index."""
    rows = torch.arange(h, dtype=torch.float32, device=device)
    cols = torch.arange(w, dtype=torch.float32, device=device)
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"))


class _Spatial(AdversarialPerturbation):
    spatial = True

    def __init__(self, strength: float = 1.0) -> None:
        super().__init__(strength)
        self.warp_layer = Warp(mode="bilinear", padding_mode="border")

    def ddf(self, size: Sequence[int]) -> torch.Tensor:
        """Return the dense displacement ``(B, 2, H, W)`` in pixels (row, column)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Resample ``x`` along the displacement field (bilinear, border padding)."""
        return self.warp(x)

    def warp(self, y: torch.Tensor) -> torch.Tensor:
        """Resample ``y`` ``(B, K, H, W)`` along the same displacement field."""
        ddf = self.ddf(y.shape[2:]).to(y.dtype)
        out: torch.Tensor = self.warp_layer(y, ddf)
        return out


class AdvAffine(_Spatial):
    """A small affine transform about the image centre: rotation, isotropic scale and translation.

    Args:
        max_rotation_deg: rotation bound in degrees.
        max_scale: bound of the relative scale change (0.1: 0.9 to 1.1).
        max_translation: translation bound as a fraction of the image side.
        strength: scales every bound.

    Example:
        >>> aff = AdvAffine(); x = torch.rand(2, 1, 16, 16); aff.reset(x, init_fraction=0.0)
        >>> bool(torch.allclose(aff(x), x, atol=1e-5))
        True

    """

    def __init__(
        self,
        max_rotation_deg: float = 10.0,
        max_scale: float = 0.1,
        max_translation: float = 0.05,
        strength: float = 1.0,
    ) -> None:
        super().__init__(strength)
        self.max_rotation = math.radians(max_rotation_deg)
        self.max_scale = float(max_scale)
        self.max_translation = float(max_translation)

    def _shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (x.shape[0], 4)  # rotation, scale, row shift, column shift (in units of their bounds)

    def ddf(self, size: Sequence[int]) -> torch.Tensor:
        """Displacement of the affine map in pixels (row, column)."""
        h, w = int(size[0]), int(size[1])
        p = self.params * self.strength
        theta = p[:, 0] * self.max_rotation
        scale = 1.0 + p[:, 1] * self.max_scale
        shift = torch.stack([p[:, 2] * h, p[:, 3] * w], dim=1) * self.max_translation
        grid = _reference_grid(h, w, self.params.device)
        centre = torch.tensor([(h - 1) / 2, (w - 1) / 2], device=grid.device).view(2, 1, 1)
        rel = (grid - centre).unsqueeze(0)  # (1, 2, H, W)
        cos, sin = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
        s = scale.view(-1, 1, 1)
        rows = s * (cos * rel[:, 0] - sin * rel[:, 1])
        cols = s * (sin * rel[:, 0] + cos * rel[:, 1])
        moved = torch.stack([rows, cols], dim=1) + shift.view(-1, 2, 1, 1)
        return moved - rel


class AdvMorph(_Spatial):
    """A smooth diffeomorphic deformation: a coarse velocity field, upsampled and integrated.

    The stationary velocity field (``control_points`` per side, bicubic upsampling, at most
    ``max_displacement`` pixels per component) is integrated by scaling and squaring (MONAI
    ``DVF2DDF``), which keeps the deformation invertible.

    Args:
        control_points: control points per side.
        max_displacement: bound of each velocity component in pixels.
        steps: scaling-and-squaring steps.
        strength: scales ``max_displacement``.

    Example:
        >>> morph = AdvMorph(); x = torch.rand(1, 1, 16, 16); morph.reset(x, torch.Generator().manual_seed(1))
        >>> morph(x).shape
        torch.Size([1, 1, 16, 16])

    """

    def __init__(
        self, control_points: int = 6, max_displacement: float = 3.0, steps: int = 7, strength: float = 1.0
    ) -> None:
        super().__init__(strength)
        if control_points < 2:
            raise ValueError(f"control_points must be >= 2, got {control_points}")
        self.control_points = control_points
        self.max_displacement = float(max_displacement)
        self.integrate = DVF2DDF(num_steps=steps, mode="bilinear", padding_mode="border")

    def _shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (x.shape[0], 2, self.control_points, self.control_points)

    def ddf(self, size: Sequence[int]) -> torch.Tensor:
        """Return the integrated displacement field in pixels (row, column)."""
        v = F.interpolate(self.params, size=tuple(int(s) for s in size), mode="bicubic", align_corners=True)
        dvf = self.max_displacement * self.strength * v.clamp(-1.0, 1.0)
        out: torch.Tensor = self.integrate(dvf)
        return out


class AdversarialChain(nn.Module):
    """Perturbations applied in order; ``warp`` applies only the spatial ones (to predictions or labels).

    Args:
        perturbations: the chain, e.g. :func:`default_chain`.

    Example:
        >>> chain = default_chain(); x = torch.rand(2, 1, 32, 32)
        >>> chain.reset(x, torch.Generator().manual_seed(0)); chain(x).shape
        torch.Size([2, 1, 32, 32])

    """

    def __init__(self, perturbations: Sequence[AdversarialPerturbation]) -> None:
        super().__init__()
        self.perturbations = nn.ModuleList(perturbations)

    def reset(
        self, x: torch.Tensor, generator: torch.Generator | None = None, init_fraction: float = 0.5
    ) -> None:
        """Draw new parameters for every perturbation (see :meth:`AdversarialPerturbation.reset`)."""
        for p in self.perturbations:
            assert isinstance(p, AdversarialPerturbation)
            p.reset(x, generator, init_fraction)

    def project(self) -> None:
        """Clamp every perturbation's parameters into their bounds."""
        for p in self.perturbations:
            assert isinstance(p, AdversarialPerturbation)
            p.project()

    def adversarial_parameters(self) -> list[nn.Parameter]:
        """Return the parameters the inner maximisation optimises."""
        return [p.params for p in self.perturbations if isinstance(p, AdversarialPerturbation)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply every perturbation to the batch ``(B, C, H, W)``."""
        for p in self.perturbations:
            x = p(x)
        return x

    def warp(self, y: torch.Tensor) -> torch.Tensor:
        """Apply the spatial perturbations, in order, to a map ``(B, K, H, W)``."""
        for p in self.perturbations:
            assert isinstance(p, AdversarialPerturbation)
            if p.spatial:
                y = p.warp(y)
        return y


def default_chain(strength: float = 1.0) -> AdversarialChain:
    """AdvChain's composition: noise, bias field, affine, deformation (bounds in the classes' defaults).

    Args:
        strength: scales every bound (0: the identity chain).

    Returns:
        The chain.

    Example:
        >>> [type(p).__name__ for p in default_chain().perturbations]
        ['AdvNoise', 'AdvBias', 'AdvAffine', 'AdvMorph']

    """
    return AdversarialChain(
        [
            AdvNoise(strength=strength),
            AdvBias(strength=strength),
            AdvAffine(strength=strength),
            AdvMorph(strength=strength),
        ]
    )
