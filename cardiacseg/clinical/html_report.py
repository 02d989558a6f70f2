"""A one-page report for a person: self-contained HTML written beside ``report.json``.

The page shows, in this order: the study and the model that segmented it; the table of indices (LV EDV,
ESV, SV, EF, mass; RV EDV, ESV, SV, EF) with the ED/ES phases and their times; body size with BSA and
the indexed values against published reference ranges (when ``report.json`` has ``body_size`` and
``reference_ranges``); the montage and the volume curve; QC flags, curation notes and the study's
uncertainty in words; and a footer saying that this is research software, not a diagnosis.

The page loads nothing: images are embedded as ``data:`` URIs, the CSS is inline, there is no
JavaScript, and a Content-Security-Policy ``<meta>`` forbids every other source, so a browser opening it
makes no network request. Every string taken from the report is HTML-escaped. It prints on A4.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cardiacseg.clinical.qc import UNCERTAIN_ENTROPY_NATS
from cardiacseg.clinical.report import INDEX_ROWS
from cardiacseg.typing import PathLike
from cardiacseg.utils.atomic import atomic_write_text, check_writable

__all__ = ["CSP", "FIGURES", "HTML_NAME", "INDEX_ROWS", "build_html_report", "write_html_report"]

#: File name of the page in a study's output folder.
HTML_NAME = "report.html"

#: The figures the page embeds: key of ``images`` -> file name in the study's output folder.
FIGURES: Mapping[str, str] = {"montage": "montage.png", "volumes": "volumes.png"}

#: The Content-Security-Policy of the page: nothing but inline styles and ``data:`` images.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_STATUS_MARK = {"within": "\u2713 within", "below": "\u25bc below", "above": "\u25b2 above"}

_FIGURE_TEXT = {
    "montage": (
        "Segmentation montage",
        "every slice from base to apex, ED (upper rows) and ES (lower rows), model contours",
    ),
    "volumes": ("Volume curve", "LV and RV blood-pool volume over the cardiac cycle"),
}

_CSS = """
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, Helvetica, sans-serif; font-size: 13px;
  line-height: 1.35; color: #111; background: #fff; max-width: 980px; margin: 0 auto; padding: 14px 18px; }
h1 { font-size: 20px; margin: 0 0 4px 0; }
h2 { font-size: 14px; margin: 0 0 4px 0; padding-bottom: 2px; border-bottom: 1px solid #999; }
section { margin: 10px 0; }
p { margin: 2px 0; }
.meta { color: #333; font-size: 12px; }
.meta b { color: #111; }
.small { font-size: 11px; color: #444; }
.mono { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 11px; }
.url { overflow-wrap: anywhere; }
sup { font-size: 9px; line-height: 0; }
.cols { display: flex; gap: 18px; align-items: flex-start; }
.cols > * { flex: 1 1 0; min-width: 0; }
.cols > #indices { flex: 0 0 40%; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 2px 6px; border-bottom: 1px solid #ddd; vertical-align: top; }
thead th { background: #eef1f4; font-weight: bold; }
tbody th { font-weight: bold; white-space: nowrap; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.na { color: #7a1f1f; }
.status { white-space: nowrap; font-weight: bold; }
tr.within .status { color: #155724; background: #d8f0dc; }
tr.below .status, tr.above .status { color: #7a1f1f; background: #fbd9d3; }
tr.not-assessed .status { color: #555; font-weight: normal; background: #f0f0f0; }
figure { margin: 0; }
#montage { margin-bottom: 10px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid #ccc; }
figcaption { font-size: 11px; color: #444; }
ul { margin: 2px 0; padding-left: 18px; }
li { margin: 1px 0; }
.sev { margin-right: 4px; font-size: 11px; font-weight: bold;
  text-transform: uppercase; }
.sev-warning { color: #7a1f1f; }
.sev-repaired { color: #6b4e00; }
.sev-info { color: #555; }
.ok { color: #155724; }
footer { margin-top: 12px; padding-top: 6px; border-top: 2px solid #7a1f1f; font-size: 11px; color: #333; }
footer b { color: #7a1f1f; }
@page { size: A4; margin: 8mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 7.5pt; }
  h1 { font-size: 13pt; } h2 { font-size: 9pt; }
  .meta, .small, figcaption, footer, .mono, .sev { font-size: 7pt; }
  section { margin: 4px 0; break-inside: avoid; }
  th, td { padding: 1px 4px; }
  .vol img { max-height: 56mm; width: auto; }
  #montage img { max-height: 50mm; width: auto; display: block; margin: 0 auto; }
  th, .status { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def _e(value: object) -> str:
    """HTML-escape any value's text (quotes included)."""
    return html.escape(str(value), quote=True)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: object, digits: int = 1) -> str:
    """Format a finite number with ``digits`` decimals; anything else as escaped text, ``None`` as n/a."""
    if value is None:
        return "n/a"
    if _is_number(value):
        return f"{float(value):.{digits}f}"  # type: ignore[arg-type]
    return _e(value)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: object) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


def _model_text(model: Mapping[str, Any]) -> str:
    """Describe the model in words: package, bundle and weights (SHA-256 prefix)."""
    parts: list[str] = []
    if model.get("package_version") is not None:
        parts.append(f"cardiacseg {_e(model['package_version'])}")
    bundle = _mapping(model.get("bundle"))
    if bundle:
        parts.append(f"bundle {_e(bundle.get('name', '?'))} {_e(bundle.get('version', '?'))}")
    weights = [_mapping(w) for w in _sequence(model.get("weights"))]
    if weights:
        described = [
            f'{_e(w.get("file", "?"))} (SHA-256 <span class="mono">{_e(str(w.get("sha256", "?"))[:12])}'
            "\u2026</span>)"
            for w in weights
        ]
        parts.append(
            ("weights " if len(weights) == 1 else f"ensemble of {len(weights)}: ") + ", ".join(described)
        )
    networks = _sequence(model.get("networks"))
    if networks:
        parts.append("network " + ", ".join(_e(n) for n in networks))
    if model.get("tta") is not None:
        parts.append(f"TTA {_e(model['tta'])}")
    if model.get("precision") is not None:
        parts.append(f"precision {_e(model['precision'])}")
    if not parts and model.get("summary"):
        parts.append(_e(model["summary"]))
    return " \u00b7 ".join(parts) if parts else "unknown"


def _phase_text(indices: Mapping[str, Any], times: Sequence[Any]) -> str:
    """Describe the ED/ES phases (and the RV's own ES when it differs) with their trigger times."""

    def one(label: str, phase: object) -> str:
        if not isinstance(phase, int) or isinstance(phase, bool):
            return f"{label} phase {_e(phase)}"
        time = times[phase] if 0 <= phase < len(times) else None
        when = f" ({_num(time, 0)} ms)" if _is_number(time) else ""
        return f"{label} phase {phase}{when}"

    es = indices.get("es_phase")
    rv_es = indices.get("rv_es_phase", es)
    items = [one("ED", indices.get("ed_phase")), one("LV ES" if rv_es != es else "ES", es)]
    if rv_es != es:
        items.append(one("RV ES", rv_es) + " (the RV's own smallest volume)")
    source = indices.get("ed_es_source")
    how = {"detected": "detected from the LV volume curve", "given": "given by the data source"}.get(
        str(source), _e(source)
    )
    return " \u00b7 ".join(items) + (f"; {how}" if source is not None else "")


def _indices_section(report: Mapping[str, Any]) -> str:
    indices = _mapping(report.get("indices"))
    unavailable = _mapping(indices.get("unavailable"))
    times = _sequence(report.get("phase_times_ms"))
    missing = any(indices.get(key) is None for _, key, _ in INDEX_ROWS)
    rows = []
    for name, key, unit in INDEX_ROWS:
        value = indices.get(key)
        cells = f'<th scope="row">{name}</th>'
        if value is None:
            cells += f'<td class="num na">n/a</td><td>{unit}</td>'
            cells += f'<td class="small">{_e(unavailable.get(key, "not reported"))}</td>'
        else:
            cells += f'<td class="num">{_num(value)}</td><td>{unit}</td>' + ("<td></td>" if missing else "")
        rows.append(f'<tr data-key="{key}">{cells}</tr>')
    head = "<th>Index</th><th>Value</th><th>Unit</th>" + ("<th>Note</th>" if missing else "")
    settings = _mapping(report.get("settings"))
    slice_range = settings.get("slice_range", report.get("slice_range_mode"))
    note = "Volumes: sum of slice areas \u00d7 slice spacing (discs on the acquired slices)"
    if slice_range is not None:
        note += f"; slices counted: {_e(slice_range)}"
    return (
        '<section id="indices"><h2>Cardiac indices</h2>'
        f'<p class="meta">{_phase_text(indices, times)}</p>'
        f"<table><thead><tr>{head}</tr></thead><tbody>"
        + "".join(rows)
        + f'</tbody></table><p class="small">{note}. LV mass = myocardium at ED \u00d7 1.05 g/mL.</p>'
        + "</section>"
    )


def _body_size_text(body: Mapping[str, Any]) -> str:
    def item(label: str, key: str, unit: str, digits: int) -> str | None:
        value = body.get(key)
        return f"{label} {_num(value, digits)}{unit}" if value is not None else None

    sex = body.get("sex")
    known = [
        item("height", "height_cm", " cm", 0),
        item("weight", "weight_kg", " kg", 1),
        f"sex {_e(sex)}" if sex is not None else None,
        item("age", "age_years", " y", 0),
    ]
    unknown = [
        name for name, text in zip(("height", "weight", "sex", "age"), known, strict=True) if text is None
    ]
    parts = [t for t in known if t is not None]
    if unknown:
        parts.append(f"{', '.join(unknown)} unknown")
    bsa = body.get("bsa_m2")
    formula = body.get("bsa_formula")
    bsa_text = (
        f"<b>BSA {_num(bsa, 2)} m\u00b2</b>" + (f" ({_e(formula)})" if formula else "")
        if bsa is not None
        else "BSA not computed (height or weight unknown)"
    )
    source = f' <span class="small">Source: {_e(body["source"])}.</span>' if body.get("source") else ""
    return f'<p class="meta" id="body-size">Body size: {", ".join(parts)}; {bsa_text}.{source}</p>'


def _range_text(lower: object, upper: object) -> str:
    if lower is not None and upper is not None:
        return f"{_num(lower)}\u2013{_num(upper)}"
    if lower is not None:
        return f"\u2265 {_num(lower)}"
    if upper is not None:
        return f"\u2264 {_num(upper)}"
    return "\u2014"


def _reference_rows(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Render the rows with a value as a table and those without as one line; reasons as numbered notes."""
    notes: dict[str, int] = {}

    def marker(row: Mapping[str, Any]) -> str:
        reason = row.get("reason")
        if not reason:
            return ""
        number = notes.setdefault(str(reason), len(notes) + 1)
        return f"<sup>{number}</sup>"

    table, skipped = [], []
    for row in rows:
        status = str(row.get("status", "not assessed"))
        if row.get("value") is None and status not in _STATUS_MARK:
            skipped.append(f"{_e(row.get('name', ''))}{marker(row)}")
            continue
        css = status if status in _STATUS_MARK else "not-assessed"
        table.append(
            f'<tr class="{css}" data-key="{_e(row.get("key", ""))}">'
            f'<th scope="row">{_e(row.get("name", ""))}</th>'
            f'<td class="num">{_num(row.get("value"))}</td><td>{_e(row.get("unit", ""))}</td>'
            f'<td class="num">{_range_text(row.get("lower"), row.get("upper"))}</td>'
            f'<td class="status">{_STATUS_MARK.get(status, _e(status))}{marker(row)}</td>'
            f'<td class="small">{_e(row.get("source") or "")}</td></tr>'
        )
    parts = []
    if table:
        parts.append(
            "<table><thead><tr><th>Measure</th><th>Value</th><th>Unit</th><th>Reference</th>"
            "<th>Status</th><th>Ref.</th></tr></thead><tbody>" + "".join(table) + "</tbody></table>"
        )
    if skipped:
        parts.append(f'<p class="small" id="not-assessed">Not assessed: {", ".join(skipped)}.</p>')
    if notes:
        parts.append(
            '<p class="small" id="reference-notes">'
            + " ".join(f'<span class="note"><sup>{n}</sup> {_e(text)}.</span>' for text, n in notes.items())
            + "</p>"
        )
    return parts


def _reference_section(report: Mapping[str, Any]) -> str:
    body = _mapping(report.get("body_size"))
    ref = _mapping(report.get("reference_ranges"))
    if not body and not ref:
        return ""
    parts = ['<section id="reference"><h2>Body size and reference ranges</h2>']
    if body:
        parts.append(_body_size_text(body))
    if ref:
        who = [_e(ref["population"])] if ref.get("population") else []
        who.append(f"sex {_e(ref['sex'])}" if ref.get("sex") else "sex unknown")
        parts.append(f'<p class="meta">Reference: {"; ".join(who)}.</p>')
        parts += _reference_rows([_mapping(r) for r in _sequence(ref.get("rows"))])
        cite = []
        if ref.get("source"):
            cite.append(f"<p>Source of the ranges: {_e(ref['source'])}.</p>")
        if ref.get("url"):
            cite.append(f'<p class="mono url">{_e(ref["url"])}</p>')
        cite += [f"<p>{_e(n)}.</p>" for n in _sequence(ref.get("notes"))]
        if cite:
            parts.append(f'<div class="small" id="citation">{"".join(cite)}</div>')
    parts.append("</section>")
    return "".join(parts)


def _figure(key: str, data: bytes | None) -> str:
    title, caption = _FIGURE_TEXT[key]
    if data is None:
        missing = f"{title}: not available ({FIGURES[key]} was not written)."
        return f'<figure id="{key}"><figcaption>{missing}</figcaption></figure>'
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    img = f'<img src="{uri}" alt="{title}">'
    return f'<figure id="{key}">{img}<figcaption>{title}: {caption}.</figcaption></figure>'


def _items(entries: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{e}</li>" for e in entries) + "</ul>"


def _severity(value: object) -> str:
    text = str(value) if value is not None else "warning"
    cls = text if text in ("warning", "repaired", "info") else "info"
    return f'<span class="sev sev-{cls}">{_e(text)}</span>'


def _qc_section(report: Mapping[str, Any]) -> str:
    flags = [_mapping(f) for f in _sequence(report.get("qc_flags"))]
    if not flags:
        body = '<p class="ok" id="no-qc-flags">No QC flags: none of the automatic checks fired.</p>'
    else:
        entries = []
        for f in flags:
            where = []
            if f.get("phase") is not None:
                where.append(f"phase {_e(f['phase'])}")
            slices = _sequence(f.get("slices"))
            if slices:
                where.append("slice" + ("s " if len(slices) > 1 else " ") + ", ".join(_e(s) for s in slices))
            extra = f' <span class="small">({"; ".join(where)})</span>' if where else ""
            entries.append(
                f"{_severity(f.get('severity'))} {_e(f.get('message', ''))}"
                f' <span class="small mono">{_e(f.get("code", ""))}</span>{extra}'
            )
        body = _items(entries)
    return f'<section id="qc"><h2>Quality control</h2>{body}</section>'


def _curation_section(report: Mapping[str, Any]) -> str:
    notes = [_mapping(c) for c in _sequence(report.get("curation"))]
    if not notes:
        body = '<p class="small">The reader noted nothing about the input images.</p>'
    else:
        entries = []
        for c in notes:
            kind = str(c.get("kind", "")).replace("_", " ")
            files = _sequence(c.get("files"))
            extra = (
                f' <span class="small">({len(files)} file{"s" if len(files) != 1 else ""})</span>'
                if files
                else ""
            )
            entries.append(
                f"{_severity(c.get('severity', 'info'))} {_e(kind)}: {_e(c.get('message', ''))}{extra}"
            )
        body = _items(entries)
    return f'<section id="curation"><h2>Reading the images (curation notes)</h2>{body}</section>'


def _uncertainty_section(report: Mapping[str, Any]) -> str:
    unc = _mapping(report.get("uncertainty"))
    entropy = unc.get("study_entropy_nats")
    if entropy is None:
        text = "The study's uncertainty was not computed."
    else:
        above = _is_number(entropy) and float(entropy) > UNCERTAIN_ENTROPY_NATS
        verdict = "above" if above else "below"
        text = (
            f"Predictive entropy of the study: <b>{_num(entropy, 3)} nats</b>, {verdict} the "
            f"{UNCERTAIN_ENTROPY_NATS:.2f} nats at which the "
            '<span class="mono">uncertain_segmentation</span> flag fires '
            "(higher means the model was less sure)."
        )
        tta = _mapping(report.get("model")).get("tta")
        if tta == "none":
            text += " Computed without test-time augmentation, which gives lower values than the calibration."
        if unc.get("rule"):
            text += f' <span class="small">Rule: {_e(unc["rule"])}.</span>'
    return f'<section id="uncertainty"><h2>Uncertainty</h2><p>{text}</p></section>'


def build_html_report(
    report: Mapping[str, Any],
    images: Mapping[str, bytes],
    *,
    study: str | None = None,
    written: datetime | None = None,
) -> str:
    """Render a study's ``report.json`` content as one self-contained HTML page.

    Sections (``body_size`` and ``reference_ranges`` only when the report has them): header (study,
    source, date written, model identity), table of indices with ED/ES phases and times, body size and
    reference ranges (value, range, status, cited source), the montage and volume curve, QC flags,
    curation notes, uncertainty, and a research-software footer. QC flags (``QCFlag``) carry no severity:
    one is shown as a warning unless its dictionary has a ``severity``. Every string from ``report`` is
    HTML-escaped; images are embedded as ``data:`` URIs; a Content-Security-Policy forbids loading
    anything else.

    Args:
        report: the content of ``report.json`` (as written by ``cardiacseg segment``).
        images: PNG bytes keyed by :data:`FIGURES`' keys (``"montage"``, ``"volumes"``); a missing key is
            stated in the page.
        study: study name for the title (default: ``report["source"]``).
        written: the time the page says it was written (default: now, local time zone).

    Returns:
        The HTML document.

    Raises:
        ValueError: an ``images`` key outside :data:`FIGURES`, or image bytes that are not a PNG.

    Example:
        >>> import json
        >>> out = Path("out/SCD0000101")
        >>> report = json.loads((out / "report.json").read_text())  # doctest: +SKIP
        >>> images = {"montage": (out / "montage.png").read_bytes()}  # doctest: +SKIP
        >>> page = build_html_report(report, images)  # doctest: +SKIP
        >>> build_html_report({"source": "<b>x</b>"}, {}).count("&lt;b&gt;x&lt;/b&gt;") > 0
        True

    """
    unknown = sorted(set(images) - set(FIGURES))
    if unknown:
        raise ValueError(f"unknown image keys {unknown}; expected some of {sorted(FIGURES)}")
    for key, data in images.items():
        if bytes(data[:8]) != _PNG_MAGIC:
            raise ValueError(f"image {key!r} is not a PNG (it must start with the PNG signature)")
    source = report.get("source")
    name = study if study is not None else (str(source) if source is not None else "study")
    when = (written or datetime.now(timezone.utc).astimezone()).strftime("%Y-%m-%d %H:%M %Z").strip()
    labels = report.get("labels")
    header = (
        f"<header><h1>Cardiac cine MRI segmentation \u2014 {_e(name)}</h1>"
        + (f'<p class="meta"><b>Source:</b> {_e(source)}</p>' if source is not None else "")
        + f'<p class="meta"><b>Written:</b> {_e(when)}'
        + (f" \u00b7 <b>Labels:</b> {_e(labels)}" if labels is not None else "")
        + "</p>"
        + f'<p class="meta"><b>Model:</b> {_model_text(_mapping(report.get("model")))}</p></header>'
    )
    indices = _indices_section(report)
    reference = _reference_section(report)
    top = f'<div class="cols">{indices}{reference}</div>' if reference else indices
    figures = (
        f'<section id="figures">{_figure("montage", images.get("montage"))}'
        f'<div class="cols"><div class="vol">{_figure("volumes", images.get("volumes"))}</div>'
        f"<div>{_qc_section(report)}{_curation_section(report)}{_uncertainty_section(report)}</div></div>"
        "</section>"
    )
    footer = (
        "<footer><b>Research software, not a diagnosis.</b> The numbers and contours on this page were "
        "produced automatically by cardiacseg and have not been checked by a person. It is not a medical "
        "device; a qualified reader must review the images and the segmentation before any clinical use."
        "</footer>"
    )
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>cardiacseg report \u2014 {_e(name)}</title><style>{_CSS}</style></head>\n"
        f"<body>{header}{top}{figures}{footer}</body></html>\n"
    )
    # ASCII only (other characters as references): the file reads the same whatever the locale's encoding
    return page.encode("ascii", "xmlcharrefreplace").decode("ascii")


def write_html_report(out_dir: PathLike, report: Mapping[str, Any], overwrite: bool = False) -> Path:
    """Write ``out_dir/report.html`` for a study, embedding ``montage.png`` and ``volumes.png`` from there.

    Args:
        out_dir: the study's output folder (where ``segment`` wrote ``report.json`` and the PNGs); its
            name is the study name in the page.
        report: the content of ``report.json``.
        overwrite: replace an existing ``report.html``.

    Returns:
        The path of the written page (written atomically: a reader never sees half a page).

    Raises:
        NotADirectoryError: ``out_dir`` is not an existing folder.
        FileExistsError: ``report.html`` exists and ``overwrite`` is False (the message names the file).
        ValueError: a figure file that is not a PNG.

    Example:
        >>> import json
        >>> out = Path("out/SCD0000101")  # doctest: +SKIP
        >>> write_html_report(out, json.loads((out / "report.json").read_text()))  # doctest: +SKIP
        PosixPath('out/SCD0000101/report.html')

    """
    folder = Path(out_dir)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder (expected a study's output folder)")
    target = check_writable(folder / HTML_NAME, overwrite)
    images = {key: (folder / name).read_bytes() for key, name in FIGURES.items() if (folder / name).is_file()}
    page = build_html_report(report, images, study=folder.resolve().name)
    return atomic_write_text(target, page, overwrite=overwrite)
