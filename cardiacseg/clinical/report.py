"""Study reports: clinical indices and the per-slice table as text, JSON and CSV.

A CSV may start with comment lines ``# key: value`` (:func:`csv_comment_lines`), e.g. the model identity
that produced the labels; readers skip them (``pandas.read_csv(path, comment="#")``, or
:func:`read_csv_rows`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path

from cardiacseg.clinical.indices import CardiacIndices, per_slice_table
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import PathLike
from cardiacseg.utils.atomic import atomic_write_text

__all__ = [
    "INDEX_ROWS",
    "build_report",
    "csv_comment_lines",
    "format_indices",
    "read_csv_rows",
    "write_report",
]

#: The indices a report lists, in order: (name, key of :class:`CardiacIndices`, unit).
INDEX_ROWS: tuple[tuple[str, str, str], ...] = (
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
    if indices.rv_es_phase != indices.es_phase:
        lines[0] += f"; RV ES phase {indices.rv_es_phase} (the RV's own smallest volume)"
    for name, key, unit in INDEX_ROWS:
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


def csv_comment_lines(header: Mapping[str, object] | None) -> str:
    r"""Format ``# key: value`` comment lines that open a CSV file (one line per entry).

    Line breaks inside a value become spaces, so that every entry stays one comment line.

    Args:
        header: entries in order (``None`` or empty: no lines).

    Returns:
        The lines, each ending in ``\n`` (``""`` for no entries).

    Example:
        >>> csv_comment_lines({"model": "cardiacseg 0.1.0 | TTA flip"})
        '# model: cardiacseg 0.1.0 | TTA flip\n'

    """
    lines = []
    for key, value in (header or {}).items():
        text = " ".join(str(value).splitlines())
        lines.append(f"# {key}: {text}\n")
    return "".join(lines)


def read_csv_rows(path: PathLike) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Read a CSV written by cardiacseg: its leading ``# key: value`` lines and its rows.

    Args:
        path: the CSV file (e.g. ``report.csv`` or ``batch_summary.csv`` of ``cardiacseg segment``).

    Returns:
        ``(header entries, rows as dicts of strings)``.

    Example:
        >>> header, rows = read_csv_rows("out/SCD0000101/report.csv")  # doctest: +SKIP
        >>> header["weights"]  # doctest: +SKIP
        'model.pt sha256 0362836124def358...'

    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    header: dict[str, str] = {}
    n = 0
    while n < len(lines) and lines[n].startswith("#"):
        key, _, value = lines[n][1:].partition(":")
        header[key.strip()] = value.strip()
        n += 1
    return header, list(csv.DictReader(lines[n:]))


def write_report(
    out_dir: PathLike,
    report: dict[str, object],
    overwrite: bool = False,
    csv_header: Mapping[str, object] | None = None,
) -> list[Path]:
    """Write ``report.json`` and ``report.csv`` (the per-slice table) atomically.

    Args:
        out_dir: output folder (created).
        report: from :func:`build_report`.
        overwrite: allow replacing existing files.
        csv_header: entries written as ``# key: value`` lines before the CSV table (e.g. the model
            identity); pandas reads the file with ``comment="#"``.

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
    buf.write(csv_comment_lines(csv_header))
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
