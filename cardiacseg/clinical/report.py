"""Study reports: clinical indices and the per-slice table as text, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from cardiacseg.clinical.indices import CardiacIndices, per_slice_table
from cardiacseg.io.atomic import atomic_write_text
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import PathLike

__all__ = ["build_report", "format_indices", "write_report"]

_ROWS = (
    ("LV EDV", "lv_edv_ml", "mL"),
    ("LV ESV", "lv_esv_ml", "mL"),
    ("LV SV", "lv_sv_ml", "mL"),
    ("LV EF", "lv_ef_percent", "%"),
    ("LV mass", "lv_mass_g", "g"),
    ("RV EDV", "rv_edv_ml", "mL"),
    ("RV ESV", "rv_esv_ml", "mL"),
    ("RV SV", "rv_sv_ml", "mL"),
    ("RV EF", "rv_ef_percent", "%"),
)


def format_indices(indices: CardiacIndices) -> str:
    """Format indices as an aligned text table; unavailable values show their reason.

    Args:
        indices: the computed indices.

    Returns:
        Multi-line text.

    Example:
        >>> print(format_indices(compute_cardiac_indices(study)))  # doctest: +SKIP

    """
    lines = [f"ED phase {indices.ed_phase}, ES phase {indices.es_phase} ({indices.ed_es_source})"]
    for name, key, unit in _ROWS:
        value = getattr(indices, key)
        text = (
            f"{value:8.1f} {unit}"
            if value is not None
            else f"     n/a    ({indices.unavailable.get(key, '')})"
        )
        lines.append(f"  {name:8s} {text}")
    return "\n".join(lines)


def build_report(
    study: CineStudy, indices: CardiacIndices, extra: dict[str, object] | None = None
) -> dict[str, object]:
    """Assemble a JSON-serialisable report.

    Args:
        study: the study (for source, geometry and curation).
        indices: its indices.
        extra: further top-level entries (e.g. a comparison with expert labels).

    Returns:
        ``{"source", "spacing_mm", "shape_TZYX", "indices", "per_slice", "curation", ...}``.

    Example:
        >>> report = build_report(study, compute_cardiac_indices(study))  # doctest: +SKIP

    """
    report: dict[str, object] = {
        "source": study.source,
        "shape_TZYX": list(study.image.shape),
        "spacing_mm_zyx": None if study.spacing_mm is None else list(study.spacing_mm),
        "phase_times_ms": None if study.phase_times_ms is None else list(study.phase_times_ms),
        "indices": indices.to_dict(),
        "per_slice": per_slice_table(study, [indices.ed_phase, indices.es_phase]),
        "curation": study.curation.to_list(),
    }
    report.update(extra or {})
    return report


def write_report(out_dir: PathLike, report: dict[str, object], overwrite: bool = False) -> list[Path]:
    """Write ``report.json`` and ``report.csv`` (the per-slice table) atomically.

    Args:
        out_dir: output folder (created).
        report: from :func:`build_report`.
        overwrite: allow replacing existing files.

    Returns:
        The written paths.

    Raises:
        FileExistsError: a file exists and ``overwrite`` is False.

    Example:
        >>> write_report("out", build_report(study, indices))  # doctest: +SKIP

    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = report.get("per_slice") or []
    assert isinstance(rows, list)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    csv_path = atomic_write_text(out / "report.csv", buf.getvalue(), overwrite=overwrite)
    # report.json last: its presence marks a finished study (resumable batches)
    json_path = atomic_write_text(
        out / "report.json", json.dumps(report, indent=2) + "\n", overwrite=overwrite
    )
    return [json_path, csv_path]
