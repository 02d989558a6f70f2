"""Pictures a person looks at: label overlays, volume curves and Bland–Altman plots.

Overlays and volume curves take an optional ``footer``: one small grey text line along the bottom edge
(wrapped to the figure width), e.g. the model identity that produced the labels.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cardiacseg.clinical.indices import CardiacIndices
from cardiacseg.enums import CardiacLabel
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import PathLike
from cardiacseg.utils.atomic import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "FOOTER_GID",
    "LABEL_COLOURS",
    "base_to_apex_order",
    "display_transform",
    "plot_bland_altman",
    "plot_overlay",
    "plot_volume_curve",
    "slice_positions",
    "warm_up_figures",
]

#: PNG encoder settings: fast zlib level (files about 1.3x larger, written about 4x faster).
_PNG = {"compress_level": 1}

_WARM_UP: threading.Thread | None = None
_WARM_UP_LOCK = threading.Lock()


def _render_once() -> None:
    """Import matplotlib's Agg stack and render one text to PNG in memory (loads the font and encoder)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.lines import Line2D  # noqa: F401 (imported by the plots)

    fig = Figure(figsize=(0.5, 0.5), dpi=20)
    FigureCanvasAgg(fig)
    fig.text(0.1, 0.1, "EF", fontproperties=FontProperties(size=_FOOTER_PT))
    fig.savefig(io.BytesIO(), format="png", pil_kwargs=_PNG)


def warm_up_figures() -> threading.Thread:
    """Start importing and initialising matplotlib in a background thread, once per process.

    ``cardiacseg segment`` draws its PNGs last; importing matplotlib, loading its font cache and the first
    text rendering take about half a second before the first figure. Started before the network runs
    (which releases the GIL inside torch), that time overlaps with the prediction (issue 21: overlap I/O
    with compute). Drawing functions do not depend on it: call :meth:`threading.Thread.join` on the
    returned thread before drawing so that two threads never use matplotlib at once.

    Returns:
        The warm-up thread (the same one on every call in a process; already finished after the first
        study). A failure in the thread (e.g. matplotlib missing) is ignored here; drawing reports it.

    Example:
        >>> warm = warm_up_figures()
        >>> warm.join()
        >>> import sys; "matplotlib.backends.backend_agg" in sys.modules
        True

    """
    global _WARM_UP
    with _WARM_UP_LOCK:
        if _WARM_UP is None:

            def run() -> None:
                with contextlib.suppress(Exception):  # drawing itself raises it, where it matters
                    _render_once()

            _WARM_UP = threading.Thread(target=run, name="cardiacseg-figures-warm-up", daemon=True)
            _WARM_UP.start()
        return _WARM_UP


#: Contour colour of each structure.
LABEL_COLOURS = {CardiacLabel.LV: "#ff3030", CardiacLabel.MYO: "#30ff30", CardiacLabel.RV: "#3080ff"}


#: Footer text: font size (points), line height (inches per line) and the gid that marks it in the figure.
_FOOTER_PT = 6.0
_FOOTER_LINE_IN = _FOOTER_PT * 1.35 / 72
_FOOTER_MARGIN_IN = 0.04
FOOTER_GID = "cardiacseg-footer"


def _footer_lines(fig: Figure, text: str) -> list[str]:
    """Wrap the footer at spaces to the figure width, measured with the figure's renderer."""
    if not text:
        return []
    from matplotlib.font_manager import FontProperties

    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    prop = FontProperties(size=_FOOTER_PT)
    room = (fig.get_figwidth() - 2 * _FOOTER_MARGIN_IN) * fig.dpi

    def width(line: str) -> float:
        return float(renderer.get_text_width_height_descent(line, prop, ismath=False)[0])

    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if current and width(candidate) > room:
            lines.append(current)
            current = word
        else:
            current = candidate
    return [*lines, current]


def _add_footer(fig: Figure, text: str) -> float:
    """Grow ``fig`` at the bottom and draw the footer there (grey, small, wrapped).

    Returns:
        The height added, in inches (0 without a footer): the caller moves its content up by it.

    """
    lines = _footer_lines(fig, text)
    if not lines:
        return 0.0
    added = len(lines) * _FOOTER_LINE_IN + 2 * _FOOTER_MARGIN_IN
    fig.set_figheight(fig.get_figheight() + added)
    fig.text(
        _FOOTER_MARGIN_IN / fig.get_figwidth(),
        _FOOTER_MARGIN_IN / fig.get_figheight(),
        "\n".join(lines),
        ha="left",
        va="bottom",
        fontsize=_FOOTER_PT,
        color="0.35",
        linespacing=1.2,
        gid=FOOTER_GID,
    )
    return added


def _heart_box(study: CineStudy, phases: Sequence[int], margin: int = 20) -> tuple[slice, slice]:
    masks = [study.labels[p] > 0 for p in phases if p in study.labels]
    if not masks or not any(m.any() for m in masks):
        return slice(None), slice(None)
    any_fg = np.any(np.stack(masks), axis=(0, 1))
    rows, cols = np.nonzero(any_fg)
    h, w = any_fg.shape
    side = int(max(np.ptp(rows), np.ptp(cols))) // 2 + margin
    cy, cx = (rows.min() + rows.max()) // 2, (cols.min() + cols.max()) // 2
    return slice(max(cy - side, 0), min(cy + side, h)), slice(max(cx - side, 0), min(cx + side, w))


def _lv_to_rv(study: CineStudy, phases: Sequence[int]) -> tuple[float, float] | None:
    """Return the LV-to-RV centroid vector ``(rows, columns)`` over the phases (``None``: one is absent)."""
    lv: list[np.ndarray] = []
    rv: list[np.ndarray] = []
    for p in phases:
        lab = np.asarray(study.labels[p])
        lv.append(np.argwhere(lab == CardiacLabel.LV)[:, 1:])
        rv.append(np.argwhere(lab == CardiacLabel.RV)[:, 1:])
    lv_all, rv_all = np.concatenate(lv), np.concatenate(rv)
    if not lv_all.size or not rv_all.size:
        return None
    d = rv_all.mean(axis=0) - lv_all.mean(axis=0)
    return float(d[0]), float(d[1])


#: The eight display transforms of a panel: ``np.rot90`` count, then a left-right mirror; identity first.
_DIHEDRAL = [(k, flip) for flip in (False, True) for k in range(4)]


def _apply(panel: np.ndarray, k: int, flip: bool) -> np.ndarray:
    out = np.rot90(panel, k)
    return out[:, ::-1] if flip else out


def _displayed_steps(k: int, flip: bool) -> tuple[tuple[int, int], tuple[int, int]]:
    """Index steps ``(d_row, d_col)`` of the source for one step right and one step up on the screen."""
    rows, cols = np.mgrid[0:3, 0:3]
    r, c = _apply(rows, k, flip), _apply(cols, k, flip)
    right = (int(r[1, 2] - r[1, 1]), int(c[1, 2] - c[1, 1]))
    up = (int(r[0, 1] - r[1, 1]), int(c[0, 1] - c[1, 1]))
    return right, up


def display_transform(study: CineStudy, phases: Sequence[int]) -> tuple[int, bool, str]:
    """Choose the rotation and mirror that show a short-axis slice in the standard orientation.

    The standard short-axis display (as an axial image seen from the feet, SCMR post-processing
    recommendations, Schulz-Menger et al., JCMR 2020) puts the patient's anterior up and the patient's
    right, hence the RV, on the viewer's left. With a known affine, the transform (of the eight
    rotations/mirrors) whose screen-right points most to the patient's left and screen-up most anterior is
    chosen among those that show the RV on the left (a mirrored acquisition loses to the anatomy); without
    one, the rotation (never a mirror: the handedness is unknown) that puts the RV most to the left.

    Args:
        study: a study with labels for ``phases``.
        phases: the labelled phases the LV/RV positions are taken from.

    Returns:
        ``(k, flip, how)``: show ``np.rot90(panel, k)``, then mirrored left-right when ``flip``; ``how``
        names the rule used.

    Example:
        >>> k, flip, how = display_transform(study, [0])  # doctest: +SKIP

    """
    vector = _lv_to_rv(study, phases)

    def rv_left(t: tuple[int, bool]) -> float:  # cosine between screen LV->RV and screen-left
        if vector is None:
            return 0.0
        right, up = _displayed_steps(*t)
        # screen coordinates of the LV->RV vector: project on the source steps of screen-right / screen-up
        x = vector[0] * right[0] + vector[1] * right[1]
        y = vector[0] * up[0] + vector[1] * up[1]
        return float(-x / max(np.hypot(x, y), 1e-9))

    if study.affine is None:
        k, flip = max(_DIHEDRAL[:4], key=rv_left)
        return k, flip, "RV on the left, rotation only without geometry"
    affine = np.asarray(study.affine, float)

    def world(step: tuple[int, int]) -> np.ndarray:  # affine columns: x = column, y = row
        v = step[1] * affine[:3, 0] + step[0] * affine[:3, 1]
        return np.asarray(v / max(float(np.linalg.norm(v)), 1e-9))

    def geometry(t: tuple[int, bool]) -> float:  # RAS+: patient left is -x, anterior +y
        right, up = _displayed_steps(*t)
        return float(-world(right)[0] + world(up)[1])

    candidates = [t for t in _DIHEDRAL if rv_left(t) >= 0.5] or _DIHEDRAL
    k, flip = max(candidates, key=geometry)
    return k, flip, "anterior up, patient's right on the left, from the image geometry"


#: Direction from base to apex of the LV long axis in RAS+ (towards the patient's left, anterior and
#: inferior); a short-axis stack's slice normal lies within about 50 degrees of it.
_APEX_DIRECTION_RAS = np.array([-1.0, 1.0, -1.0]) / np.sqrt(3.0)


def base_to_apex_order(study: CineStudy, phases: Sequence[int]) -> tuple[list[int], str]:
    """Order the slice indices from base to apex.

    With a known affine, slices are ordered along the anatomical base-to-apex direction (towards the
    patient's left, anterior and inferior); when the slice normal is too far from it (not a short-axis
    stack) or without geometry, the end of the labelled slices with the larger heart area (LV, MYO and RV
    in ``phases``) is taken as the base: the heart tapers towards the apex.

    Args:
        study: the study (labels for ``phases`` used by the fallback).
        phases: labelled phases.

    Returns:
        ``(order, how)``: the slice indices, base first, and the rule used.

    Example:
        >>> order, how = base_to_apex_order(study, [0])  # doctest: +SKIP

    """
    n = study.n_slices
    if study.affine is not None and n > 1:
        affine = np.asarray(study.affine, float)
        normal = affine[:3, 2] / max(float(np.linalg.norm(affine[:3, 2])), 1e-9)
        if abs(float(normal @ _APEX_DIRECTION_RAS)) >= 0.6:
            along = float(normal @ _APEX_DIRECTION_RAS)
            order = list(range(n)) if along > 0 else list(range(n - 1, -1, -1))
            return order, "image geometry"
    area = np.zeros(n)
    for p in phases:
        area += (np.asarray(study.labels[p]) > 0).reshape(n, -1).sum(axis=1)
    labelled = np.nonzero(area)[0]
    if labelled.size < 2:
        return list(range(n)), "stored order, no labelled extent to orient"
    first, last = labelled[0], labelled[-1]
    mid = (first + last) / 2
    z = np.arange(n)
    basal_first = area[z < mid].sum() >= area[z > mid].sum()
    order = list(range(n)) if basal_first else list(range(n - 1, -1, -1))
    return order, "heart area, larger at the base"


def slice_positions(study: CineStudy) -> list[float] | None:
    """Return the position of each slice along the slice normal in mm (from DICOM, else the affine).

    Args:
        study: the study.

    Returns:
        One position per slice, or ``None`` when the geometry is unknown.

    Example:
        >>> slice_positions(study)[:2]  # doctest: +SKIP
        [-12.5, -2.5]

    """
    if study.slice_positions_mm is not None:
        return [float(v) for v in study.slice_positions_mm]
    if study.affine is None or study.spacing_mm is None:
        return None
    affine = np.asarray(study.affine, float)
    normal = affine[:3, 2] / max(float(np.linalg.norm(affine[:3, 2])), 1e-9)
    return [float((affine[:3, 3] + z * affine[:3, 2]) @ normal) for z in range(study.n_slices)]


#: Montage resolution (dots per inch), white gap between panels and title strip above each (pixels).
_DPI = 110
_GAP_PX = 6
_TITLE_PX = 16


def _outline(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise the 0.5 iso-line of the bilinearly upsampled mask, a band about 2 pixels wide.

    Matplotlib's ``contour(mask, levels=[0.5])`` draws the same line (marching squares on the bilinear
    interpolation), as vectors; here it is rasterised directly at the panel's resolution.
    """
    import torch
    import torch.nn.functional as F

    m = torch.from_numpy(mask.astype(np.float32))[None, None]
    up = F.interpolate(m, size=shape, mode="bilinear", align_corners=False) > 0.5
    upf = up.float()
    dilated = F.max_pool2d(upf, 3, stride=1, padding=1) > 0.5
    eroded = -F.max_pool2d(-upf, 3, stride=1, padding=1) > 0.5
    return (dilated & ~eroded)[0, 0].numpy()


def _panel_rgb(img: np.ndarray, lab: np.ndarray, side: int) -> np.ndarray:
    """Draw one montage panel: the image (1st-99.5th percentile window) and label outlines, RGB in [0, 1].

    The panel keeps the crop's aspect ratio, its longer side ``side`` pixels, with a thin dark frame.
    """
    import torch
    import torch.nn.functional as F

    h, w = img.shape
    shape = (max(1, round(side * h / max(h, w))), max(1, round(side * w / max(h, w))))
    lo, hi = np.percentile(img, [1, 99.5])
    hi = hi if hi > lo else lo + 1
    grey = torch.from_numpy(np.clip((img - lo) / (hi - lo), 0, 1).astype(np.float32))[None, None]
    grey_up = F.interpolate(grey, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()
    panel = np.repeat(grey_up[..., None], 3, axis=2)
    # myocardium as its epicardial outline (LV + MYO region), then LV and RV on top
    regions = {
        CardiacLabel.MYO: (lab == CardiacLabel.MYO) | (lab == CardiacLabel.LV),
        CardiacLabel.LV: lab == CardiacLabel.LV,
        CardiacLabel.RV: lab == CardiacLabel.RV,
    }
    for value, region in regions.items():
        if (lab == value).any():
            colour = np.array([int(LABEL_COLOURS[value][i : i + 2], 16) / 255 for i in (1, 3, 5)], np.float32)
            panel[_outline(region, shape)] = colour
    panel[[0, -1], :] = 0.0
    panel[:, [0, -1]] = 0.0
    return panel


def plot_overlay(
    study: CineStudy,
    path: PathLike,
    phases: Sequence[int] | None = None,
    slices: Sequence[int] | None = None,
    title: str = "",
    overwrite: bool = False,
    max_slices: int = 8,
    footer: str = "",
    rv_left: bool = False,
    base_to_apex: bool = False,
    max_columns: int = 8,
) -> Path:
    """Save a montage of label contours over the image: one row per phase, one column per slice.

    Args:
        study: a study with labels.
        path: output PNG.
        phases: rows (default: ED and ES when known, else the labelled phases).
        slices: columns (default: annotated slices of the first phase, at most ``max_slices`` spread
            evenly).
        title: figure title.
        overwrite: allow replacing an existing file.
        max_slices: cap on the default number of columns.
        footer: small grey text along the bottom edge, wrapped to the figure width (e.g. the model
            identity: package version, bundle, weight hashes, TTA); ``""``: none.
        rv_left: show every panel in the standard short-axis orientation, anterior up and the RV on the
            viewer's left (:func:`display_transform`: from the image geometry when known, else rotated to
            put the RV left); the title says how the panels were turned.
        base_to_apex: order the columns from base to apex (:func:`base_to_apex_order`) and name the
            basal and apical ends.
        max_columns: panels per row; a phase with more slices wraps onto rows of equal length (12 slices:
            two rows of 6 per phase).

    Returns:
        The written path.

    Raises:
        ValueError: a requested phase without labels.
        FileExistsError: when the file exists and ``overwrite`` is False.

    Example:
        >>> plot_overlay(study, "overlay.png")  # doctest: +SKIP

    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if phases is None:
        known = [p for p in (study.ed_phase, study.es_phase) if p is not None and p in study.labels]
        phases = known or sorted(study.labels)
    for p in phases:
        if p not in study.labels:
            raise ValueError(f"phase {p} has no labels (labelled: {sorted(study.labels)})")
    if slices is None:
        cand = list(study.annotated_slices.get(phases[0], range(study.n_slices)))
        cand = [z for z in cand if study.labels[phases[0]][z].any()] or cand
        idx = np.linspace(0, len(cand) - 1, min(max_slices, len(cand))).round().astype(int)
        slices = [cand[i] for i in sorted(set(idx.tolist()))]
    rs, cs = _heart_box(study, phases)
    k, mirror, how = display_transform(study, phases) if rv_left else (0, False, "")
    order_how = ""
    if base_to_apex:
        order, order_how = base_to_apex_order(study, phases)
        rank = {z: i for i, z in enumerate(order)}
        slices = sorted(slices, key=lambda z: rank[z])
    positions = slice_positions(study)
    # more slices than max_columns: each phase wraps onto several rows of equal length (readable panels)
    rows_per_phase = -(-len(slices) // max_columns)
    ncols = -(-len(slices) // rows_per_phase)
    nrows = rows_per_phase * len(phases)
    fig = Figure(figsize=(2.2 * ncols, 2.6 * nrows + 0.6))
    FigureCanvasAgg(fig)
    foot = _add_footer(fig, footer)
    height = fig.get_figheight()
    # one image for all panels, drawn pixel for pixel into one axes (fixed margins, in inches): a figure
    # of 24 axes with 72 contour plots took about 1.2 s, this about 0.2 s
    bottom, top = (0.32 + foot) / height, 1 - 0.42 / height
    ax = fig.add_axes((0.01, bottom, 0.98, top - bottom))
    ax.set_axis_off()
    width_px = round(0.98 * fig.get_figwidth() * _DPI)
    height_px = round((top - bottom) * height * _DPI)
    cell_w, cell_h = width_px / ncols, height_px / nrows
    side = int(min(cell_w - _GAP_PX, cell_h - _TITLE_PX - _GAP_PX))
    mosaic = np.ones((height_px, width_px, 3), np.float32)
    for r, p in enumerate(phases):
        name = "ED" if p == study.ed_phase else "ES" if p == study.es_phase else f"phase {p}"
        for c, z in enumerate(slices):
            row, col = r * rows_per_phase + c // ncols, c % ncols
            img = study.image[p, z][rs, cs]
            lab = study.labels[p][z][rs, cs]
            if k or mirror:
                img, lab = _apply(img, k, mirror), _apply(lab, k, mirror)
            panel = _panel_rgb(np.asarray(img, np.float32), np.asarray(lab), side)
            y0 = int(row * cell_h + _TITLE_PX)
            x0 = int(col * cell_w + (cell_w - panel.shape[1]) / 2)
            mosaic[y0 : y0 + panel.shape[0], x0 : x0 + panel.shape[1]] = panel
            pos = "" if positions is None else f" ({positions[z]:.0f} mm)"
            end = ""
            if base_to_apex and len(slices) > 1 and c in (0, len(slices) - 1):
                end = "base: " if c == 0 else "apex: "
            ax.text(
                x0 + panel.shape[1] / 2,
                y0 - 3,
                f"{end}{name} slice {z}{pos}",
                ha="center",
                va="bottom",
                fontsize=7,
            )
    rgb = (mosaic * 255 + 0.5).astype(np.uint8)  # what Agg draws: no float conversion pass at save time
    ax.imshow(rgb, interpolation="none", extent=(0, width_px, height_px, 0))
    ax.set_xlim(0, width_px)
    ax.set_ylim(height_px, 0)
    handles = [Line2D([0], [0], color=c, lw=2, label=CardiacLabel(v).name) for v, c in LABEL_COLOURS.items()]
    fig.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, foot / height),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    turned = []
    if k or mirror:
        turned.append(
            f"{'rotated ' + str(90 * k) + ' deg' if k else ''}{', ' if k and mirror else ''}"
            f"{'mirrored left-right' if mirror else ''} for display: {how}"
        )
    if order_how:
        turned.append(f"base to apex by {order_how}")
    if title or turned:
        fig.suptitle(title + (f"  ({'; '.join(turned)})" if turned else ""), fontsize=9)
    return atomic_write(
        path, lambda tmp: fig.savefig(tmp, dpi=_DPI, format="png", pil_kwargs=_PNG), overwrite=overwrite
    )


def plot_volume_curve(
    indices: CardiacIndices,
    path: PathLike,
    phase_times_ms: Sequence[float] | None = None,
    title: str = "",
    overwrite: bool = False,
    footer: str = "",
) -> Path:
    """Save the LV and RV volume over the cardiac cycle, with ED and ES marked.

    Args:
        indices: indices with ``per_phase`` volumes of every phase.
        path: output PNG.
        phase_times_ms: trigger time of each phase (x axis in ms), else the phase index is used.
        title: figure title.
        overwrite: allow replacing an existing file.
        footer: small grey text along the bottom edge (e.g. the model identity); ``""``: none.

    Returns:
        The written path.

    Raises:
        ValueError: fewer than two phases.
        FileExistsError: when the file exists and ``overwrite`` is False.

    Example:
        >>> plot_volume_curve(indices, "volumes.png")  # doctest: +SKIP

    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = list(indices.per_phase)
    if len(rows) < 2:
        raise ValueError(f"a volume curve needs at least two phases, got {len(rows)}")
    mls = indices.volumes_available
    unit = "mL" if mls else "voxels"

    def series(name: str) -> list[float]:
        return [
            float((getattr(r, f"{name}_ml") if mls else getattr(r, f"{name}_voxels")) or 0.0) for r in rows
        ]

    x = [phase_times_ms[r.phase] if phase_times_ms is not None else r.phase for r in rows]
    fig = Figure(figsize=(6, 3.6))  # no pyplot: no global figure state (safe in threads), less to import
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    foot = _add_footer(fig, footer)
    ax.plot(x, series("lv"), "-o", ms=3, color=LABEL_COLOURS[CardiacLabel.LV], label="LV blood pool")
    if any(r.rv_voxels for r in rows):
        ax.plot(x, series("rv"), "-o", ms=3, color=LABEL_COLOURS[CardiacLabel.RV], label="RV blood pool")
    marks = [
        (indices.ed_phase, "ED"),
        (indices.es_phase, "ES" if indices.rv_es_phase == indices.es_phase else "LV ES"),
    ]
    if indices.rv_es_phase != indices.es_phase:
        marks.append((indices.rv_es_phase, "RV ES"))
    by_phase = {r.phase: i for i, r in enumerate(rows)}
    for t, name in marks:
        xt = phase_times_ms[t] if phase_times_ms is not None else t
        ax.axvline(xt, color="0.4" if name != "RV ES" else LABEL_COLOURS[CardiacLabel.RV], ls="--", lw=0.8)
        low = name == "RV ES"  # at the bottom, beside the RV curve, so that it never covers "LV ES"
        ax.text(xt, ax.get_ylim()[0 if low else 1], f" {name}", va="bottom" if low else "top", fontsize=8)
    # EDV and ESV as filled points on the curves (the LV's at ED and LV ES, the RV's at ED and RV ES)
    lv, rv = series("lv"), series("rv")
    for t in (indices.ed_phase, indices.es_phase):
        ax.plot(x[by_phase[t]], lv[by_phase[t]], "o", ms=7, mfc="none", mec=LABEL_COLOURS[CardiacLabel.LV])
    if any(r.rv_voxels for r in rows):
        for t in (indices.ed_phase, indices.rv_es_phase):
            ax.plot(
                x[by_phase[t]], rv[by_phase[t]], "o", ms=7, mfc="none", mec=LABEL_COLOURS[CardiacLabel.RV]
            )
    ax.set_xlabel("trigger time (ms)" if phase_times_ms is not None else "phase")
    ax.set_ylabel(f"volume ({unit})")
    ef = indices.lv_ef_percent
    ax.set_title(title + ("" if ef is None else f"  LV EF {ef:.1f} %"), fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0.0, foot / fig.get_figheight(), 1.0, 1.0))
    out = atomic_write(
        path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", pil_kwargs=_PNG), overwrite=overwrite
    )
    return out


def plot_bland_altman(
    pairs: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: PathLike,
    units: Mapping[str, str] | None = None,
    title: str = "",
    overwrite: bool = False,
) -> Path:
    """Save Bland–Altman plots (difference vs mean, bias and 95 % limits of agreement), one panel per index.

    The limits of agreement (bias ± 1.96 SD of the differences) are drawn only from 10 studies on: with
    fewer, the SD is too uncertain to mean anything (the title says so). A difference of percentages (an
    index in ``%``) is labelled in percentage points.

    Args:
        pairs: ``{index name: (predicted values, reference values)}``, e.g. ``{"EF": (pred, ref)}``.
        path: output PNG.
        units: unit of each index for the axis labels.
        title: figure title.
        overwrite: allow replacing an existing file.

    Returns:
        The written path.

    Raises:
        ValueError: no pairs, or lengths differ.
        FileExistsError: when the file exists and ``overwrite`` is False.

    Example:
        >>> plot_bland_altman({"EF": ([50, 60], [52, 57])}, "ba.png")  # doctest: +SKIP

    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not pairs:
        raise ValueError("no indices to plot")
    units = units or {}
    fig = Figure(figsize=(4.2 * len(pairs), 3.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(pairs), squeeze=False)
    for ax, (name, (pred, ref)) in zip(axes[0], pairs.items(), strict=True):
        p, r = np.asarray(pred, float), np.asarray(ref, float)
        if p.shape != r.shape:
            raise ValueError(f"{name}: {p.size} predicted vs {r.size} reference values")
        mean, diff = (p + r) / 2, p - r
        bias = float(diff.mean()) if diff.size else float("nan")
        sd = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
        ax.scatter(mean, diff, s=18, color="#3060c0")
        ax.axhline(bias, color="k", lw=1)
        for lim in (bias - 1.96 * sd, bias + 1.96 * sd) if diff.size >= 10 else ():
            ax.axhline(lim, color="k", lw=0.8, ls="--")
        u = f" ({units[name]})" if name in units else ""
        # a difference of percentages is in percentage points
        du = " (percentage points)" if units.get(name) == "%" else u
        ax.set_xlabel(f"mean of model and reference {name}{u}")
        ax.set_ylabel(f"model - reference {name}{du}")
        loa = f"LoA ±{1.96 * sd:.1f}" if diff.size >= 10 else "too few studies for limits of agreement"
        ax.set_title(f"{name}: bias {bias:+.1f}, {loa} (n={diff.size})", fontsize=9)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = atomic_write(
        path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", pil_kwargs=_PNG), overwrite=overwrite
    )
    return out
