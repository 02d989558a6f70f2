"""Evaluate weights on the bundle's ACDC validation split and Sunnybrook, and choose post-processing.

Usage (from the repository root):
    python bundles/cardiac_cine_seg/scripts/evaluate_and_choose.py \
        --weights bundles/cardiac_cine_seg/models/model.pt --tta flip --output bundles/cardiac_cine_seg/eval

1. predicts ED and ES of the 15 validation patients (seed 0, 20 %; never used for training) without
   post-processing and runs cardiacseg.postprocess.select_postprocessing (nnU-Net style), printing the
   effect of every step alone;
2. writes the choice to <output>/postprocessing.json (copy it to configs/ to ship it) and
3. evaluates with it: per-patient ACDC 3D Dice and EF error, Sunnybrook end to end from DICOM
   (<output>/evaluation.md and evaluation.json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cardiacseg.data.datalist import split_patients
from cardiacseg.engines.evaluation import choose_postprocessing, write_evaluation
from cardiacseg.inferers import SlicePredictor
from cardiacseg.io import list_ssl4mis_patients
from cardiacseg.postprocess import PostProcessor

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
    args = parser.parse_args()
    acdc, sunnybrook = Path(args.data) / "acdc_ssl4mis", Path(args.data) / "sunnybrook"
    _, val = split_patients(list_ssl4mis_patients(acdc), 0.2, 0)
    predictor = SlicePredictor.from_checkpoint(
        args.weights, args.network, tta=args.tta, crop_size=args.crop_size
    )
    t0 = time.time()
    choice, alone = choose_postprocessing(predictor, acdc, val)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    choice.save(out / "postprocessing.json")
    print(f"chosen steps: {choice.steps} ({time.time() - t0:.0f} s)")
    print("mean 3D Dice over ED+ES of the validation patients, each step alone:")
    for step, dice in alone.items():
        print(f"  {step:15s} " + "  ".join(f"{k} {v:.4f}" for k, v in dice.items()))
    (out / "postprocessing_effects.json").write_text(json.dumps(alone, indent=2) + "\n")
    predictor.postprocess = PostProcessor(choice.steps)
    res = write_evaluation(
        predictor, acdc, val, sunnybrook, {"SCD0000101": "SC-HF-I-1", "SCD0000201": "SC-HF-I-2"}, out
    )
    print((out / "evaluation.md").read_text())
    s = res["acdc_summary"]
    lv = (s["dice_lv_ed"] + s["dice_lv_es"]) / 2
    myo = (s["dice_myo_ed"] + s["dice_myo_es"]) / 2
    rv = (s["dice_rv_ed"] + s["dice_rv_es"]) / 2
    print(f"ACDC means (ED+ES): LV {lv:.4f}  MYO {myo:.4f}  RV {rv:.4f}  |EF err| {s['ef_abs_error']:.2f}")


if __name__ == "__main__":
    main()
