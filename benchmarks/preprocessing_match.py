"""Shipped weights, inference z-score inside the heart crop vs over the whole slice (as in training).

Training (``cardiacseg.engines.train_transforms``/``val_transforms``) z-scores every 2D slice over the
whole slice and then crops the heart; ``SlicePredictor`` used to crop first and z-score inside the crop.
This script measures, with the shipped bundle and its defaults (``SlicePredictor.from_bundle``: TTA,
fallback crop and post-processing of ``configs/``), both ways of computing the statistics, then both again
without post-processing (the shipped post-processing was chosen on these validation patients' predictions
with statistics inside the crop, which could favour that variant):

* ACDC: the bundle's 15 validation patients (``split_patients(..., 0.2, seed 0)``, never used for training,
  as in ``scripts/evaluate_and_choose.py`` and ``tests/bundles/test_shipped_model.py``), ED and ES, mean 3D
  Dice LV/MYO/RV over both phases and mean |EF error| (``cardiacseg.workflows.bundle_evaluation``);
* Sunnybrook SC-HF-I-1 and SC-HF-I-2 end to end from DICOM, LV Dice (ED/ES) and EF error vs the expert
  contours, contoured slices only.

Usage (from the repository root)::

    .venv/bin/python benchmarks/preprocessing_match.py            # writes docs/benchmarks/preprocessing_match.md
    .venv/bin/python benchmarks/preprocessing_match.py --regions crop --output -   # one variant, to stdout
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from cardiacseg.data.datalist import split_patients
from cardiacseg.demo import shipped_bundle_path
from cardiacseg.inferers import SlicePredictor
from cardiacseg.io import list_ssl4mis_patients
from cardiacseg.workflows.bundle_evaluation import evaluate_ssl4mis, evaluate_sunnybrook
from cardiacseg.workflows.evaluate import Comparison

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SUNNYBROOK = {"SCD0000101": "SC-HF-I-1", "SCD0000201": "SC-HF-I-2"}
LABELS = {
    "crop": "z-score inside the heart crop (default)",
    "slice": "z-score over the whole slice, then crop (as training)",
}


def _per_patient(c: Comparison) -> list[dict[str, Any]]:
    """This benchmark's per-patient rows (its JSON format) from the rows of cardiacseg.workflows.evaluate."""
    out = []
    for idx in c.indices:
        row: dict[str, Any] = {"patient": idx["study"]}
        for m in c.metrics:
            if m["study"] == idx["study"] and m["phase_name"]:
                for cls in ("lv", "myo", "rv"):
                    row[f"dice_{cls}_{m['phase_name'].lower()}"] = m[f"dice_{cls}"]
        row["ef_ref"], row["ef_pred"] = idx["lv_ef_percent_ref"], idx["lv_ef_percent_pred"]
        row["ef_error"] = idx["lv_ef_percent_error"]
        out.append(row)
    return out


def measure(region: str, data: Path, postprocess: bool = True) -> dict[str, Any]:
    """Evaluate the shipped bundle with the z-score statistics taken over ``region``."""
    kwargs: dict[str, Any] = {} if postprocess else {"postprocess": None}
    if "zscore_region" in inspect.signature(SlicePredictor.__init__).parameters:
        kwargs["zscore_region"] = region
    elif region != "crop":
        raise SystemExit(f"this SlicePredictor has no zscore_region option: cannot measure {region!r}")
    predictor = SlicePredictor.from_bundle(shipped_bundle_path(), **kwargs)
    acdc = data / "acdc_ssl4mis"
    _, val = split_patients(list_ssl4mis_patients(acdc), 0.2, 0)  # the bundle's validation split
    t0 = time.time()
    acdc_eval = evaluate_ssl4mis(predictor, acdc, val)
    rows, s = _per_patient(acdc_eval), acdc_eval.summary()
    sb = _per_patient(evaluate_sunnybrook(predictor, data / "sunnybrook", SUNNYBROOK))
    dice = {c: s["metrics"]["all"][f"dice_{c}"]["mean"] for c in ("lv", "myo", "rv")}  # over ED and ES
    return {
        "region": region,
        "postprocess": postprocess,
        "seconds": round(time.time() - t0, 1),
        "n_acdc": len(rows),
        "lv": dice["lv"],
        "myo": dice["myo"],
        "rv": dice["rv"],
        "ef_abs_error": s["indices"]["lv_ef_percent"]["mean_abs_error"],
        "acdc_rows": rows,
        "sunnybrook": [
            {k: r[k] for k in ("patient", "dice_lv_ed", "dice_lv_es", "ef_ref", "ef_pred", "ef_error")}
            for r in sb
        ],
    }


def table(results: list[dict[str, Any]]) -> str:
    """Markdown summary: one row per variant."""
    head = "| inference z-score | post-processing | ACDC LV | ACDC MYO | ACDC RV | ACDC mean \\|EF err\\| |"
    sep = "|---|---|---|---|---|---|"
    sb_names = [r["patient"] for r in results[0]["sunnybrook"]]
    for name in sb_names:
        head += f" {name} LV Dice ED / ES | {name} EF err |"
        sep += "---|---|"
    lines = [head, sep]
    for res in results:
        line = (
            f"| {LABELS.get(res['region'], res['region'])} | {'shipped' if res['postprocess'] else 'none'} | "
            f"{res['lv']:.4f} | {res['myo']:.4f} | "
            f"{res['rv']:.4f} | {res['ef_abs_error']:.2f} |"
        )
        for row in res["sunnybrook"]:
            line += f" {row['dice_lv_ed']:.3f} / {row['dice_lv_es']:.3f} | {row['ef_error']:+.2f} |"
        lines.append(line)
    return "\n".join(lines)


def per_patient(results: list[dict[str, Any]]) -> str:
    """Markdown: per-patient ACDC mean Dice (LV, MYO, RV over ED+ES) and EF error, per variant."""
    cols = " | ".join(f"{r['region']}: LV / MYO / RV, EF err" for r in results)
    lines = [f"| patient | {cols} |", "|---" * (len(results) + 1) + "|"]
    for i, row in enumerate(results[0]["acdc_rows"]):
        cells = []
        for res in results:
            r = res["acdc_rows"][i]
            d = [np.mean([r[f"dice_{c}_ed"], r[f"dice_{c}_es"]]) for c in ("lv", "myo", "rv")]
            cells.append(f"{d[0]:.3f} / {d[1]:.3f} / {d[2]:.3f}, {r['ef_error']:+.2f}")
        lines.append(f"| {row['patient']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(results: list[dict[str, Any]]) -> str:
    """The decision rule of issue 15 applied to the ACDC validation means with the shipped post-processing."""

    def means(pp: bool) -> dict[str, tuple[float, float]] | None:
        by = {r["region"]: r for r in results if r["postprocess"] == pp}
        if not {"crop", "slice"} <= set(by):
            return None
        return {
            k: (float(np.mean([r[c] for c in ("lv", "myo", "rv")])), r["ef_abs_error"]) for k, r in by.items()
        }

    shipped, raw = means(True), means(False)
    if shipped is None:
        return ""
    (dice_c, ef_c), (dice_s, ef_s) = shipped["crop"], shipped["slice"]
    as_good = dice_s >= dice_c and ef_s <= ef_c
    raw_same = (
        raw is not None
        and (raw["slice"][0] >= raw["crop"][0] and raw["slice"][1] <= raw["crop"][1]) == as_good
    )
    return (
        f"Mean of LV/MYO/RV Dice: crop {dice_c:.4f}, whole slice {dice_s:.4f}; mean |EF error|: crop "
        f"{ef_c:.2f}, whole slice {ef_s:.2f}. "
        + (
            "Matching the training pre-processing is at least as good: it is the inference default."
            if as_good
            else "Matching the training pre-processing at inference is not as good on these patients with "
            "the shipped weights (the shipped post-processing was chosen on predictions with the crop "
            "statistics; "
            + (
                "the rows without post-processing rank the same way"
                if raw_same
                else "see the rows without it"
            )
            + "), so `SlicePredictor` keeps "
            '`zscore_region="crop"` as its default and `"slice"` (the training pipeline\'s `SliceZScore`) is '
            "an option; making it the default needs weights retrained (or at least evaluated and "
            "post-processing chosen) with it."
        )
    )


def main() -> None:
    """Measure every requested variant and write the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--regions", nargs="+", default=["crop", "slice"], choices=sorted(LABELS))
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--output", default=str(REPO / "docs" / "benchmarks" / "preprocessing_match.md"))
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--shipped-postprocessing-only", action="store_true", help="skip the runs without")
    parser.add_argument("--from-json", default=None, help="render the report from saved --json results")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        args.regions = []
    runs = [(region, True) for region in args.regions]
    if not args.shipped_postprocessing_only and not args.from_json:
        runs += [(region, False) for region in args.regions]
    for region, postprocess in runs:
        res = measure(region, Path(args.data), postprocess)
        print(
            f"{region} (post-processing {postprocess}): LV {res['lv']:.4f} MYO {res['myo']:.4f} RV {res['rv']:.4f} "
            f"|EF err| {res['ef_abs_error']:.2f} ({res['seconds']} s)",
            flush=True,
        )
        results.append(res)
    bundle = json.loads((shipped_bundle_path() / "configs" / "inference.json").read_text())
    settings = {k: bundle.get(k) for k in ("target_spacing_mm", "crop_size", "crop_fallback_size", "tta")}
    report = "\n".join(
        [
            "# Inference pre-processing vs training pre-processing (shipped weights)",
            "",
            f"`python benchmarks/preprocessing_match.py` on {datetime.date.today()}, {platform.machine()}, "
            f"torch CPU. Shipped bundle with its defaults {settings}, with and without its post-processing "
            "(`configs/postprocessing.json`).",
            "",
            "ACDC: the bundle's 15 validation patients (seed 0, 20 %), mean 3D Dice over ED and ES, mean "
            "|EF error| in points. Sunnybrook: end to end from DICOM, contoured slices, vs expert contours.",
            "",
            table(results),
            "",
            verdict(results),
            "",
            "## ACDC per patient, shipped post-processing (mean Dice over ED and ES; EF error in points)",
            "",
            per_patient([r for r in results if r["postprocess"]]),
            "",
        ]
    )
    if args.output == "-":
        print(report)
    else:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(report)
        print(f"wrote {args.output}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
