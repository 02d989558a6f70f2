"""Patient body size given by the user: a CSV table for a cohort (``cardiacseg segment --patient-info``)."""

from __future__ import annotations

import csv
from pathlib import Path

from cardiacseg.io.study import PatientInfo
from cardiacseg.typing import PathLike

__all__ = ["PATIENT_COLUMNS", "read_patient_table"]

#: Columns of the table; ``study`` is the study name (the output sub-folder of ``cardiacseg segment``).
PATIENT_COLUMNS = ("study", "height_cm", "weight_kg", "sex", "age_years")


def read_patient_table(path: PathLike) -> dict[str, PatientInfo]:
    """Read height, weight, sex and age per study from a CSV file.

    Columns: ``study`` (required; the name ``cardiacseg segment`` gives the study's output folder) and any
    of ``height_cm``, ``weight_kg``, ``sex`` (``M``/``F``; empty: unknown) and ``age_years``. Empty cells
    are unknown values.

    Args:
        path: the CSV file.

    Returns:
        Study name -> :class:`~cardiacseg.io.study.PatientInfo` (``source`` names the file).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no ``study`` column, an unknown column, a repeated study, a value that is not a
            positive number / ``M`` / ``F``, or an implausible body size (40-250 cm, 2-400 kg, 0-130 years;
            e.g. a height in metres); the message names the file and the line.

    Example:
        >>> patients = read_patient_table("patients.csv")  # doctest: +SKIP
        >>> patients["SCD0000101"].height_cm  # doctest: +SKIP
        172.0

    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: patient table not found")
    with p.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "study" not in columns:
            raise ValueError(f"{p}: needs a 'study' column (columns: {', '.join(PATIENT_COLUMNS)})")
        unknown = sorted(set(columns) - set(PATIENT_COLUMNS))
        if unknown:
            raise ValueError(f"{p}: unknown column(s) {unknown}; known: {', '.join(PATIENT_COLUMNS)}")
        out: dict[str, PatientInfo] = {}
        for line, raw in enumerate(reader, start=2):
            row = {str(k).strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            name = row.get("study", "")
            if not name:
                raise ValueError(f"{p}:{line}: empty study name")
            if name in out:
                raise ValueError(f"{p}:{line}: study {name!r} appears twice")
            try:
                numbers = {
                    k: float(row[k]) if row.get(k) else None for k in ("height_cm", "weight_kg", "age_years")
                }
                sex = row.get("sex", "").upper() or None
                out[name] = PatientInfo(
                    numbers["height_cm"],
                    numbers["weight_kg"],
                    sex,  # type: ignore[arg-type]  # checked by PatientInfo
                    numbers["age_years"],
                    source=f"given by the user ({p.name})",
                )
                out[name].check_plausible()
            except ValueError as exc:
                raise ValueError(f"{p}:{line}: {exc}") from exc
    return out
