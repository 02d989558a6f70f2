"""Pictures a person looks at: label overlays, volume curves and Bland–Altman plots.

Overlays and volume curves take an optional ``footer``: one small grey text line along the bottom edge
(wrapped to the figure width), e.g. the model identity that produced the labels.
"""

from __future__ import annotations

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

__all__ = ["FOOTER_GID", "LABEL_COLOURS", "plot_bland_altman", "plot_overlay", "plot_volume_curve"]

#: PNG encoder settings: fast zlib level (files about 1.3x larger, written about 4x faster).
_PNG = {"compress_level": 1}

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


def _rv_right_of_lv(study: CineStudy, phases: Sequence[int]) -> bool:
    """Whether the RV's mean column lies right of the LV's in the labelled phases (image columns)."""
    lv_cols: list[np.ndarray] = []
    rv_cols: list[np.ndarray] = []
    for p in phases:
        lab = np.asarray(study.labels[p])
        lv_cols.append(np.nonzero(lab == CardiacLabel.LV)[2])
        rv_cols.append(np.nonzero(lab == CardiacLabel.RV)[2])
    lv, rv = np.concatenate(lv_cols), np.concatenate(rv_cols)
    return bool(lv.size and rv.size and rv.mean() > lv.mean())


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
        rv_left: show every panel mirrored left-right when the RV lies right of the LV (the usual
            short-axis display puts the RV on the viewer's left); the title says so when it happens.

    Returns:
        The written path.

    Raises:
        ValueError: a requested phase without labels.
        FileExistsError: when the file exists and ``overwrite`` is False.

    Example:
        >>> plot_overlay(study, "overlay.png")  # doctest: +SKIP

    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
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
    mirror = rv_left and _rv_right_of_lv(study, phases)
    fig, axes = plt.subplots(
        len(phases), len(slices), figsize=(2.2 * len(slices), 2.6 * len(phases) + 0.6), squeeze=False
    )
    foot = _add_footer(fig, footer)
    height = fig.get_figheight()
    for r, p in enumerate(phases):
        name = "ED" if p == study.ed_phase else "ES" if p == study.es_phase else f"phase {p}"
        for c, z in enumerate(slices):
            ax = axes[r][c]
            img = study.image[p, z][rs, cs]
            lab = study.labels[p][z][rs, cs]
            if mirror:
                img, lab = img[:, ::-1], lab[:, ::-1]
            lo, hi = np.percentile(img, [1, 99.5])
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
            # Myocardium as its epicardial outline (LV + MYO region), then LV and RV on top.
            regions = {
                CardiacLabel.MYO: (lab == CardiacLabel.MYO) | (lab == CardiacLabel.LV),
                CardiacLabel.LV: lab == CardiacLabel.LV,
                CardiacLabel.RV: lab == CardiacLabel.RV,
            }
            for value, region in regions.items():
                if (lab == value).any():
                    ax.contour(region, levels=[0.5], colors=LABEL_COLOURS[value], linewidths=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            pos = "" if study.slice_positions_mm is None else f" ({study.slice_positions_mm[z]:.0f} mm)"
            ax.set_title(f"{name} slice {z}{pos}", fontsize=7)
    handles = [Line2D([0], [0], color=c, lw=2, label=CardiacLabel(v).name) for v, c in LABEL_COLOURS.items()]
    fig.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, foot / height),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    if title or mirror:
        fig.suptitle(title + ("  (mirrored left-right: RV on the left)" if mirror else ""), fontsize=10)
    # fixed margins (in inches): tight_layout costs ~0.1 s per figure
    fig.subplots_adjust(
        left=0.01, right=0.99, bottom=(0.32 + foot) / height, top=1 - 0.42 / height, wspace=0.04, hspace=0.12
    )
    out = atomic_write(
        path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", pil_kwargs=_PNG), overwrite=overwrite
    )
    plt.close(fig)
    return out


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig, ax = plt.subplots(figsize=(6, 3.6))
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
    plt.close(fig)
    return out


def plot_bland_altman(
    pairs: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: PathLike,
    units: Mapping[str, str] | None = None,
    title: str = "",
    overwrite: bool = False,
) -> Path:
    """Save Bland–Altman plots (difference vs mean, bias and 95 % limits of agreement), one panel per index.

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not pairs:
        raise ValueError("no indices to plot")
    units = units or {}
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.8), squeeze=False)
    for ax, (name, (pred, ref)) in zip(axes[0], pairs.items(), strict=True):
        p, r = np.asarray(pred, float), np.asarray(ref, float)
        if p.shape != r.shape:
            raise ValueError(f"{name}: {p.size} predicted vs {r.size} reference values")
        mean, diff = (p + r) / 2, p - r
        bias = float(diff.mean()) if diff.size else float("nan")
        sd = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
        ax.scatter(mean, diff, s=18, color="#3060c0")
        ax.axhline(bias, color="k", lw=1)
        for lim in (bias - 1.96 * sd, bias + 1.96 * sd):
            ax.axhline(lim, color="k", lw=0.8, ls="--")
        u = f" ({units[name]})" if name in units else ""
        ax.set_xlabel(f"mean of model and reference {name}{u}")
        ax.set_ylabel(f"model - reference {name}{u}")
        ax.set_title(f"{name}: bias {bias:+.1f}, LoA ±{1.96 * sd:.1f} (n={diff.size})", fontsize=9)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = atomic_write(
        path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", pil_kwargs=_PNG), overwrite=overwrite
    )
    plt.close(fig)
    return out
