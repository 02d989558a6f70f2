"""Training recipes for motion robustness at an equal budget (issue 20): fine-tune the shipped model four ways.

Each arm starts from the shipped weights and continues the shipped recipe (``train.json``: same 60 ACDC
training patients, crop 160, patch 128, batch 16, AdamW, DiceCE) for the same number of epochs at a
fine-tuning learning rate (cosine from ``--lr`` to 0), so every arm sees the same images the same number
of times; only the augmentation differs:

- ``plain``: the shipped ``nnunet`` preset (the control: what extra training alone does);
- ``motion``: the ``motion`` preset (nnU-Net's set + respiratory ghosting, p 0.3);
- ``adversarial``: ``nnunet`` + ``configs/adversarial.json`` (AdvChain-style, 2 ascent steps);
- ``motion+adversarial``: both.

No validation runs during training and the last weights are kept, so nothing is selected on the
validation patients the robustness benchmark reports. Each arm is written as a bundle folder (the shipped
configs + its half-precision ``models/model.pt``) under ``--out`` with ``finetune.json`` (seconds, epochs,
CPU); an unfinished arm resumes from its checkpoint when the command is run again, a finished one is
skipped. Then compare them with ``benchmarks/robustness.py --bundle OUT/plain OUT/motion ...``.

Usage::

    python benchmarks/robustness_recipes.py [--out ../runs/robustness_recipes] [--epochs 3]
        [--arms plain motion adversarial motion+adversarial]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cardiacseg.data.datalist import split_patients
from cardiacseg.demo import shipped_bundle_path
from cardiacseg.engines import training_workflow
from cardiacseg.io.ssl4mis import list_ssl4mis_patients
from cardiacseg.networks import load_partial, load_state_dict_file

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "acdc_ssl4mis"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bundles import make_bundle, save_trained_weights  # noqa: E402
from _machine import cpu_bf16_flags, cpu_model  # noqa: E402

#: Arm name -> (augmentation preset, adversarial overlay on).
ARMS: dict[str, tuple[str, bool]] = {
    "plain": ("nnunet", False),
    "motion": ("motion", False),
    "adversarial": ("nnunet", True),
    "motion+adversarial": ("motion", True),
}


def run_arm(name: str, out: Path, epochs: int, lr: float, seed: int) -> dict[str, object]:
    """Fine-tune one arm (resuming if unfinished) and write its bundle; return its record."""
    folder = out / name
    record_file = folder / "finetune.json"
    if record_file.is_file():
        print(f"{name}: finished earlier, skipped", flush=True)
        return dict(json.loads(record_file.read_text()))
    shipped = shipped_bundle_path()
    make_bundle(shipped, folder)
    preset, adversarial = ARMS[name]
    train_patients, val_patients = split_patients(list_ssl4mis_patients(DATA), 0.2, 0)
    files = ("train.json", "adversarial.json") if adversarial else ("train.json",)
    ckpt = folder / "train"
    wf = training_workflow(
        shipped,
        config_files=files,
        data_root=str(DATA),
        ckpt_dir=str(ckpt),
        epochs=epochs,
        learning_rate=lr,
        val_interval=epochs + 1,
        mlflow_tracking=False,
        augmentation=preset,
        seed=seed,
        train_patients=train_patients,
        val_patients=val_patients[:1],
    )
    network = wf.parser.get_parsed_content("network")
    print(
        f"{name}: start weights:",
        load_partial(network, load_state_dict_file(shipped / "models" / "model.pt")).summary(),
    )
    trainer = wf.parser.get_parsed_content("train#trainer")
    start = time.perf_counter()
    trainer.run()  # ResumableCheckpoint resumes an interrupted arm from ckpt/last.pt
    seconds = time.perf_counter() - start
    wf.finalize()
    save_trained_weights(network, ckpt, folder)
    record: dict[str, object] = {
        "arm": name,
        "augmentation": preset,
        "adversarial": adversarial,
        "epochs": epochs,
        "learning_rate": lr,
        "seed": seed,
        "train_patients": len(train_patients),
        "seconds_this_run": round(seconds, 1),
        "cpu": f"{cpu_model()} ({cpu_bf16_flags()})",
    }
    record_file.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{name}: done in {seconds:.0f} s", flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO.parent / "runs" / "robustness_recipes")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", nargs="*", default=list(ARMS), choices=list(ARMS))
    args = parser.parse_args()
    records = [run_arm(name, args.out, args.epochs, args.lr, args.seed) for name in args.arms]
    (args.out / "recipes.json").write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
