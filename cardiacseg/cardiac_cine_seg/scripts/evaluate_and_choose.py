"""Evaluate weights on the bundle's ACDC validation split and Sunnybrook, and choose post-processing.

Usage (from the repository root):
    python bundles/cardiac_cine_seg/scripts/evaluate_and_choose.py \
        --weights bundles/cardiac_cine_seg/models/model.pt --tta flip --output bundles/cardiac_cine_seg/eval

1. predicts ED and ES of the 15 validation patients (seed 0, 20 %; never used for training) without
   post-processing and runs cardiacseg.postprocess.select_postprocessing (nnU-Net style), printing the
   effect of every step alone;
2. writes the choice to <output>/postprocessing.json (copy it to configs/ to ship it) and
3. evaluates with it (cardiacseg.workflows.bundle_evaluation.write_evaluation, the rows of
   `cardiacseg evaluate`): per-patient ACDC 3D Dice and EF error, Sunnybrook end to end from DICOM
   (<output>/acdc/, <output>/sunnybrook/, <output>/evaluation.md and evaluation.json).

Existing outputs are not replaced unless --overwrite is given.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cardiacseg.data.datalist import split_patients
from cardiacseg.enums import STRUCTURES
from cardiacseg.inferers import SlicePredictor
from cardiacseg.io import list_ssl4mis_patients
from cardiacseg.postprocess import PostProcessor
from cardiacseg.utils.atomic import atomic_write_text, check_writable
from cardiacseg.workflows.bundle_evaluation import (
    check_evaluation_outputs,
    choose_postprocessing,
    write_evaluation,
)

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def main() -> None:
    """Parse the arguments, choose post-processing, evaluate, print the tables."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--weights", nargs="+", required=True, help="state-dict file(s); several: ensemble")
    parser.add_argument("--network", default="unet")
    parser.add_argument("--tta", default="flip", choices=["none", "flip", "flip_rot90"])
    parser.add_argument("--crop-size", type=int, default=160)
    parser.add_argument("--output", required=True)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--overwrite", action="store_true", help="replace outputs of an earlier run")
    args = parser.parse_args()
    out = Path(args.output)
    choice_files = [out / "postprocessing.json", out / "postprocessing_effects.json"]
    for path in choice_files:  # refuse before predicting anything
        check_writable(path, args.overwrite)
    check_evaluation_outputs(out, args.overwrite)
    acdc, sunnybrook = Path(args.data) / "acdc_ssl4mis", Path(args.data) / "sunnybrook"
    _, val = split_patients(list_ssl4mis_patients(acdc), 0.2, 0)
    predictor = SlicePredictor.from_checkpoint(
        args.weights, args.network, tta=args.tta, crop_size=args.crop_size
    )
    t0 = time.time()
    choice, alone = choose_postprocessing(predictor, acdc, val)
    choice.save(choice_files[0], overwrite=args.overwrite)
    print(f"chosen steps: {choice.steps} ({time.time() - t0:.0f} s)")
    print("mean 3D Dice over ED+ES of the validation patients, each step alone:")
    for step, dice in alone.items():
        print(f"  {step:15s} " + "  ".join(f"{k} {v:.4f}" for k, v in dice.items()))
    atomic_write_text(choice_files[1], json.dumps(alone, indent=2) + "\n", args.overwrite)
    predictor.postprocess = PostProcessor(choice.steps)
    sunnybrook_patients = {"SCD0000101": "SC-HF-I-1", "SCD0000201": "SC-HF-I-2"}
    res = write_evaluation(predictor, acdc, val, sunnybrook, sunnybrook_patients, out, args.overwrite)
    print((out / "evaluation.md").read_text())
    s = res["acdc"]["summary"]
    means = "  ".join(f"{c.name} {s['metrics']['all'][f'dice_{c.key}']['mean']:.4f}" for c in STRUCTURES)
    print(f"ACDC means (ED+ES): {means}  |EF err| {s['indices']['lv_ef_percent']['mean_abs_error']:.2f}")


if __name__ == "__main__":
    main()
