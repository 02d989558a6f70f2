"""Make the before/after pictures of every transform and preset from real data (docs/images/transforms/).

Usage: python docs/scripts/make_transform_figures.py [SHARED_DATA]   (default ../shared/data)
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from cardiacseg.io import read_ssl4mis_study, read_sunnybrook_study
from cardiacseg.transforms import (
    CLAHE,
    HeartCrop,
    InPlaneSpacing,
    N4BiasFieldCorrection,
    NormalizeSAXOrientation,
    PercentileNormalize,
    RandLighting,
    RandRespiratoryMotion,
    RandSliceMisalignmentd,
    label_to_metatensor,
    slice_to_metatensor,
    study_to_metatensor,
)
from cardiacseg.transforms.presets import PRESETS

OUT = Path(__file__).resolve().parents[1] / "images" / "transforms"
COLOURS = {1: "#ff3030", 2: "#30ff30", 3: "#3080ff"}


def show(ax, img_xy, lab_xy=None, title=""):  # type: ignore[no-untyped-def]
    arr = np.asarray(img_xy).T
    lo, hi = np.percentile(arr, [0.5, 99.5])
    ax.imshow(arr, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
    if lab_xy is not None:
        lab = np.round(np.asarray(lab_xy)).T
        for v, c in COLOURS.items():
            if (lab == v).any():
                ax.contour(lab == v, levels=[0.5], colors=c, linewidths=0.8)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def save(fig, name: str) -> None:  # type: ignore[no-untyped-def]
    fig.tight_layout()
    fig.savefig(OUT / f"{name}.png", dpi=90)
    plt.close(fig)
    print("wrote", OUT / f"{name}.png")


def main(shared: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    acdc = read_ssl4mis_study(shared / "acdc_ssl4mis", "patient001")
    z = 5
    img, lab = slice_to_metatensor(acdc.image[0, z]), slice_to_metatensor(acdc.labels[0][z])
    raw = slice_to_metatensor(acdc.image[0, z] * 800.0)

    fig, ax = plt.subplots(1, 3, figsize=(9, 3.4))
    show(ax[0], raw[0], title="ACDC patient001 ED, slice 5")
    show(ax[1], CLAHE(clip_limit=0.01)(raw)[0], title="CLAHE clip 0.01")
    show(ax[2], CLAHE(clip_limit=0.03, kernel_size=32)(raw)[0], title="CLAHE clip 0.03, tiles 32 px")
    save(fig, "clahe")

    fig, ax = plt.subplots(1, 3, figsize=(10, 3.4))
    norm = PercentileNormalize(mode="zscore")(raw)
    show(ax[0], raw[0], title="input (a.u.)")
    show(ax[1], norm[0], title="0.5-99.5 % clip + z-score")
    ax[2].hist(np.asarray(raw).ravel() / 800, 100, alpha=0.6, label="input / 800")
    ax[2].hist(np.asarray(norm).ravel() / 8, 100, alpha=0.6, label="z-score / 8")
    ax[2].legend(fontsize=7)
    ax[2].set_title("histograms", fontsize=8)
    save(fig, "percentile_normalize")

    xx, yy = np.meshgrid(
        np.linspace(-0.5, 0.5, raw.shape[1]), np.linspace(-0.5, 0.5, raw.shape[2]), indexing="ij"
    )
    biased = raw * np.exp(0.6 * xx + 0.4 * yy).astype(np.float32)
    fig, ax = plt.subplots(1, 3, figsize=(9, 3.4))
    show(ax[0], raw[0], title="ACDC slice")
    show(ax[1], biased[0], title="with a synthetic bias field")
    show(ax[2], N4BiasFieldCorrection()(biased)[0], title="after N4 (ITK)")
    save(fig, "n4")

    sb = read_sunnybrook_study(
        shared / "sunnybrook" / "dicoms" / "SCD0000101", shared / "sunnybrook" / "contourfiles" / "SC-HF-I-1"
    )
    assert sb.ed_phase is not None
    sb_img, sb_lab = study_to_metatensor(sb, [sb.ed_phase]), label_to_metatensor(sb, sb.ed_phase)
    fig, ax = plt.subplots(1, 3, figsize=(10, 3.6))
    zz = 6
    show(
        ax[0],
        sb_img[0, :, :, zz],
        sb_lab[0, :, :, zz],
        title=f"Sunnybrook 1.37 mm {tuple(sb_img.shape[1:3])}",
    )
    for a, mm in zip(ax[1:], (1.0, 2.0), strict=True):
        r_img = InPlaneSpacing(mm)(sb_img)
        r_lab = InPlaneSpacing(mm, mode="nearest")(sb_lab)
        show(
            a,
            r_img[0, :, :, zz],
            r_lab[0, :, :, zz],
            title=f"{mm} mm {tuple(r_img.shape[1:3])} (spline / nearest)",
        )
    save(fig, "inplane_spacing")

    full = study_to_metatensor(acdc)
    crop = HeartCrop((128, 128))
    cropped = crop(full)
    cx, cy = cropped.meta["heart_crop_centre"]
    fig, ax = plt.subplots(1, 3, figsize=(10, 3.6))
    show(
        ax[0],
        full[0, :, :, z],
        label_to_metatensor(acdc, 0)[0, :, :, z],
        title="ACDC ED, label-free localisation",
    )
    ax[0].add_patch(Rectangle((cx - 64, cy - 64), 128, 128, fill=False, color="yellow", lw=1.5))
    show(
        ax[1],
        cropped[0, :, :, z],
        crop(label_to_metatensor(acdc, 0), centre=(cx, cy))[0, :, :, z],
        title="crop ED",
    )
    show(
        ax[2],
        cropped[1, :, :, z],
        crop(label_to_metatensor(acdc, 1), centre=(cx, cy))[0, :, :, z],
        title="crop ES",
    )
    save(fig, "heart_crop")

    sb_all = study_to_metatensor(sb)
    ori = NormalizeSAXOrientation()
    o_img, o_lab = ori(sb_img), ori(sb_lab)
    fig, ax = plt.subplots(2, 4, figsize=(10, 5.4))
    nz = sb_img.shape[3]
    for i, k in enumerate(np.linspace(1, nz - 2, 4).round().astype(int)):
        show(ax[0, i], sb_img[0, :, :, k], sb_lab[0, :, :, k], title=f"as read, slice {k}")
        show(ax[1, i], o_img[0, :, :, k], o_lab[0, :, :, k], title=f"normalised, slice {k}")
    fig.suptitle(f"SAX orientation: {o_img.meta['sax_orientation']}", fontsize=8)
    save(fig, "sax_orientation")
    del sb_all

    fig, ax = plt.subplots(1, 4, figsize=(12, 3.4))
    for a, amp in zip(ax, (0.0, 4.0, 8.0, 12.0), strict=True):
        t = RandRespiratoryMotion(
            prob=1.0, amplitude_px=(amp, amp), corrupted_fraction=(0.3, 0.3), phase_encode_axis=1
        )
        t.set_random_state(3)
        show(a, t(img)[0], title=f"respiratory motion, amplitude {amp:.0f} px")
    save(fig, "respiratory_motion")

    stack_img = study_to_metatensor(acdc, [0])
    stack_lab = label_to_metatensor(acdc, 0)
    mis = RandSliceMisalignmentd(("image", "label"), prob=1.0, max_shift_px=8, slice_prob=0.7)
    mis.set_random_state(2)
    moved = mis({"image": stack_img, "label": stack_lab})
    y = int(np.nonzero(np.asarray(stack_lab[0]).any(axis=(0, 2)))[0].mean())
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    for a, d, title in (
        (ax[0], {"image": stack_img, "label": stack_lab}, "stack, long-axis reformat"),
        (ax[1], moved, "after slice misalignment (same shifts for label)"),
    ):
        a.imshow(np.repeat(np.asarray(d["image"][0, :, y, :]).T, 6, axis=0), cmap="gray")
        a.contour(
            np.repeat(np.asarray(d["label"][0, :, y, :]).T, 6, axis=0) > 0,
            levels=[0.5],
            colors="r",
            linewidths=0.8,
        )
        a.set_title(title, fontsize=8)
        a.set_xticks([])
        a.set_yticks([])
    save(fig, "slice_misalignment")

    fig, ax = plt.subplots(1, 4, figsize=(12, 3.4))
    show(ax[0], img[0], title="input in [0, 1]")
    for i, a in enumerate(ax[1:]):
        t = RandLighting(0.4, prob=1.0)
        t.set_random_state(i)
        out = t(img)
        show(a, out[0], title=f"lighting b={t.brightness:.2f} c={t.contrast:.2f}")
    save(fig, "lighting")

    for name, preset in PRESETS.items():
        fig, ax = plt.subplots(1, 6, figsize=(15, 3.0))
        show(ax[0], img[0], lab[0], title="input")
        t = preset()
        t.set_random_state(0)
        for i, a in enumerate(ax[1:]):
            out = t({"image": img.clone(), "label": lab.clone()})
            show(a, out["image"][0], out["label"][0], title=f"{name} draw {i + 1}")
        save(fig, f"preset_{name}")


if __name__ == "__main__":
    main(
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    )
