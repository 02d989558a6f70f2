"""Clinical indices from label maps: volumes, ED/ES, EDV, ESV, SV, EF, LV mass, RV indices, per-slice table.

Volumes are voxel counts times the voxel volume (slice spacing x pixel area), summed over the slices of
the stack (Simpson's method of discs on the acquired slices). When spacing is unknown, ejection
fractions are still computed (they are ratios of voxel counts) and every volume and the mass are
reported as unavailable (``None``, with the reason), never as a made-up number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from cardiacseg.enums import STRUCTURES, CardiacLabel
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import LabelArray, SpacingZYX

__all__ = [
    "MYOCARDIAL_DENSITY_G_PER_ML",
    "CardiacIndices",
    "PhaseVolumes",
    "compute_cardiac_indices",
    "compute_label_volumes",
    "detect_ed_es",
    "per_slice_table",
]

#: Density of myocardium used for LV mass (g/mL).
MYOCARDIAL_DENSITY_G_PER_ML = 1.05


@dataclass(frozen=True)
class PhaseVolumes:
    """Volumes of one labelled phase.

    Attributes:
        phase: index into the study's ``T`` axis.
        lv_voxels, myo_voxels, rv_voxels: voxel counts.
        lv_ml, myo_ml, rv_ml: volumes in mL, ``None`` when spacing is unknown.

    Example:
        >>> PhaseVolumes(0, 1000, 500, 0, 10.0, 5.0, 0.0).lv_ml
        10.0

    """

    phase: int
    lv_voxels: int
    myo_voxels: int
    rv_voxels: int
    lv_ml: float | None
    myo_ml: float | None
    rv_ml: float | None


@dataclass(frozen=True)
class CardiacIndices:
    """The numbers a clinic reports for one study.

    Attributes:
        ed_phase, es_phase: indices into the ``T`` axis (ES: the LV's).
        rv_es_phase: RV end-systole, the labelled phase (other than ED) with the smallest RV volume; the RV
            may reach it in another frame than the LV (SCMR post-processing recommendations, Schulz-Menger
            et al., JCMR 2020). RV ESV, SV and EF are taken there; RV ED is the LV's ED.
        ed_es_source: ``"given"`` (from the data source or the caller) or ``"detected"`` (largest /
            smallest LV volume among labelled phases).
        volumes_available: False when spacing is unknown.
        lv_edv_ml, lv_esv_ml, lv_sv_ml: LV end-diastolic, end-systolic and stroke volume (mL).
        lv_ef_percent: LV ejection fraction (%), computed even without spacing.
        lv_mass_g: myocardial volume at ED x 1.05 g/mL.
        rv_edv_ml, rv_esv_ml, rv_sv_ml, rv_ef_percent: the same for the RV.
        per_phase: volumes of every labelled phase.
        unavailable: reasons for each index reported as ``None``.

    Example:
        >>> import numpy as np
        >>> ed = np.zeros((1, 4, 4), np.uint8); ed[0, :2, :2] = 1
        >>> es = np.zeros((1, 4, 4), np.uint8); es[0, :1, :2] = 1
        >>> compute_cardiac_indices({0: ed, 1: es}, spacing_mm=(10.0, 1.0, 1.0)).lv_ef_percent
        50.0

    """

    ed_phase: int
    es_phase: int
    rv_es_phase: int
    ed_es_source: Literal["given", "detected"]
    volumes_available: bool
    lv_edv_ml: float | None
    lv_esv_ml: float | None
    lv_sv_ml: float | None
    lv_ef_percent: float | None
    lv_mass_g: float | None
    rv_edv_ml: float | None
    rv_esv_ml: float | None
    rv_sv_ml: float | None
    rv_ef_percent: float | None
    per_phase: tuple[PhaseVolumes, ...] = ()
    unavailable: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-serialisable dictionary.

        Returns:
            All fields; ``per_phase`` as a list of dictionaries.

        """
        return asdict(self)


def compute_label_volumes(label: LabelArray, spacing_mm: SpacingZYX | None) -> dict[str, float | None]:
    """Voxel counts and volumes (mL) of LV, MYO and RV in one label map.

    Args:
        label: ``(Z, Y, X)`` (or any shape) internal label map.
        spacing_mm: voxel spacing in mm, or ``None`` when unknown.

    Returns:
        ``{"lv_voxels", "myo_voxels", "rv_voxels", "lv_ml", "myo_ml", "rv_ml"}``; the ``*_ml`` values are
        ``None`` when spacing is unknown.

    Example:
        >>> import numpy as np
        >>> lab = np.zeros((2, 10, 10), np.uint8); lab[:, :5, :] = 1
        >>> compute_label_volumes(lab, (10.0, 1.0, 1.0))["lv_ml"]
        1.0

    """
    voxel_ml = None if spacing_mm is None else float(np.prod(spacing_mm)) / 1000.0
    counts = np.bincount(np.asarray(label, dtype=np.uint8).ravel(), minlength=4)
    out: dict[str, float | None] = {}
    for name, value in ((s.key, s) for s in STRUCTURES):
        out[f"{name}_voxels"] = float(counts[value])
        out[f"{name}_ml"] = None if voxel_ml is None else float(counts[value]) * voxel_ml
    return out


def detect_ed_es(labels: Mapping[int, LabelArray]) -> tuple[int, int]:
    """End-diastole and end-systole as the labelled phases with the largest and smallest LV volume.

    Args:
        labels: label maps keyed by phase index (at least two phases).

    Returns:
        ``(ed_phase, es_phase)``.

    Raises:
        ValueError: fewer than two labelled phases, or no LV in any phase.

    Example:
        >>> import numpy as np
        >>> a = np.ones((1, 2, 2), np.uint8); b = a.copy(); b[0, 0, 0] = 0
        >>> detect_ed_es({3: b, 7: a})
        (7, 3)

    """
    if len(labels) < 2:
        raise ValueError(f"ED/ES detection needs at least two labelled phases, got {sorted(labels)}")
    lv = {t: int((np.asarray(lab) == CardiacLabel.LV).sum()) for t, lab in labels.items()}
    if max(lv.values()) == 0:
        raise ValueError("no LV voxels in any labelled phase; cannot detect ED/ES")
    ed = max(lv, key=lambda t: (lv[t], -t))
    es = min((t for t in lv if t != ed), key=lambda t: (lv[t], t))
    return ed, es


def _ef(edv: float, esv: float) -> float | None:
    return None if edv <= 0 else 100.0 * (edv - esv) / edv


def compute_cardiac_indices(
    labels: CineStudy | Mapping[int, LabelArray],
    spacing_mm: SpacingZYX | None = None,
    ed_phase: int | None = None,
    es_phase: int | None = None,
) -> CardiacIndices:
    """EDV, ESV, SV, EF, LV mass and RV indices from label maps.

    Args:
        labels: a :class:`CineStudy` with labels (its spacing and ED/ES are used unless given here), or
            label maps ``(Z, Y, X)`` keyed by phase index.
        spacing_mm: ``(z, y, x)`` spacing in mm; ``None`` = unknown (volumes and mass unavailable).
        ed_phase: end-diastolic phase; detected (largest LV) when ``None`` and not given by the study.
        es_phase: end-systolic phase; detected (smallest LV) when ``None`` and not given by the study.

    Returns:
        :class:`CardiacIndices`.

    Raises:
        ValueError: missing labels for ED/ES, or phases that cannot be detected.

    Example:
        >>> import numpy as np
        >>> ed = np.zeros((2, 8, 8), np.uint8); ed[:, 2:6, 2:6] = 1
        >>> es = np.zeros((2, 8, 8), np.uint8); es[:, 3:5, 3:5] = 1
        >>> idx = compute_cardiac_indices({0: ed, 1: es}, spacing_mm=None)
        >>> idx.lv_ef_percent, idx.lv_edv_ml, idx.volumes_available
        (75.0, None, False)

    """
    if isinstance(labels, CineStudy):
        study = labels
        label_maps: Mapping[int, LabelArray] = study.labels
        spacing_mm = spacing_mm if spacing_mm is not None else study.spacing_mm
        ed_phase = ed_phase if ed_phase is not None else study.ed_phase
        es_phase = es_phase if es_phase is not None else study.es_phase
    else:
        label_maps = labels
    if not label_maps:
        raise ValueError("no label maps: segment the study or load expert labels first")
    source: Literal["given", "detected"] = "given"
    if ed_phase is None or es_phase is None:
        det_ed, det_es = detect_ed_es(label_maps)
        if ed_phase is None and es_phase is None:
            ed_phase, es_phase, source = det_ed, det_es, "detected"
        elif ed_phase is None:
            ed_phase, source = det_ed, "detected"
        else:
            es_phase, source = det_es, "detected"
    assert ed_phase is not None and es_phase is not None
    for name, p in (("ED", ed_phase), ("ES", es_phase)):
        if p not in label_maps:
            raise ValueError(f"{name} phase {p} has no label map (labelled phases: {sorted(label_maps)})")

    per_phase = []
    for t in sorted(label_maps):
        v = compute_label_volumes(label_maps[t], spacing_mm)
        per_phase.append(
            PhaseVolumes(
                phase=int(t),
                lv_voxels=int(v["lv_voxels"] or 0),
                myo_voxels=int(v["myo_voxels"] or 0),
                rv_voxels=int(v["rv_voxels"] or 0),
                lv_ml=v["lv_ml"],
                myo_ml=v["myo_ml"],
                rv_ml=v["rv_ml"],
            )
        )
    by_phase = {p.phase: p for p in per_phase}
    ed, es = by_phase[ed_phase], by_phase[es_phase]
    unavailable: dict[str, str] = {}
    have_volumes = spacing_mm is not None
    if not have_volumes:
        for key in ("lv_edv_ml", "lv_esv_ml", "lv_sv_ml", "lv_mass_g", "rv_edv_ml", "rv_esv_ml", "rv_sv_ml"):
            unavailable[key] = "voxel spacing unknown"

    lv_ef = _ef(ed.lv_voxels, es.lv_voxels)
    if lv_ef is None:
        unavailable["lv_ef_percent"] = "no LV at end-diastole"
    has_rv = ed.rv_voxels > 0
    if not has_rv:
        for key in ("rv_edv_ml", "rv_esv_ml", "rv_sv_ml", "rv_ef_percent"):
            unavailable.setdefault(key, "no RV label at end-diastole")
    has_myo = ed.myo_voxels > 0
    if not has_myo:
        unavailable.setdefault("lv_mass_g", "no myocardium label at end-diastole")

    def vol(x: float | None) -> float | None:
        return x if have_volumes else None

    lv_edv, lv_esv = vol(ed.lv_ml), vol(es.lv_ml)
    # RV end-systole at the RV's own smallest volume (SCMR post-processing recommendations, Schulz-Menger
    # et al., JCMR 2020: the RV may reach end-systole in another frame than the LV); RV ED is the LV's
    candidates = [t for t in by_phase if t != ed_phase]
    rv_es_phase = (
        min(candidates, key=lambda t: (by_phase[t].rv_voxels, t != es_phase, t))
        if has_rv and candidates
        else es_phase
    )
    rv_es = by_phase[rv_es_phase]
    rv_ef = _ef(ed.rv_voxels, rv_es.rv_voxels) if has_rv else None
    rv_edv = vol(ed.rv_ml) if has_rv else None
    rv_esv = vol(rv_es.rv_ml) if has_rv else None
    return CardiacIndices(
        ed_phase=int(ed_phase),
        es_phase=int(es_phase),
        rv_es_phase=int(rv_es_phase),
        ed_es_source=source,
        volumes_available=have_volumes,
        lv_edv_ml=lv_edv,
        lv_esv_ml=lv_esv,
        lv_sv_ml=None if lv_edv is None or lv_esv is None else lv_edv - lv_esv,
        lv_ef_percent=lv_ef,
        lv_mass_g=(
            ed.myo_ml * MYOCARDIAL_DENSITY_G_PER_ML
            if have_volumes and has_myo and ed.myo_ml is not None
            else None
        ),
        rv_edv_ml=rv_edv,
        rv_esv_ml=rv_esv,
        rv_sv_ml=None if rv_edv is None or rv_esv is None else rv_edv - rv_esv,
        rv_ef_percent=rv_ef,
        per_phase=tuple(per_phase),
        unavailable=unavailable,
    )


def per_slice_table(
    study: CineStudy, phases: Sequence[int] | None = None, spacing_mm: SpacingZYX | None = None
) -> list[dict[str, object]]:
    """Per-slice areas and volumes of each structure in selected phases.

    Args:
        study: a study with labels.
        phases: phase indices (default: ED and ES when known, else all labelled phases).
        spacing_mm: overrides ``study.spacing_mm``.

    Returns:
        One row per (phase, slice) with ``phase``, ``slice``, ``position_mm``, ``annotated``,
        ``{lv,myo,rv}_voxels`` and ``{lv,myo,rv}_ml`` (``None`` without spacing).

    Raises:
        ValueError: when a requested phase has no label map.

    Example:
        >>> rows = per_slice_table(study)  # doctest: +SKIP
        >>> rows[0]["lv_ml"]  # doctest: +SKIP

    """
    spacing = spacing_mm if spacing_mm is not None else study.spacing_mm
    if phases is None:
        known = [p for p in (study.ed_phase, study.es_phase) if p is not None and p in study.labels]
        phases = known or sorted(study.labels)
    rows: list[dict[str, object]] = []
    for t in phases:
        if t not in study.labels:
            raise ValueError(f"phase {t} has no label map (labelled phases: {sorted(study.labels)})")
        annotated = study.annotated_slices.get(t)
        name = "ED" if t == study.ed_phase else "ES" if t == study.es_phase else ""
        for z in range(study.n_slices):
            v = compute_label_volumes(study.labels[t][z], spacing)
            row: dict[str, object] = {
                "phase": t,
                "phase_name": name,
                "slice": z,
                "position_mm": None if study.slice_positions_mm is None else study.slice_positions_mm[z],
                "annotated": annotated is None or z in annotated,
            }
            row.update({k: (int(x) if k.endswith("voxels") and x is not None else x) for k, x in v.items()})
            rows.append(row)
    return rows
