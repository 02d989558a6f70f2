"""A synthetic short-axis cine phantom with analytic volumes, for testing the clinical maths.

Every slice is a slab of thickness ``spacing_z`` holding elliptic cross-sections: the LV blood pool
(ellipse), the myocardium (a confocal-aspect ring around it whose area is constant over the cycle, as an
incompressible muscle) and the RV (a separate ellipse beside the LV). The analytic volume of a structure
is the sum over slices of its ellipse area times the slab thickness; ``PhantomTruth`` carries these,
computed from the formulae, not from the voxels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cardiacseg.enums import CardiacLabel
from cardiacseg.io.nifti import affine_from_spacing
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import LabelArray, SpacingZYX

__all__ = ["PhantomTruth", "make_cine_phantom"]


@dataclass(frozen=True)
class PhantomTruth:
    """Analytic values of a phantom.

    Attributes:
        lv_ml, myo_ml, rv_ml: volume of each structure in each phase (mL).
        ed_phase, es_phase: phases of largest and smallest LV volume.
        lv_ef_percent, rv_ef_percent: ejection fractions.
        lv_mass_g: myocardial volume at ED x 1.05 g/mL.

    Example:
        >>> _, truth = make_cine_phantom(n_phases=4)
        >>> truth.ed_phase, truth.es_phase
        (0, 2)

    """

    lv_ml: tuple[float, ...]
    myo_ml: tuple[float, ...]
    rv_ml: tuple[float, ...]
    ed_phase: int
    es_phase: int
    lv_ef_percent: float
    rv_ef_percent: float
    lv_mass_g: float


def _ellipse(
    shape: tuple[int, int],
    spacing_yx: tuple[float, float],
    centre_mm: tuple[float, float],
    a_mm: float,
    b_mm: float,
) -> np.ndarray:
    y = (np.arange(shape[0]) + 0.0) * spacing_yx[0]
    x = (np.arange(shape[1]) + 0.0) * spacing_yx[1]
    yy, xx = np.meshgrid(y, x, indexing="ij")
    return np.asarray(((xx - centre_mm[1]) / a_mm) ** 2 + ((yy - centre_mm[0]) / b_mm) ** 2 <= 1.0)


def make_cine_phantom(
    n_phases: int = 20,
    n_slices: int = 10,
    shape: tuple[int, int] = (192, 192),
    spacing_mm: SpacingZYX = (8.0, 1.0, 1.0),
    lv_radius_mm: float = 27.0,
    wall_mm: float = 9.0,
    lv_contraction: float = 0.3,
    rv_contraction: float = 0.25,
    noise: float = 0.03,
    seed: int = 0,
) -> tuple[CineStudy, PhantomTruth]:
    """Make a cine phantom with labels in every phase and its analytic truth.

    Radii shrink from base to apex as an ellipsoid would (down to 55 % at the apical slice) and over the
    cycle by ``1 - c (1 - cos(2 pi t / T)) / 2``, so ED is phase 0 and ES phase ``T // 2`` (even ``T``).

    Args:
        n_phases: number of phases ``T`` (even, >= 2).
        n_slices: number of slices ``Z``.
        shape: in-plane size ``(Y, X)``.
        spacing_mm: ``(z, y, x)`` spacing.
        lv_radius_mm: LV blood-pool semi-axis along x at the basal slice at ED (the y semi-axis is 85 %).
        wall_mm: myocardial wall thickness at ED (basal slice).
        lv_contraction: fractional radius reduction of the LV at ES.
        rv_contraction: fractional radius reduction of the RV at ES.
        noise: standard deviation of Gaussian noise added to the image.
        seed: random seed for the noise.

    Returns:
        ``(study, truth)``; the study carries labels for every phase and no ED/ES (to be detected).

    Raises:
        ValueError: odd ``n_phases`` or a heart that does not fit the field of view.

    Example:
        >>> study, truth = make_cine_phantom(n_phases=4, n_slices=3)
        >>> study.image.shape, round(truth.lv_ef_percent, 1)
        ((4, 3, 192, 192), 51.0)

    """
    if n_phases < 2 or n_phases % 2:
        raise ValueError(f"n_phases must be even and >= 2, got {n_phases}")
    dz, dy, dx = spacing_mm
    centre = (shape[0] * dy / 2.0, shape[1] * dx * 0.58)
    rng = np.random.default_rng(seed)
    image = np.full((n_phases, n_slices, *shape), 0.1, dtype=np.float32)
    labels: dict[int, LabelArray] = {}
    lv_ml, myo_ml, rv_ml = [], [], []
    for t in range(n_phases):
        squeeze = 0.5 * (1.0 - math.cos(2.0 * math.pi * t / n_phases))
        f_lv = 1.0 - lv_contraction * squeeze
        f_rv = 1.0 - rv_contraction * squeeze
        lab = np.zeros((n_slices, *shape), dtype=np.uint8)
        lv_t = myo_t = rv_t = 0.0
        for z in range(n_slices):
            taper = math.sqrt(1.0 - (0.835 * z / max(n_slices - 1, 1)) ** 2)
            a0, b0 = lv_radius_mm * taper, 0.85 * lv_radius_mm * taper
            w = wall_mm * (0.6 + 0.4 * taper)
            myo_area = math.pi * ((a0 + w) * (b0 + w) - a0 * b0)
            a, b = a0 * f_lv, b0 * f_lv
            k = math.sqrt(1.0 + myo_area / (math.pi * a * b))
            ao, bo = a * k, b * k
            ra, rb = 0.8 * a0 * f_rv, 1.2 * b0 * f_rv
            ao_ed = a0 * math.sqrt(1.0 + myo_area / (math.pi * a0 * b0))  # widest epicardium (ED)
            rv_centre = (centre[0], centre[1] - ao_ed - ra - 4.0)
            if (
                rv_centre[1] - ra < 0
                or centre[1] + ao > shape[1] * dx
                or centre[0] + max(bo, rb) > shape[0] * dy
            ):
                raise ValueError(
                    "phantom heart does not fit the field of view; enlarge shape or reduce radii"
                )
            epi = _ellipse(shape, (dy, dx), centre, ao, bo)
            endo = _ellipse(shape, (dy, dx), centre, a, b)
            rv = _ellipse(shape, (dy, dx), rv_centre, ra, rb)
            lab[z][epi] = CardiacLabel.MYO
            lab[z][endo] = CardiacLabel.LV
            if (rv & epi).any():
                raise ValueError("phantom RV overlaps the myocardium; increase the field of view")
            lab[z][rv] = CardiacLabel.RV
            lv_t += math.pi * a * b * dz / 1000.0
            myo_t += math.pi * (ao * bo - a * b) * dz / 1000.0
            rv_t += math.pi * ra * rb * dz / 1000.0
        labels[t] = lab
        lv_ml.append(lv_t)
        myo_ml.append(myo_t)
        rv_ml.append(rv_t)
        intensity = np.choose(lab, [0.1, 0.9, 0.3, 0.8]).astype(np.float32)
        image[t] = intensity + rng.normal(0.0, noise, intensity.shape).astype(np.float32)
    es = n_phases // 2
    study = CineStudy(
        image=image,
        spacing_mm=spacing_mm,
        affine=affine_from_spacing(spacing_mm),
        phase_times_ms=tuple(40.0 * t for t in range(n_phases)),
        slice_positions_mm=tuple(dz * z for z in range(n_slices)),
        phase_ids=tuple(range(n_phases)),
        labels=labels,
        source=f"synthetic phantom (seed {seed})",
    )
    truth = PhantomTruth(
        lv_ml=tuple(lv_ml),
        myo_ml=tuple(myo_ml),
        rv_ml=tuple(rv_ml),
        ed_phase=0,
        es_phase=es,
        lv_ef_percent=100.0 * (lv_ml[0] - lv_ml[es]) / lv_ml[0],
        rv_ef_percent=100.0 * (rv_ml[0] - rv_ml[es]) / rv_ml[0],
        lv_mass_g=myo_ml[0] * 1.05,
    )
    return study, truth
