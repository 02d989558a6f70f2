"""Kaggle Data Science Bowl 2015 (cardiac) reference volumes and image dimensions."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from cardiacseg.typing import PathLike

__all__ = ["DsbDimensions", "DsbFormatError", "DsbVolumes", "read_dsb_dimensions", "read_dsb_volumes"]


class DsbFormatError(ValueError):
    """A CSV that is not in a known Data Science Bowl format; the message names the file."""


@dataclass(frozen=True)
class DsbVolumes:
    """Reference LV volumes of one patient.

    Attributes:
        patient_id: numeric DSB id.
        systole_ml: end-systolic volume.
        diastole_ml: end-diastolic volume.

    Example:
        >>> round(DsbVolumes(1, 50.0, 100.0).ef_percent, 1)
        50.0

    """

    patient_id: int
    systole_ml: float
    diastole_ml: float

    @property
    def ef_percent(self) -> float:
        """Ejection fraction implied by the two volumes."""
        return 100.0 * (self.diastole_ml - self.systole_ml) / self.diastole_ml


@dataclass(frozen=True)
class DsbDimensions:
    """Image size and spacing of one DSB patient (``patient_dimensions.tsv``).

    ``patient_id`` is a string: curated studies split into parts of different size carry ids such as
    ``"721_a"`` and ``"721_b"``; ``scale_factor`` is the rescaling applied during that curation.

    Example:
        >>> DsbDimensions("1", 192, 256, 1.4, 1.4, 10.0, 1.0).slice_spacing_mm
        10.0

    """

    patient_id: str
    x: int
    y: int
    pixel_spacing_x_mm: float
    pixel_spacing_y_mm: float
    slice_spacing_mm: float
    scale_factor: float


def read_dsb_volumes(path: PathLike) -> dict[int, DsbVolumes]:
    """Read reference volumes from ``train.csv``/``validate.csv`` (Id,Systole,Diastole) or ``solution.csv``.

    Args:
        path: the CSV file.

    Returns:
        ``{patient_id: DsbVolumes}``.

    Raises:
        DsbFormatError: unknown columns, malformed numbers, or a patient with only one of the two volumes.

    Example:
        >>> vols = read_dsb_volumes("kaggle_dsb_truth/train.csv")  # doctest: +SKIP
        >>> vols[1].diastole_ml  # doctest: +SKIP
        246.7

    """
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        rows = list(reader)
    out: dict[int, DsbVolumes] = {}
    try:
        if {"Id", "Systole", "Diastole"} <= cols:
            for r in rows:
                pid = int(r["Id"])
                out[pid] = DsbVolumes(pid, float(r["Systole"]), float(r["Diastole"]))
        elif {"Id", "Volume"} <= cols:
            half: dict[int, dict[str, float]] = {}
            for r in rows:
                m = re.fullmatch(r"(\d+)_(Systole|Diastole)", r["Id"])
                if not m:
                    raise DsbFormatError(f"{path}: Id {r['Id']!r} is not 'N_Systole' or 'N_Diastole'")
                half.setdefault(int(m.group(1)), {})[m.group(2)] = float(r["Volume"])
            for pid, v in half.items():
                if set(v) != {"Systole", "Diastole"}:
                    raise DsbFormatError(f"{path}: patient {pid} lacks one of Systole/Diastole")
                out[pid] = DsbVolumes(pid, v["Systole"], v["Diastole"])
        else:
            raise DsbFormatError(
                f"{path}: expected columns Id,Systole,Diastole or Id,Volume; got {sorted(cols)}"
            )
    except ValueError as exc:
        if isinstance(exc, DsbFormatError):
            raise
        raise DsbFormatError(f"{path}: {exc}") from exc
    return out


def read_dsb_dimensions(path: PathLike) -> dict[str, DsbDimensions]:
    """Read ``patient_dimensions.tsv`` (pid, X, Y, pixelSpacingX, pixelSpacingY, sliceSpacing, scaleFactor).

    Args:
        path: the TSV file.

    Returns:
        ``{patient_id: DsbDimensions}`` keyed by the id string (``"983"``, ``"721_a"``).

    Raises:
        DsbFormatError: missing columns or malformed numbers.

    Example:
        >>> dims = read_dsb_dimensions("kaggle_dsb_truth/patient_dimensions.tsv")  # doctest: +SKIP

    """
    need = ["pid", "X", "Y", "pixelSpacingX", "pixelSpacingY", "sliceSpacing", "scaleFactor"]
    with open(Path(path), newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if not set(need) <= set(reader.fieldnames or ()):
            raise DsbFormatError(f"{path}: expected columns {need}, got {reader.fieldnames}")
        try:
            return {
                r["pid"]: DsbDimensions(
                    r["pid"],
                    int(r["X"]),
                    int(r["Y"]),
                    float(r["pixelSpacingX"]),
                    float(r["pixelSpacingY"]),
                    float(r["sliceSpacing"]),
                    float(r["scaleFactor"]),
                )
                for r in reader
            }
        except ValueError as exc:
            raise DsbFormatError(f"{path}: {exc}") from exc
