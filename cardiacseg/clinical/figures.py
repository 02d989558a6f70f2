"""Pictures a person looks at: label overlays on real images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cardiacseg.enums import CardiacLabel
from cardiacseg.io.atomic import atomic_write
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import PathLike

__all__ = ["LABEL_COLOURS", "plot_overlay"]

#: Contour colour of each structure.
LABEL_COLOURS = {CardiacLabel.LV: "#ff3030", CardiacLabel.MYO: "#30ff30", CardiacLabel.RV: "#3080ff"}


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


def plot_overlay(
    study: CineStudy,
    path: PathLike,
    phases: Sequence[int] | None = None,
    slices: Sequence[int] | None = None,
    title: str = "",
    overwrite: bool = False,
    max_slices: int = 8,
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
    fig, axes = plt.subplots(
        len(phases), len(slices), figsize=(2.2 * len(slices), 2.6 * len(phases) + 0.6), squeeze=False
    )
    for r, p in enumerate(phases):
        name = "ED" if p == study.ed_phase else "ES" if p == study.es_phase else f"phase {p}"
        for c, z in enumerate(slices):
            ax = axes[r][c]
            img = study.image[p, z][rs, cs]
            lo, hi = np.percentile(img, [1, 99.5])
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
            lab = study.labels[p][z][rs, cs]
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
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95), h_pad=1.5)
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), overwrite=overwrite)
    plt.close(fig)
    return out
