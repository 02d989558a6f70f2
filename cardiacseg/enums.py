"""Shared enumerations: the internal label convention and cardiac phases."""

from __future__ import annotations

from enum import Enum, IntEnum


class CardiacLabel(IntEnum):
    """Internal label values used everywhere inside cardiacseg.

    Dataset conventions (e.g. ACDC: 1 RV, 2 MYO, 3 LV) are converted at the I/O boundary.

    Example:
        >>> int(CardiacLabel.LV), int(CardiacLabel.RV)
        (1, 3)

    """

    BG = 0
    LV = 1
    MYO = 2
    RV = 3

    @property
    def key(self) -> str:
        """Lower-case name used in keys and column names (``"lv"``, ``"myo"``, ``"rv"``, ``"bg"``)."""
        return self.name.lower()


STRUCTURES: tuple[CardiacLabel, ...] = (CardiacLabel.LV, CardiacLabel.MYO, CardiacLabel.RV)
"""The segmented structures in label order: the one class table of cardiacseg.

``label.key`` (``"lv"``) names them in keys and columns, ``label.name`` (``"LV"``) in text, and
:data:`STRUCTURE_DESCRIPTIONS` in words.

Example:
    >>> [(int(s), s.key, s.name) for s in STRUCTURES]
    [(1, 'lv', 'LV'), (2, 'myo', 'MYO'), (3, 'rv', 'RV')]
"""

STRUCTURE_DESCRIPTIONS: dict[CardiacLabel, str] = {
    CardiacLabel.BG: "background",
    CardiacLabel.LV: "left ventricular blood pool",
    CardiacLabel.MYO: "left ventricular myocardium",
    CardiacLabel.RV: "right ventricular blood pool",
}
"""Plain-language names of the labels (as in the bundle's ``metadata.json`` channel definitions)."""


class Phase(str, Enum):
    """Named cardiac phases: end-diastole and end-systole.

    Example:
        >>> Phase.ED.value
        'ED'

    """

    ED = "ED"
    ES = "ES"


class CurationKind(str, Enum):
    """Kinds of inconsistency found (and possibly repaired) while reading a cine study.

    They follow the curation list of the 7T transfer-learning study (missing time points, inconsistent
    slice spacing, inconsistent image dimension, repeat measurements, scaled images, image rotations),
    plus bookkeeping items about files that were ignored.

    Example:
        >>> CurationKind.MISSING_PHASE.value
        'missing_phase'

    """

    MISSING_PHASE = "missing_phase"
    MISSING_SLICE = "missing_slice"
    UNEVEN_SLICE_SPACING = "uneven_slice_spacing"
    INCONSISTENT_SIZE = "inconsistent_size"
    REPEATED_SLICE = "repeated_slice"
    RESCALED_IMAGE = "rescaled_image"
    ROTATED_IMAGE = "rotated_image"
    EXTRA_SERIES = "extra_series"
    IGNORED_FILE = "ignored_file"
    SLICE_LOCATION_MISMATCH = "slice_location_mismatch"
    DECLARED_PHASES_MISMATCH = "declared_phases_mismatch"
    PHASE_ORDER = "phase_order"
    SINGLE_SLICE = "single_slice"
    NO_FILE_META = "no_file_meta"
    MISSING_GEOMETRY = "missing_geometry"
    MIRRORED_IMAGE = "mirrored_image"
    PATIENT_DATA = "patient_data"
    DUPLICATE_INSTANCE = "duplicate_instance"


class SliceRange(IntEnum):
    """Slice-range class of a short-axis slice (the classifier's targets, in this order).

    Definitions from the slice-range classification study (after Schulz-Menger et al., SCMR post-processing
    recommendations): ``OAP`` (out of apical) shows no LV blood pool, beyond the apex; ``IN`` shows the LV
    blood pool and myocardium clearly, valid for quantification; ``OBS`` (out of basal) lies above the most
    basal slice: at most a small crescent of basal myocardium and no discernible LV blood pool.

    Example:
        >>> [(int(c), c.name) for c in SliceRange]
        [(0, 'OAP'), (1, 'IN'), (2, 'OBS')]

    """

    OAP = 0
    IN = 1
    OBS = 2

    @property
    def description(self) -> str:
        """The class in words."""
        return {
            SliceRange.OAP: "out of apical: beyond the apex, no LV blood pool",
            SliceRange.IN: "in: LV blood pool and myocardium, valid for quantification",
            SliceRange.OBS: "out of basal: above the base, no LV blood pool in a myocardial ring",
        }[self]
