"""The one-page HTML report: numbers equal report.json, nothing external, escaped, and rendered by Chromium.

The real-data tests segment Sunnybrook SCD0000101 once (``--fast``) and build the page from its
``report.json``, ``montage.png`` and ``volumes.png``, as written. Its DICOM headers carry no height, weight
or sex, so ``body_size`` is all unknown and nothing is assessed per m²; to exercise those parts too, a copy
of the report gets clearly synthetic ``body_size`` and ``reference_ranges`` entries, with the BSA computed
by hand from the Mosteller formula. The tests without real data use a hand-written report."""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cardiacseg.clinical.html_report import CSP, build_html_report, write_html_report

CHROMIUM = Path("/usr/bin/chromium")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
#: Attributes through which a page can load something.
URL_ATTRS = {
    "src",
    "href",
    "srcset",
    "action",
    "formaction",
    "poster",
    "data",
    "background",
    "xlink:href",
    "ping",
}
LEAK = "http://cardiacseg-netcheck.invalid/leak.png"

# ---------------------------------------------------------------------------------------------------------
# a minimal DOM from the standard library's HTML parser (independent of how the page was written)


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Node]:
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str) -> list[Node]:
        return [n for n in self.iter() if n.tag == tag]

    def by_id(self, id_: str) -> Node | None:
        return next((n for n in self.iter() if n.attrs.get("id") == id_), None)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(page: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(page)
    builder.close()
    return builder.root


def squash(text: str) -> str:
    return " ".join(text.split())


def table_rows(section: Node) -> dict[str, list[str]]:
    """Body rows of the section's table: row header text -> the other cells' texts."""
    rows = {}
    for tr in section.find_all("tr"):
        cells = [c for c in tr.children if isinstance(c, Node) and c.tag in ("th", "td")]
        if cells and cells[0].attrs.get("scope") == "row":
            rows[squash(cells[0].text())] = [squash(c.text()) for c in cells[1:]]
    return rows


# ---------------------------------------------------------------------------------------------------------
# inputs


def png_bytes(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 6), colour).save(buf, format="PNG")
    return buf.getvalue()


def minimal_report() -> dict[str, Any]:
    """A hand-written report with every index, for the tests that need no real data."""
    return {
        "source": "DICOM /data/study (series 1)",
        "phase_times_ms": [0.0, 50.0, 100.0, 150.0],
        "indices": {
            "ed_phase": 0,
            "es_phase": 2,
            "rv_es_phase": 2,
            "ed_es_source": "detected",
            "lv_edv_ml": 150.0,
            "lv_esv_ml": 60.0,
            "lv_sv_ml": 90.0,
            "lv_ef_percent": 60.0,
            "lv_mass_g": 120.0,
            "rv_edv_ml": 160.0,
            "rv_esv_ml": 70.0,
            "rv_sv_ml": 90.0,
            "rv_ef_percent": 56.25,
            "unavailable": {},
        },
        "curation": [],
        "qc_flags": [],
        "model": {"package_version": "9.9.9", "bundle": {"name": "b", "version": "1.2.3"}, "weights": []},
        "uncertainty": {"study_entropy_nats": 0.2},
    }


#: Synthetic body size: BSA by hand, Mosteller: sqrt(178 cm * 82 kg / 3600) = sqrt(4.05444) = 2.01356 m^2.
HAND_BSA = 2.01356


def add_synthetic_body_size(report: dict[str, Any]) -> dict[str, Any]:
    """Clearly synthetic body size and reference ranges (not published values) for the new sections."""
    r = copy.deepcopy(report)
    r["body_size"] = {
        "height_cm": 178.0,
        "weight_kg": 82.0,
        "sex": "M",
        "age_years": 56.0,
        "bsa_m2": math.sqrt(178.0 * 82.0 / 3600.0),
        "bsa_formula": "Mosteller",
        "source": "synthetic test values",
    }
    ix = r["indices"]
    bsa = r["body_size"]["bsa_m2"]
    rows = [
        ("lv_edv_ml_per_m2", "LV EDV / BSA", ix["lv_edv_ml"] / bsa, "mL/m²", 57.0, 105.0, "within", ""),
        ("lv_esv_ml_per_m2", "LV ESV / BSA", ix["lv_esv_ml"] / bsa, "mL/m²", 15.0, 43.0, "above", ""),
        ("lv_ef_percent", "LV EF", ix["lv_ef_percent"], "%", 55.0, 73.0, "below", "synthetic: men's range"),
        ("rv_edv_ml_per_m2", "RV EDV / BSA", ix["rv_edv_ml"] / bsa, "mL/m²", None, 121.0, "within", ""),
        ("rv_ef_percent", "RV EF", ix["rv_ef_percent"], "%", None, None, "not assessed", "no range"),
    ]
    r["reference_ranges"] = {
        "source": "SYNTHETIC test ranges, not a published source",
        "url": "https://example.invalid/ranges?a=1&b=2",
        "population": "adults, SSFP cine",
        "sex": "M",
        "rows": [
            {"key": k, "name": n, "value": v, "unit": u, "lower": lo, "upper": hi, "status": s, "reason": why}
            for k, n, v, u, lo, hi, s, why in rows
        ]
        + [
            {
                "key": "rv_sv_ml_per_m2",
                "name": "RV SV / BSA",
                "value": None,
                "unit": "mL/m²",
                "lower": None,
                "upper": None,
                "status": "not assessed",
                "reason": "no reference for this sex",
            }
        ],
    }
    return r


@pytest.fixture(scope="module")
def study_out(sunnybrook_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SCD0000101 segmented once with the fast settings; a folder with its report.json and PNGs only."""
    from cardiacseg.cli import main

    out = tmp_path_factory.mktemp("html_segment")
    args = ["segment", str(sunnybrook_dir / "dicoms" / "SCD0000101"), "-o", str(out), "--fast", "--quiet"]
    assert main(args) == 0
    keep = tmp_path_factory.mktemp("html") / "SCD0000101"
    keep.mkdir()
    for name in ("report.json", "montage.png", "volumes.png"):
        shutil.copy(out / "SCD0000101" / name, keep / name)
    return keep


@pytest.fixture(scope="module")
def real_report(study_out: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((study_out / "report.json").read_text())
    return report


@pytest.fixture(scope="module")
def real_images(study_out: Path) -> dict[str, bytes]:
    return {k: (study_out / f"{k}.png").read_bytes() for k in ("montage", "volumes")}


def page_dir(study_out: Path, tmp_path: Path, report: dict[str, Any]) -> Path:
    """A study folder with the real PNGs and the page written from ``report``."""
    d = tmp_path / "SCD0000101"
    d.mkdir()
    for name in ("montage.png", "volumes.png"):
        shutil.copy(study_out / name, d / name)
    write_html_report(d, report)
    return d


# ---------------------------------------------------------------------------------------------------------
# unit tests without a browser


def test_numbers_in_the_page_equal_report_json(
    real_report: dict[str, Any], real_images: dict[str, bytes]
) -> None:
    when = datetime(2025, 3, 4, 5, 6, tzinfo=timezone.utc)
    page = build_html_report(real_report, real_images, study="SCD0000101", written=when)
    doc = parse(page)
    section = doc.by_id("indices")
    assert section is not None
    rows = table_rows(section)
    expected = {
        "LV EDV": ("lv_edv_ml", "mL"),
        "LV ESV": ("lv_esv_ml", "mL"),
        "LV SV": ("lv_sv_ml", "mL"),
        "LV EF": ("lv_ef_percent", "%"),
        "LV mass": ("lv_mass_g", "g"),
        "RV EDV": ("rv_edv_ml", "mL"),
        "RV ESV": ("rv_esv_ml", "mL"),
        "RV SV": ("rv_sv_ml", "mL"),
        "RV EF": ("rv_ef_percent", "%"),
    }
    assert list(rows) == list(expected)  # in this order
    ix = real_report["indices"]
    for name, (key, unit) in expected.items():
        value_text, unit_text = rows[name][:2]
        assert unit_text == unit
        assert abs(float(value_text) - ix[key]) <= 0.05 + 1e-9, (name, value_text, ix[key])
    # ED/ES phases with their times, read from report.json independently; SCD0000101's RV ES differs
    times = real_report["phase_times_ms"]
    phases = squash(section.text())
    assert f"ED phase {ix['ed_phase']} ({round(times[ix['ed_phase']])} ms)" in phases
    assert f"LV ES phase {ix['es_phase']} ({round(times[ix['es_phase']])} ms)" in phases
    assert ix["rv_es_phase"] != ix["es_phase"]
    assert f"RV ES phase {ix['rv_es_phase']} ({round(times[ix['rv_es_phase']])} ms)" in phases
    # header: study, source, date, model identity (package, bundle version, weights SHA-256 prefix)
    header = squash(doc.find_all("header")[0].text())
    assert "SCD0000101" in header and real_report["source"] in header and "2025-03-04 05:06 UTC" in header
    model = real_report["model"]
    assert f"cardiacseg {model['package_version']}" in header
    assert model["bundle"]["version"] in header and model["weights"][0]["sha256"][:12] in header
    # the figures embedded are exactly the PNG files
    embedded = {img.attrs.get("alt"): img.attrs["src"] for img in doc.find_all("img")}
    for alt, key in (("Segmentation montage", "montage"), ("Volume curve", "volumes")):
        src = embedded[alt]
        assert src is not None and src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == real_images[key]
    # QC flags, curation notes and the uncertainty in words; the research-software footer
    text = squash(doc.text())
    assert real_report["qc_flags"] == [] and "No QC flags" in text
    for note in real_report["curation"]:
        assert note["message"] in text
    assert f"{real_report['uncertainty']['study_entropy_nats']:.3f} nats" in text
    assert "Research software, not a diagnosis" in squash(doc.find_all("footer")[0].text())


def reference_table(section: Node) -> tuple[dict[str, tuple[list[str], str, str]], dict[str, str]]:
    """Rows (name -> value, unit, range; status; note number) and the notes (number -> text)."""
    rows = {}
    for tr in section.find_all("tr"):
        cells = [c for c in tr.children if isinstance(c, Node) and c.tag in ("th", "td")]
        if not cells or cells[0].attrs.get("scope") != "row":
            continue
        status_cell = cells[4]
        sup = status_cell.find_all("sup")
        status = squash("".join(c for c in status_cell.children if isinstance(c, str)))
        rows[squash(cells[0].text())] = (
            [squash(c.text()) for c in cells[1:4]],
            status,
            sup[0].text() if sup else "",
        )
    notes = {}
    box = section.by_id("reference-notes")
    for span in box.find_all("span") if box is not None else []:
        number = span.find_all("sup")[0].text()
        notes[number] = squash("".join(c for c in span.children if isinstance(c, str))).rstrip(".")
    return rows, notes


@pytest.mark.parametrize("entries", ["as written by segment", "synthetic"])
def test_body_size_and_reference_ranges(
    real_report: dict[str, Any], real_images: dict[str, bytes], entries: str
) -> None:
    if entries == "synthetic":
        report = add_synthetic_body_size(real_report)
    elif "reference_ranges" not in real_report:
        pytest.skip("this version of segment writes no body_size / reference_ranges into report.json")
    else:
        report = real_report
    doc = parse(build_html_report(report, real_images))
    section = doc.by_id("reference")
    assert section is not None
    text = squash(section.text())
    body = report["body_size"]
    if body["bsa_m2"] is not None:
        assert f"BSA {body['bsa_m2']:.2f} m²" in text
    else:
        assert "BSA not computed" in text
    if entries == "synthetic":
        assert f"BSA {HAND_BSA:.2f} m² (Mosteller)" in text
        assert "height 178 cm, weight 82.0 kg, sex M, age 56 y" in text
    rows, notes = reference_table(section)
    skipped = doc.by_id("not-assessed")
    skipped_text = squash(skipped.text()) if skipped is not None else ""
    marks = {"within": "✓ within", "below": "▼ below", "above": "▲ above", "not assessed": "not assessed"}
    ref = report["reference_ranges"]
    for row in ref["rows"]:
        if row["value"] is None and row["status"] == "not assessed":  # listed in one line, with its note
            assert row["name"] not in rows
            number = next(k for k, v in notes.items() if v == row["reason"])
            assert f"{row['name']}{number}" in skipped_text
            continue
        (value, unit, ref_range), status, number = rows[row["name"]]
        assert abs(float(value) - row["value"]) <= 0.05 + 1e-9 and unit == row["unit"]
        lo, hi = row["lower"], row["upper"]
        if lo is not None and hi is not None:
            expected_range = f"{lo:.1f}–{hi:.1f}"
        elif lo is not None or hi is not None:
            expected_range = f"≥ {lo:.1f}" if lo is not None else f"≤ {hi:.1f}"
        else:
            expected_range = "—"
        assert ref_range == expected_range
        assert status == marks[row["status"]]
        assert notes.get(number, "") == row["reason"]
    # the status is marked visually (a class with its own colours), not only in words
    classes = {tr.attrs.get("data-key"): tr.attrs.get("class") for tr in section.find_all("tr")}
    for row in ref["rows"]:
        if row["key"] in classes:
            assert classes[row["key"]] == row["status"].replace(" ", "-")
    # the source is cited as plain text: citation and URL appear, no element links anywhere
    assert ref["source"] in text and ref["url"] in text
    assert not doc.find_all("a")


def test_absent_sections_are_left_out() -> None:
    doc = parse(build_html_report(minimal_report(), {}))
    text = squash(doc.text())
    assert doc.by_id("reference") is None and "Body size" not in text and "Source of the ranges" not in text
    assert [squash(h.text()) for h in doc.find_all("h2")] == [
        "Cardiac indices",
        "Quality control",
        "Reading the images (curation notes)",
        "Uncertainty",
    ]


def test_body_size_alone_and_unavailable_indices() -> None:
    report = minimal_report()
    report["indices"]["lv_mass_g"] = None
    report["indices"]["unavailable"] = {"lv_mass_g": "no myocardium <found>"}
    report["body_size"] = {
        "height_cm": None,
        "weight_kg": 70.0,
        "sex": None,
        "age_years": None,
        "bsa_m2": None,
    }
    doc = parse(build_html_report(report, {}))
    rows = table_rows(doc.by_id("indices"))  # type: ignore[arg-type]
    assert rows["LV mass"] == ["n/a", "g", "no myocardium <found>"]
    assert rows["LV EDV"] == ["150.0", "mL", ""]
    section = doc.by_id("reference")
    assert section is not None and not section.find_all("table")
    text = squash(section.text())
    assert "weight 70.0 kg, height, sex, age unknown" in text and "BSA not computed" in text
    assert "Source of the ranges" not in text
    # no figures: said in words, no image
    assert not doc.find_all("img") and "montage.png was not written" in squash(doc.text())


def test_qc_flags_and_curation_notes_in_words() -> None:
    report = minimal_report()
    report["qc_flags"] = [
        {"code": "volume_jump", "message": "LV area jumps at slice 9", "phase": 3, "slices": [9, 10]},
        {"code": "implausible_ef", "message": "LV EF 95.0 % is outside 5-90 %", "severity": "info"},
    ]
    report["curation"] = [
        {"kind": "missing_slice", "severity": "warning", "message": "gap at 40 mm", "files": ["a", "b"]}
    ]
    doc = parse(build_html_report(report, {}))
    qc = [squash(li.text()) for li in doc.by_id("qc").find_all("li")]  # type: ignore[union-attr]
    assert qc == [
        "warning LV area jumps at slice 9 volume_jump (phase 3; slices 9, 10)",  # QCFlag has no severity
        "info LV EF 95.0 % is outside 5-90 % implausible_ef",
    ]
    notes = [squash(li.text()) for li in doc.by_id("curation").find_all("li")]  # type: ignore[union-attr]
    assert notes == ["warning missing slice: gap at 40 mm (2 files)"]
    assert "No QC flags" not in squash(doc.text())


HOSTILE = '</title><script>alert("x")</script><img src=http://evil.example/a.png onerror=alert(1)>'


def test_hostile_strings_are_escaped() -> None:
    report = minimal_report()
    report["source"] = f"DICOM /data/{HOSTILE}"
    report["model"]["bundle"]["name"] = "<style>@import url(http://evil.example/x.css)</style>"
    report["qc_flags"] = [{"code": "<b>c</b>", "message": HOSTILE, "phase": "<i>"}]
    report["curation"] = [{"kind": '"><iframe src=//evil.example>', "severity": "<s>", "message": HOSTILE}]
    report["indices"]["lv_edv_ml"] = "<script>1</script>"  # not a number: shown as text, escaped
    report["reference_ranges"] = {
        "source": HOSTILE,
        "url": 'javascript:alert(1)"><a href="http://evil.example">',
        "rows": [
            {
                "key": '"><x',
                "name": HOSTILE,
                "value": 1.0,
                "unit": "<u>",
                "status": '"><script>',
                "reason": HOSTILE,
            }
        ],
    }
    page = build_html_report(report, {}, study=HOSTILE)
    doc = parse(page)
    tags = {n.tag for n in doc.iter()}
    assert not tags & {"script", "iframe", "a", "link", "s", "u", "x", "i"}
    assert len(doc.find_all("style")) == 1 and "@import" not in doc.find_all("style")[0].text()
    assert not [(n.tag, a) for n in doc.iter() for a in n.attrs if a.startswith("on")]
    assert all(n.attrs.get("src") is None for n in doc.iter())
    # the hostile text is shown as text, verbatim
    text = doc.text()
    assert text.count(HOSTILE) >= 5  # title, heading, source, QC message, curation, reference name/source
    assert "<script>1</script>" in text and 'javascript:alert(1)"><a href="http://evil.example">' in text


def test_no_external_resources_and_the_csp(
    real_report: dict[str, Any], real_images: dict[str, bytes]
) -> None:
    page = build_html_report(add_synthetic_body_size(real_report), real_images)
    doc = parse(page)
    heads = doc.find_all("head")
    assert len(heads) == 1
    csp = [
        m
        for m in heads[0].find_all("meta")
        if (m.attrs.get("http-equiv") or "").lower() == "content-security-policy"
    ]
    assert (
        [m.attrs.get("content") for m in csp]
        == ["default-src 'none'; img-src data:; style-src 'unsafe-inline'"]
        == [CSP]
    )
    assert not {n.tag for n in doc.iter()} & {
        "script",
        "link",
        "iframe",
        "object",
        "embed",
        "base",
        "form",
        "a",
    }
    refs = [(n.tag, a, v) for n in doc.iter() for a, v in n.attrs.items() if a in URL_ATTRS]
    assert refs and all(v is not None and v.startswith("data:image/png;base64,") for _, _, v in refs), [
        (t, a, (v or "")[:40]) for t, a, v in refs
    ]
    assert {t for t, _, _ in refs} == {"img"} and len(refs) == 2
    styles = [n.attrs.get("style") or "" for n in doc.iter()] + [s.text() for s in doc.find_all("style")]
    assert not [s for s in styles if "url(" in s or "@import" in s]


def test_write_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "montage.png").write_bytes(png_bytes())
    report = minimal_report()
    path = write_html_report(tmp_path, report)
    assert path == tmp_path / "report.html"
    first = path.read_text()
    assert "9.9.9" in first and first.count("data:image/png;base64,") == 1  # montage only
    report["model"]["package_version"] = "1.0.0"
    with pytest.raises(FileExistsError, match=r"report\.html"):
        write_html_report(tmp_path, report)
    assert path.read_text() == first
    write_html_report(tmp_path, report, overwrite=True)
    assert "1.0.0" in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["montage.png", "report.html"]  # no temporary files
    assert parse(path.read_text()).find_all("h1")[0].text().endswith(tmp_path.name)
    with pytest.raises(NotADirectoryError):
        write_html_report(tmp_path / "missing", report)


def test_images_must_be_known_pngs() -> None:
    with pytest.raises(ValueError, match="not a PNG"):
        build_html_report(minimal_report(), {"montage": b"GIF89a..."})
    with pytest.raises(ValueError, match="unknown image keys"):
        build_html_report(minimal_report(), {"logo": png_bytes()})


# ---------------------------------------------------------------------------------------------------------
# the page in a browser: headless Chromium


def chromium(url: str, out: Path, *extra: str) -> list[str]:
    """Screenshot (or print) ``url``; return the URLs the page itself requested (Chromium's net log).

    Chromium's own background requests (time sync, accounts) carry no document origin
    (``initiator: not an origin``); a request made by a ``file://`` page has its document's network
    isolation key ``file://``.
    """
    if not CHROMIUM.exists():
        pytest.skip(f"headless browser test needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        netlog = Path(tmp) / "netlog.json"
        cmd = [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing resolves: no request could leave the machine
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--log-net-log={netlog}",
            *extra,
            url,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr[-2000:]
        assert out.exists(), done.stderr[-2000:]
        log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start_job
        and (
            "file://" in e["params"].get("network_isolation_key", "")
            or e["params"].get("initiator") == "null"
        )
    ]


def test_page_in_headless_chromium(study_out: Path, real_report: dict[str, Any], tmp_path: Path) -> None:
    from PIL import Image

    folder = page_dir(study_out, tmp_path, real_report)  # as segment wrote it
    page = folder / "report.html"

    # the detector works: a page without our CSP that embeds an external image is caught requesting it
    control = tmp_path / "control.html"
    control.write_text(f'<html><body><img src="{LEAK}"><p>control</p></body></html>')
    assert chromium(
        control.as_uri(), tmp_path / "control.png", f"--screenshot={tmp_path / 'control.png'}"
    ) == [LEAK]
    # the CSP holds: the same external image injected into our page is not requested
    injected = tmp_path / "injected.html"
    injected.write_text(page.read_text().replace("<body>", f'<body><img src="{LEAK}">', 1))
    shot = tmp_path / "injected.png"
    assert chromium(injected.as_uri(), shot, f"--screenshot={shot}") == []

    # the page itself: no request, a 1000 x 2400 PNG that is not blank and shows the montage in colour
    shot = tmp_path / "page.png"
    assert chromium(page.as_uri(), shot, "--window-size=1000,2400", f"--screenshot={shot}") == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as im:
        assert im.size == (1000, 2400)
        rgb = np.asarray(im.convert("RGB")).astype(int)
    grey = rgb.mean(axis=2)
    assert grey.std() > 20 and (grey < 128).mean() > 0.02  # not a blank page
    # the montage: the only band of rows that is mostly dark (MR images); it holds coloured contours,
    # the green of the myocardium among them
    dark_rows = np.flatnonzero((grey < 60).mean(axis=1) > 0.3)
    assert dark_rows.size > 50
    top, bottom = int(dark_rows.min()), int(dark_rows.max())
    assert 100 < bottom - top < 1400
    band = rgb[top : bottom + 1]
    saturated = (band.max(axis=2) - band.min(axis=2)) > 100
    green = (band[..., 1] > 170) & (band[..., 0] < 130) & (band[..., 2] < 130)
    assert saturated.sum() > 500 and green.sum() > 50
    # the indices table lies above the montage, the footer below (the order the page promises)
    assert (grey[: top - 20] < 128).any() and (grey[bottom + 20 :] < 128).any()

    # print: one A4 page
    pdf = tmp_path / "page.pdf"
    assert chromium(page.as_uri(), pdf, "--no-pdf-header-footer", f"--print-to-pdf={pdf}") == []
    raw = pdf.read_bytes()
    assert (
        re.findall(rb"/Type\s*/Page(?![a-zA-Z])", raw)
        and len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", raw)) == 1
    )
    (box,) = {
        tuple(round(float(v)) for v in m.split()) for m in re.findall(rb"/MediaBox\s*\[([^\]]*)\]", raw)
    }
    assert box == (0, 0, 595, 842)  # A4 in points
