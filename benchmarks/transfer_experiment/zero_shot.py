"""Validation Dice of start weights before any target training (0 images seen), with an arm's pipeline.

Runs the validation evaluator of an experiment arm's bundle (same validation patients, crop and
per-structure metrics) with given weights, e.g. the source model (TL2's start) and, for reference, the
shipped model (which saw DCM and RV patients, so it is not a fair start for that target). Usage::

    python benchmarks/transfer_experiment/zero_shot.py ARM_BUNDLE WEIGHTS.pt [WEIGHTS.pt ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cardiacseg.workflows.transfer_experiment  # noqa: F401  (older arm bundles do not import it)
from cardiacseg.engines.workflow import training_workflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("weights", type=Path, nargs="+")
    args = parser.parse_args()
    results = {}
    for weights in args.weights:
        with tempfile.TemporaryDirectory() as tmp:
            workflow = training_workflow(
                args.bundle,
                ("train.json", "transfer.json"),
                mlflow_tracking=False,
                device="$torch.device('cpu')",
                ckpt_dir=tmp,
                pretrained=str(weights.resolve()),
            )
            evaluator = workflow.parser.get_parsed_content("validate#evaluator")
            evaluator.run()
            results[str(weights)] = {k: float(v) for k, v in evaluator.state.metrics.items()}
            workflow.finalize()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
