"""Quality-control flags a user can act on, computed from a segmented study.

Flags (``code``):

- ``lv_not_found``: no LV blood pool at ED or ES.
- ``myo_not_ring``: on a mid-ventricular slice at ED or ES the myocardium does not enclose the LV.
- ``implausible_ef``: LV ejection fraction below 5 % or above 90 %.
- ``mirrored_image``: the reader found images whose orientation header points against the stack's.
- ``single_slice``: one slice position (2D+t input): no volumes, mass or EF are reported.
- ``missing_data``: the reader reported missing slices or phases, or uneven slice spacing.
- ``implausible_volume``: LV or RV end-diastolic volume outside :data:`PLAUSIBLE_EDV_ML`.
- ``implausible_mass``: LV mass outside :data:`PLAUSIBLE_LV_MASS_G`.
- ``implausible_ed_es_interval``: in a cine of at least 10 phases, end-systole is not between 15 % and
  70 % of the cycle after end-diastole (:data:`PLAUSIBLE_ES_FRACTION`).
- ``uncertain_segmentation``: the study's predictive entropy (the larger of ED and ES, mean over the heart
  region, :func:`~cardiacseg.metrics.uncertainty.heart_region_entropy`) exceeds
  :data:`UNCERTAIN_ENTROPY_NATS` (calibrated in ``docs/benchmarks/uncertainty_qc.md``).
- ``volume_jump``: inside the LV at ED or ES, a slice's LV area departs from the mean of its two
  neighbours by more than :data:`JUMP_FRACTION` of the largest slice area (a missed slice, a slice
  shift, or a segmentation failure; the steep but smooth taper towards the apex does not fire).

The plausibility limits catch failures, not disease: they lie far outside the values of real hearts, so
that a dilated or hypertrophied heart never fires them. EDV: the 700 reference LV EDVs of the Kaggle Data
Science Bowl 2015 (children and adults, ``../shared/data/kaggle_dsb_truth``) span 9.4-568.6 mL. LV mass and
the ES timing limits are chosen, not published: no human LV weighs under 10 g beyond infancy or over
700 g, and ventricular systole takes roughly a third of the cycle (a model that puts ES two phases
after ED has failed). A one-epoch model that gave EDV 1464 mL, LV mass 1.2 g, EF 6.2 % with ED and ES
two of 20 phases apart fires all three (``tests/clinical/test_slice_range_qc.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from cardiacseg.clinical.indices import CardiacIndices
from cardiacseg.clinical.slice_range import lv_slice_range
from cardiacseg.enums import CardiacLabel, CurationKind
from cardiacseg.io.study import CurationReport
from cardiacseg.typing import LabelArray

__all__ = [
    "JUMP_FRACTION",
    "PLAUSIBLE_EDV_ML",
    "PLAUSIBLE_ES_FRACTION",
    "PLAUSIBLE_LV_MASS_G",
    "UNCERTAIN_ENTROPY_NATS",
    "QCFlag",
    "myo_encloses_lv",
    "plausibility_flags",
    "quality_flags",
    "uncertainty_flags",
]

#: Threshold of the ``volume_jump`` flag (fraction of the largest LV slice area).
JUMP_FRACTION = 0.4

#: Threshold of the ``uncertain_segmentation`` flag: mean heart-region predictive entropy, nats.
UNCERTAIN_ENTROPY_NATS = 0.35

#: Plausible end-diastolic volume of either ventricle, mL (``implausible_volume``).
PLAUSIBLE_EDV_ML = (5.0, 700.0)

#: Plausible LV mass, g (``implausible_mass``).
PLAUSIBLE_LV_MASS_G = (10.0, 700.0)

#: Plausible position of ES after ED, as a fraction of the cardiac cycle (``implausible_ed_es_interval``).
PLAUSIBLE_ES_FRACTION = (0.15, 0.70)

_MISSING = (CurationKind.MISSING_PHASE, CurationKind.MISSING_SLICE, CurationKind.UNEVEN_SLICE_SPACING)


@dataclass(frozen=True)
class QCFlag:
    """One quality-control finding.

    Attributes:
        code: machine-readable kind (see the module docstring).
        message: what was found and what to check.
        phase: phase index concerned, if any.
        slices: slice indices concerned.

    Example:
        >>> QCFlag("implausible_ef", "EF 95 %").to_dict()["code"]
        'implausible_ef'

    """

    code: str
    message: str
    phase: int | None = None
    slices: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable dictionary."""
        return asdict(self)


def myo_encloses_lv(label_slice: LabelArray, min_fraction: float = 0.9) -> bool:
    """Whether the myocardium forms a ring around the LV blood pool on one slice.

    Args:
        label_slice: ``(Y, X)`` internal labels.
        min_fraction: share of LV pixels that must lie in the holes of the myocardium.

    Returns:
        True when the LV lies inside the myocardial ring (False without LV).

    Example:
        >>> lab = np.zeros((9, 9), np.uint8); lab[1:8, 1:8] = 2; lab[3:6, 3:6] = 1
        >>> myo_encloses_lv(lab), myo_encloses_lv(np.where(lab == 2, 0, lab).astype(np.uint8))
        (True, False)

    """
    lab = np.asarray(label_slice)
    lv = lab == CardiacLabel.LV
    if not lv.any():
        return False
    myo = lab == CardiacLabel.MYO
    inside = ndimage.binary_fill_holes(myo) & ~myo
    return float((lv & inside).sum() / lv.sum()) >= min_fraction


def quality_flags(
    labels: Mapping[int, LabelArray], indices: CardiacIndices, curation: CurationReport | None = None
) -> list[QCFlag]:
    """QC flags for a segmented study.

    Args:
        labels: ``(Z, Y, X)`` label maps keyed by phase (must include ED and ES of ``indices``).
        indices: the study's indices.
        curation: the reader's curation report.

    Returns:
        The flags (empty when nothing was found).

    Example:
        >>> from cardiacseg.clinical.indices import compute_cardiac_indices
        >>> ed = np.zeros((2, 9, 9), np.uint8); ed[:, 1:8, 1:8] = 2; ed[:, 3:6, 3:6] = 1
        >>> flags = quality_flags({0: ed, 1: ed}, compute_cardiac_indices({0: ed, 1: ed}, None, 0, 1))
        >>> [f.code for f in flags]
        ['implausible_ef']

    """
    flags: list[QCFlag] = []
    for name, t in (("ED", indices.ed_phase), ("ES", indices.es_phase)):
        lab = np.asarray(labels[t])
        if not (lab == CardiacLabel.LV).any():
            flags.append(QCFlag("lv_not_found", f"no LV blood pool found at {name} (phase {t})", t))
            continue
        rng = lv_slice_range(lab)
        heart = np.nonzero(((lab == CardiacLabel.LV) | (lab == CardiacLabel.MYO)).any(axis=(1, 2)))[0]
        if heart[-1] - heart[0] >= 2:  # mid third of the slices that carry LV or myocardium
            n = int(heart[-1] - heart[0] + 1)
            mid = range(int(heart[0]) + n // 3, int(heart[0]) + n - n // 3)
            bad = tuple(z for z in mid if not myo_encloses_lv(lab[z]))
            if bad:
                flags.append(
                    QCFlag(
                        "myo_not_ring",
                        f"myocardium does not enclose the LV on mid-ventricular slice(s) {list(bad)} "
                        f"at {name}",
                        t,
                        bad,
                    )
                )
        if rng is not None:
            area = (lab[rng[0] : rng[1] + 1] == CardiacLabel.LV).sum(axis=(1, 2)).astype(float)
            if area.size > 2 and area.max() > 0:
                # a slice whose LV area departs from the mean of its two neighbours (a dip or a spike)
                dev = np.abs(area[1:-1] - (area[:-2] + area[2:]) / 2) / area.max()
                bad = tuple(int(rng[0] + 1 + i) for i in np.nonzero(dev > JUMP_FRACTION)[0])
                if bad:
                    flags.append(
                        QCFlag(
                            "volume_jump",
                            f"LV area of slice(s) {list(bad)} at {name} departs from the mean of the "
                            f"neighbouring slices by more than {JUMP_FRACTION:.0%} of the largest slice area",
                            t,
                            bad,
                        )
                    )
    if any(np.asarray(lab).shape[0] == 1 for lab in labels.values()):
        flags.append(
            QCFlag("single_slice", "one slice position: no volumes, mass or ejection fraction are reported")
        )
    ef = indices.lv_ef_percent
    if ef is not None and not 5.0 <= ef <= 90.0:
        flags.append(QCFlag("implausible_ef", f"LV ejection fraction {ef:.1f} % is outside 5-90 %"))
    flags += plausibility_flags(indices, n_phases=len(labels) if len(labels) > 2 else 0)
    if curation is not None:
        for issue in curation.issues:
            if issue.kind in _MISSING:
                flags.append(QCFlag("missing_data", f"{issue.kind.value}: {issue.message}"))
            elif issue.kind == CurationKind.MIRRORED_IMAGE:
                flags.append(QCFlag("mirrored_image", issue.message))
    return flags


def plausibility_flags(indices: CardiacIndices, n_phases: int = 0) -> list[QCFlag]:
    """Flag volumes, mass and ED-ES timing outside what any real heart gives (see the module docstring).

    Args:
        indices: the study's indices.
        n_phases: phases in the whole cardiac cycle (0: unknown, e.g. only ED and ES labelled; the timing
            check then does not run).

    Returns:
        ``implausible_volume``, ``implausible_mass`` and ``implausible_ed_es_interval`` flags.

    Example:
        >>> from cardiacseg.clinical.indices import CardiacIndices
        >>> idx = CardiacIndices(0, 2, 2, "detected", True, 1464.0, 1373.0, 91.0, 6.2, 1.2,
        ...                      None, None, None, None)
        >>> [f.code for f in plausibility_flags(idx, n_phases=20)]
        ['implausible_volume', 'implausible_mass', 'implausible_ed_es_interval']

    """
    flags: list[QCFlag] = []
    lo, hi = PLAUSIBLE_EDV_ML
    for name, value in (("LV", indices.lv_edv_ml), ("RV", indices.rv_edv_ml)):
        if value is not None and not lo <= value <= hi:
            flags.append(
                QCFlag(
                    "implausible_volume",
                    f"{name} end-diastolic volume {value:.1f} mL is outside {lo:g}-{hi:g} mL: check the "
                    "segmentation and the voxel spacing",
                    indices.ed_phase,
                )
            )
    lo, hi = PLAUSIBLE_LV_MASS_G
    if indices.lv_mass_g is not None and not lo <= indices.lv_mass_g <= hi:
        flags.append(
            QCFlag(
                "implausible_mass",
                f"LV mass {indices.lv_mass_g:.1f} g is outside {lo:g}-{hi:g} g: check the myocardium labels",
                indices.ed_phase,
            )
        )
    if n_phases >= 10:
        fraction = ((indices.es_phase - indices.ed_phase) % n_phases) / n_phases
        lo, hi = PLAUSIBLE_ES_FRACTION
        if not lo <= fraction <= hi:
            flags.append(
                QCFlag(
                    "implausible_ed_es_interval",
                    f"end-systole (phase {indices.es_phase}) comes {fraction:.0%} of the cycle after "
                    f"end-diastole (phase {indices.ed_phase}); expected {lo:.0%}-{hi:.0%}: check ED/ES",
                )
            )
    return flags


def uncertainty_flags(study_entropy_nats: float, indices: CardiacIndices) -> list[QCFlag]:
    """Flag a study whose segmentation the model itself is unsure of.

    Args:
        study_entropy_nats: the larger of the ED and ES heart-region predictive entropies
            (:meth:`~cardiacseg.inferers.SlicePredictor.predict` with ``uncertainty``).
        indices: the study's indices (for the phase named in the message).

    Returns:
        An ``uncertain_segmentation`` flag when the entropy exceeds :data:`UNCERTAIN_ENTROPY_NATS`.

    Example:
        >>> from cardiacseg.clinical.indices import CardiacIndices
        >>> idx = CardiacIndices(0, 1, 1, "given", False, None, None, None, 60.0, None, None, None, None,
        ...                      None)
        >>> [f.code for f in uncertainty_flags(0.5, idx)], uncertainty_flags(0.1, idx)
        (['uncertain_segmentation'], [])

    """
    if study_entropy_nats <= UNCERTAIN_ENTROPY_NATS:
        return []
    return [
        QCFlag(
            "uncertain_segmentation",
            f"the model is unsure of this study (predictive entropy {study_entropy_nats:.3f} nats in the "
            f"heart region, above {UNCERTAIN_ENTROPY_NATS}): review the contours at ED "
            f"(phase {indices.ed_phase}) and ES (phase {indices.es_phase})",
        )
    ]
