"""Train the source model of the pathology-shift experiment: random start, ACDC NOR + MINF + HCM only.

The shipped model saw DCM and RV patients, so it cannot be the TL2 start of a DCM + RV target; this
trains one from random weights on the source patients (``source.json`` of ``prepare_data.py``: 36
training, 9 validation patients), time-boxed for a 2-core CPU: crop 128, patch 96, 3 epochs at 1e-3
then 1 at 1e-4. Usage::

    python benchmarks/transfer_experiment/train_source.py [--runs ../runs/transfer_experiment]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cardiacseg.workflows.transfer import run_transfer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("../runs/transfer_experiment"))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    t0 = time.time()
    result = run_transfer(
        args.runs / "data" / "source.json",
        args.runs / "source_model",
        "random",
        stage1_epochs=3,
        stage2_epochs=1,
        stage1_lr=1e-3,
        stage2_lr=1e-4,
        patience=8,
        seed=0,
        batch_size=16,
        crop_size=128,
        patch_size=96,
        device=args.device,
        tracking_uri=f"sqlite:///{args.runs / 'source_mlruns.db'}",
    )
    print(
        json.dumps(
            {
                "seconds": round(time.time() - t0, 1),
                "best_val_mean_dice": result.best_val_dice,
                "best_epoch": result.best_epoch,
                "train_images": result.train_images,
                "validation_images": result.validation_images,
                "history": result.history,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
