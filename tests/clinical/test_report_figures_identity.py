"""Model identity in the outputs: CSV comment lines parseable, the PNG footer drawn, overlapping nothing."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cardiacseg.clinical.figures import FOOTER_GID, plot_overlay, plot_volume_curve
from cardiacseg.clinical.indices import compute_cardiac_indices
from cardiacseg.clinical.report import build_report, read_csv_rows, write_report
from cardiacseg.data.synthetic import make_cine_phantom

FOOTER = "cardiacseg 0.1.0 | bundle Cardiac cine short-axis segmentation 0.2.1 | weights model.pt "
FOOTER += "0362836124de, member2.pt 0123456789ab | TTA flip"


@pytest.fixture(scope="module")
def study() -> Any:
    s, _ = make_cine_phantom(n_phases=4, n_slices=3, shape=(128, 128), spacing_mm=(8.0, 1.5, 1.5))
    return s


def test_csv_header_lines_are_skipped_by_csv_and_pandas_readers(study: Any, tmp_path: Path) -> None:
    indices = compute_cardiac_indices(study)
    header = {"model": FOOTER, "weights": "model.pt sha256 " + "0" * 64, "note": "two\nlines"}
    write_report(tmp_path / "with", build_report(study, indices), csv_header=header)
    write_report(tmp_path / "without", build_report(study, indices))
    text = (tmp_path / "with" / "report.csv").read_text()
    plain = (tmp_path / "without" / "report.csv").read_text()
    lines = text.splitlines()
    assert lines[:3] == [f"# model: {FOOTER}", "# weights: model.pt sha256 " + "0" * 64, "# note: two lines"]
    assert "\n".join(lines[3:]) + "\n" == plain  # the table itself is unchanged
    got_header, rows = read_csv_rows(tmp_path / "with" / "report.csv")
    assert got_header["weights"] == "model.pt sha256 " + "0" * 64
    assert rows == list(csv.DictReader(plain.splitlines()))
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(tmp_path / "with" / "report.csv", comment="#")
    assert list(frame.columns) == list(rows[0]) and len(frame) == len(rows)


def _capture_figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Keep the figures the plotting functions save, to inspect what was drawn."""
    from matplotlib.figure import Figure

    kept: list[Any] = []
    save = Figure.savefig

    def keep(fig: Any, *args: Any, **kwargs: Any) -> Any:
        kept.append(fig)
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return kept


def _extent(artist: Any, renderer: Any) -> Any:
    return artist.get_window_extent(renderer)


@pytest.mark.parametrize("n_slices", [8, 1])  # a wide montage (one footer line) and a narrow one (wrapped)
def test_overlay_footer_is_drawn_inside_and_overlaps_nothing(
    study: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n_slices: int
) -> None:
    from PIL import Image

    kept = _capture_figures(monkeypatch)
    slices = list(range(min(n_slices, study.n_slices)))
    plot_overlay(study, tmp_path / "plain.png", slices=slices, title="t")
    plot_overlay(study, tmp_path / "footer.png", slices=slices, title="t", footer=FOOTER)
    plain, fig = kept
    assert not [t for t in plain.texts if t.get_gid() == FOOTER_GID]
    (footer,) = [t for t in fig.texts if t.get_gid() == FOOTER_GID]
    assert footer.get_text().replace("\n", " ") == FOOTER  # wrapped, nothing lost
    renderer = fig.canvas.get_renderer()
    box = _extent(footer, renderer)
    assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height
    others = [ax for ax in fig.axes] + list(fig.legends)
    for other in others:
        assert not box.overlaps(_extent(other, renderer)), other
    # the PNG: taller by the footer strip, which holds grey text where the plain one has none
    a = np.asarray(Image.open(tmp_path / "plain.png").convert("L"))
    b = np.asarray(Image.open(tmp_path / "footer.png").convert("L"))
    assert b.shape[1] == a.shape[1] and b.shape[0] > a.shape[0]
    strip = b[-int(box.y1) - 1 :, : int(box.x1) + 1]
    assert (strip < 200).sum() > 100 and (a[-10:] < 200).sum() == 0


def test_volume_curve_footer(study: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kept = _capture_figures(monkeypatch)
    plot_volume_curve(compute_cardiac_indices(study), tmp_path / "v.png", footer=FOOTER)
    (fig,) = kept
    (footer,) = [t for t in fig.texts if t.get_gid() == FOOTER_GID]
    renderer = fig.canvas.get_renderer()
    box = _extent(footer, renderer)
    (ax,) = fig.axes
    assert box.x1 <= fig.bbox.width and box.y0 >= 0
    assert not box.overlaps(ax.get_tightbbox(renderer))  # axis labels and ticks included


def test_montage_mirrors_only_when_the_rv_lies_right_of_the_lv(tmp_path: Path) -> None:
    import numpy as np

    from cardiacseg.clinical.figures import _lv_to_rv, plot_overlay
    from cardiacseg.io.study import CineStudy

    lab = np.zeros((1, 2, 16, 16), np.uint8)
    lab[0, :, 6:10, 3:7] = 1  # LV on the left of the image ...
    lab[0, :, 6:10, 9:13] = 3  # ... RV on the right: mirrored for display
    study = CineStudy(image=np.random.default_rng(0).random((1, 2, 16, 16)).astype(np.float32))
    right = study.with_labels({0: lab[0]})
    left = study.with_labels({0: lab[0][:, :, ::-1].copy()})
    to_right, to_left = _lv_to_rv(right, [0]), _lv_to_rv(left, [0])  # (rows, columns) LV -> RV
    assert to_right == (0.0, 6.0) and to_left == (0.0, -6.0)
    assert plot_overlay(right, tmp_path / "m.png", rv_left=True).stat().st_size > 0
