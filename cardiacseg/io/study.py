"""The typed data model shared by every reader: :class:`CineStudy` and its :class:`CurationReport`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from cardiacseg.enums import CardiacLabel, CurationKind
from cardiacseg.typing import Affine, FloatArray, LabelArray, SpacingZYX

#: Axis order of :attr:`CineStudy.image`: phase (time), slice, row, column.
AXES = "TZYX"

Severity = Literal["info", "repaired", "warning"]


@dataclass(frozen=True)
class CurationIssue:
    """One inconsistency found while reading a study.

    Attributes:
        kind: what was found.
        severity: ``"info"`` (harmless), ``"repaired"`` (fixed safely, see ``message``) or ``"warning"``
            (left as is; results that depend on it may be affected).
        message: a sentence a person can act on.
        files: the input files concerned (may be empty).

    Example:
        >>> CurationIssue(CurationKind.MISSING_SLICE, "warning", "gap at 40 mm").severity
        'warning'

    """

    kind: CurationKind
    severity: Severity
    message: str
    files: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-serialisable dictionary.

        Returns:
            The issue with its kind as a string.

        """
        return {
            "kind": self.kind.value,
            "severity": self.severity,
            "message": self.message,
            "files": list(self.files),
        }


@dataclass
class CurationReport:
    """Everything a reader noticed, repaired or ignored.

    Example:
        >>> r = CurationReport()
        >>> r.add(CurationKind.IGNORED_FILE, "info", "not DICOM", ("notes.txt",))
        >>> r.has(CurationKind.IGNORED_FILE), len(r)
        (True, 1)

    """

    issues: list[CurationIssue] = field(default_factory=list)

    def add(self, kind: CurationKind, severity: Severity, message: str, files: tuple[str, ...] = ()) -> None:
        """Append an issue.

        Args:
            kind: what was found.
            severity: ``"info"``, ``"repaired"`` or ``"warning"``.
            message: human-readable explanation.
            files: input files concerned.

        """
        self.issues.append(CurationIssue(kind, severity, message, tuple(files)))

    def has(self, kind: CurationKind) -> bool:
        """Whether an issue of ``kind`` was recorded.

        Args:
            kind: the kind to look for.

        Returns:
            True when at least one issue has that kind.

        """
        return any(i.kind == kind for i in self.issues)

    def of_kind(self, kind: CurationKind) -> list[CurationIssue]:
        """Issues of one kind.

        Args:
            kind: the kind to select.

        Returns:
            The matching issues in the order they were found.

        """
        return [i for i in self.issues if i.kind == kind]

    def to_list(self) -> list[dict[str, object]]:
        """Return the issues as JSON-serialisable dictionaries.

        Returns:
            One dictionary per issue.

        """
        return [i.to_dict() for i in self.issues]

    def __len__(self) -> int:
        return len(self.issues)


#: Body sizes outside these are refused from the user and ignored (with a curation warning) from DICOM.
PLAUSIBLE_HEIGHT_CM = (40.0, 250.0)
PLAUSIBLE_WEIGHT_KG = (2.0, 400.0)


@dataclass(frozen=True)
class PatientInfo:
    """Body size, sex and age of the patient, where the source (or the user) states them.

    Attributes:
        height_cm: height in cm (DICOM PatientSize is in metres and is converted), or ``None``.
        weight_kg: weight in kg, or ``None``.
        sex: ``"M"``, ``"F"`` or ``None`` (unknown, or DICOM ``"O"``).
        age_years: age in years (DICOM PatientAge ``nnnY/M/W/D`` converted), or ``None``.
        source: where the values came from (e.g. ``"DICOM PatientSize/PatientWeight"``, ``"ACDC Info.cfg"``,
            ``"given by the user"``).

    Example:
        >>> PatientInfo(height_cm=180.0, weight_kg=80.0, sex="M").known
        True

    """

    height_cm: float | None = None
    weight_kg: float | None = None
    sex: Literal["M", "F"] | None = None
    age_years: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        for name, value in (("height_cm", self.height_cm), ("weight_kg", self.weight_kg)):
            if value is not None and not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if self.sex not in (None, "M", "F"):
            raise ValueError(f"sex must be 'M', 'F' or None, got {self.sex!r}")

    def check_plausible(self, where: str = "") -> None:
        """Refuse values no patient has (e.g. a height in metres or a weight in grams).

        Args:
            where: what to name in the message (a file and line, an option).

        Raises:
            ValueError: height outside 40-250 cm, weight outside 2-400 kg, or age outside 0-130 years.

        Example:
            >>> PatientInfo(height_cm=1.78).check_plausible("--height-cm")
            Traceback (most recent call last):
            ...
            ValueError: --height-cm: height 1.78 cm is outside 40-250 cm (a height in metres?)

        """
        prefix = f"{where}: " if where else ""
        checks = (
            ("height", self.height_cm, PLAUSIBLE_HEIGHT_CM, "cm", " (a height in metres?)"),
            ("weight", self.weight_kg, PLAUSIBLE_WEIGHT_KG, "kg", ""),
            ("age", self.age_years, (0.0, 130.0), "years", ""),
        )
        for name, value, (lo, hi), unit, hint in checks:
            if value is not None and not lo <= value <= hi:
                extra = hint if value < lo else ""
                raise ValueError(f"{prefix}{name} {value:g} {unit} is outside {lo:g}-{hi:g} {unit}{extra}")

    @property
    def known(self) -> bool:
        """True when any of the values is known."""
        return any(v is not None for v in (self.height_cm, self.weight_kg, self.sex, self.age_years))

    def updated(self, other: PatientInfo | None) -> PatientInfo:
        """Return these values with those known in ``other`` taking precedence (e.g. the user's over DICOM).

        Args:
            other: the values that win where they are not ``None``.

        Returns:
            A new :class:`PatientInfo`; ``source`` names both where both contributed.

        Example:
            >>> dicom = PatientInfo(170.0, 60.0, source="DICOM")
            >>> dicom.updated(PatientInfo(weight_kg=65.0, source="user")).weight_kg
            65.0

        """
        if other is None or not other.known:
            return self
        if not self.known:
            return other
        merged = {
            k: getattr(other, k) if getattr(other, k) is not None else getattr(self, k)
            for k in ("height_cm", "weight_kg", "sex", "age_years")
        }
        return PatientInfo(**merged, source=f"{other.source}; otherwise {self.source}")


@dataclass(frozen=True)
class CineStudy:
    """A short-axis cine study: image, geometry, timing and optional expert labels.

    Attributes:
        image: float32 array with axes ``(T, Z, Y, X)``: phase, slice (apex/base order as acquired),
            row, column. A single-phase volume has ``T == 1``.
        spacing_mm: ``(z, y, x)`` spacing in mm in array order, or ``None`` when unknown (never a
            made-up value). ``z`` is the slice *spacing* (centre to centre), not the slice thickness.
        affine: 4x4 matrix mapping voxel indices ``(x, y, z)`` (column, row, slice, i.e. array axes 3, 2,
            1) to RAS+ world coordinates in mm, as in NIfTI; ``None`` when unknown.
        phase_times_ms: trigger time of each phase (averaged over slices), or ``None``.
        slice_positions_mm: position of each slice along the slice normal, or ``None``.
        phase_ids: the index of each stored phase in the full cardiac cycle (e.g. ``(0, 11)`` for a
            study holding only the ACDC ED and ES frames of a 30-frame cycle).
        labels: expert or predicted label maps ``(Z, Y, X)`` uint8 with internal labels
            (0 BG, 1 LV, 2 MYO, 3 RV), keyed by index into the ``T`` axis.
        annotated_slices: for each labelled phase, the slice indices that carry annotations (e.g. the
            contoured Sunnybrook slices); a missing key means every slice of that phase is annotated.
        ed_phase: index into ``T`` of end-diastole when known from the source, else ``None``.
        es_phase: index into ``T`` of end-systole when known from the source, else ``None``.
        source: human-readable description of where the study came from.
        source_files: for DICOM input, the file of each ``(t, z)`` image; else ``None``.
        instance_numbers: for DICOM input, the InstanceNumber of each ``(t, z)`` image (for an Enhanced
            multi-frame file, its 1-based frame number); else ``None``.
        curation: what the reader found, repaired or ignored.
        patient: height, weight, sex and age where the source states them (DICOM Patient module, ACDC
            ``Info.cfg``), else ``None``.

    Example:
        >>> import numpy as np
        >>> s = CineStudy(image=np.zeros((2, 3, 4, 4), np.float32), spacing_mm=(8.0, 1.5, 1.5))
        >>> s.n_phases, s.n_slices, s.voxel_volume_ml
        (2, 3, 0.018)

    """

    image: FloatArray
    spacing_mm: SpacingZYX | None = None
    affine: Affine | None = None
    phase_times_ms: tuple[float, ...] | None = None
    slice_positions_mm: tuple[float, ...] | None = None
    phase_ids: tuple[int, ...] | None = None
    labels: dict[int, LabelArray] = field(default_factory=dict)
    annotated_slices: dict[int, tuple[int, ...]] = field(default_factory=dict)
    ed_phase: int | None = None
    es_phase: int | None = None
    source: str = ""
    source_files: tuple[tuple[str, ...], ...] | None = None
    instance_numbers: npt.NDArray[np.int64] | None = None
    curation: CurationReport = field(default_factory=CurationReport)
    patient: PatientInfo | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 4:
            raise ValueError(f"CineStudy.image must have axes {AXES} (4-D), got shape {self.image.shape}")
        t, z, y, x = self.image.shape
        if self.spacing_mm is not None:
            if len(self.spacing_mm) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing_mm):
                raise ValueError(
                    f"spacing_mm must be three positive numbers (z, y, x), got {self.spacing_mm}"
                )
        if self.affine is not None and np.asarray(self.affine).shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got shape {np.asarray(self.affine).shape}")
        if self.phase_times_ms is not None and len(self.phase_times_ms) != t:
            raise ValueError(f"phase_times_ms has {len(self.phase_times_ms)} entries for {t} phases")
        if self.slice_positions_mm is not None and len(self.slice_positions_mm) != z:
            raise ValueError(f"slice_positions_mm has {len(self.slice_positions_mm)} entries for {z} slices")
        if self.phase_ids is not None and len(self.phase_ids) != t:
            raise ValueError(f"phase_ids has {len(self.phase_ids)} entries for {t} phases")
        for p, lab in self.labels.items():
            if not 0 <= p < t:
                raise ValueError(f"label phase index {p} outside 0..{t - 1}")
            if lab.shape != (z, y, x):
                raise ValueError(f"label of phase {p} has shape {lab.shape}, expected {(z, y, x)}")
            if lab.size and int(lab.max()) > max(CardiacLabel):
                raise ValueError(f"label of phase {p} holds value {int(lab.max())}; internal labels are 0..3")
        for name, value in (("ed_phase", self.ed_phase), ("es_phase", self.es_phase)):
            if value is not None and not 0 <= value < t:
                raise ValueError(f"{name}={value} outside 0..{t - 1}")

    @property
    def n_phases(self) -> int:
        """Number of stored phases ``T``."""
        return int(self.image.shape[0])

    @property
    def n_slices(self) -> int:
        """Number of slices ``Z``."""
        return int(self.image.shape[1])

    @property
    def voxel_volume_ml(self) -> float | None:
        """Volume of one voxel in mL (``None`` when spacing is unknown)."""
        if self.spacing_mm is None:
            return None
        return float(round(np.prod(self.spacing_mm) / 1000.0, 12))

    def with_labels(
        self, labels: dict[int, LabelArray], annotated_slices: dict[int, tuple[int, ...]] | None = None
    ) -> CineStudy:
        """Return a copy of the study carrying other label maps (the image array is shared, not copied).

        Args:
            labels: internal label maps keyed by phase index.
            annotated_slices: annotated slices per phase (default: all slices).

        Returns:
            A new :class:`CineStudy`.

        Raises:
            ValueError: when a label map does not match the image grid.

        """
        return replace(self, labels=dict(labels), annotated_slices=dict(annotated_slices or {}))

    def summary(self) -> str:
        """One paragraph describing the study.

        Returns:
            Text for a terminal.

        """
        sp = "unknown" if self.spacing_mm is None else "x".join(f"{s:.3g}" for s in self.spacing_mm)
        lines = [
            f"{self.source}",
            f"  image {AXES} {tuple(self.image.shape)}, spacing (z, y, x) mm: {sp}",
            f"  labelled phases: {sorted(self.labels) or 'none'}; ED={self.ed_phase} ES={self.es_phase}",
        ]
        if len(self.curation):
            lines.append(f"  curation: {len(self.curation)} item(s)")
            lines += [f"    [{i.severity}] {i.kind.value}: {i.message}" for i in self.curation.issues]
        return "\n".join(lines)
