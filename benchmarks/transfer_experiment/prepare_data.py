"""Write the NIfTI datalists of the pathology-shift demonstration (docs/benchmarks/transfer_experiment.md).

From the shared ACDC data (SSL4MIS HDF5 layout) this writes, under ``OUT`` (default
``../runs/transfer_experiment/data``; never inside the repository):

- ``source.json``: source = NOR + MINF + HCM (ids 021-080), 3 patients per group held out for validation
  (seeded, ``random.Random(0)``), the rest for training;
- ``target.json``: target = DCM + RV (ids 001-020, 081-100), 5 DCM + 5 RV validation patients (seeded),
  the other patients as the training pool;
- ``sunnybrook.json`` (when the Sunnybrook data are present): SCD0000101's contoured ED/ES slices for
  training, SCD0000201's for validation, LV + MYO labels only, ``annotated_slices`` per entry
  (``sunnybrook_ed.json``: its ED entries; ES has endocardial contours only).

Each ACDC entry is one ED or ES stack with its internal label map (1 LV, 2 MYO, 3 RV) and keys
``patient``, ``phase`` and ``group``. Usage::

    python benchmarks/transfer_experiment/prepare_data.py [--data ../shared/data] [--out OUT]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from cardiacseg.data.datalist import acdc_group
from cardiacseg.io.nifti import write_nifti
from cardiacseg.io.ssl4mis import list_ssl4mis_patients, read_ssl4mis_frame
from cardiacseg.utils.atomic import atomic_write_text

SOURCE_GROUPS = ("HCM", "MINF", "NOR")
TARGET_GROUPS = ("DCM", "RV")


def _entries(root: Path, out: Path, patients: list[str]) -> list[dict[str, Any]]:
    entries = []
    for pid in patients:
        for frame, phase in ((1, "ED"), (2, "ES")):
            image, label = read_ssl4mis_frame(root, pid, frame)
            if image.ndim == 2:
                image, label = image[None], label[None]
            img = out / "acdc" / f"{pid}_{phase}.nii.gz"
            lab = out / "acdc" / f"{pid}_{phase}_gt.nii.gz"
            if not img.exists():
                write_nifti(img, np.asarray(image, np.float32))
            if not lab.exists():
                write_nifti(lab, np.asarray(label, np.uint8))
            entries.append(
                {
                    "image": str(img.relative_to(out)),
                    "label": str(lab.relative_to(out)),
                    "patient": pid,
                    "phase": phase,
                    "group": acdc_group(pid),
                }
            )
    return entries


def _split(
    patients: list[str], groups: tuple[str, ...], n_val: int, seed: int
) -> tuple[list[str], list[str]]:
    val: list[str] = []
    for g in groups:
        members = sorted(p for p in patients if acdc_group(p) == g)
        val += sorted(random.Random(seed).sample(members, n_val))
    train = sorted(p for p in patients if acdc_group(p) in groups and p not in val)
    return train, sorted(val)


def _sunnybrook(data: Path, out: Path) -> dict[str, list[dict[str, Any]]] | None:
    from cardiacseg.io.sunnybrook import read_sunnybrook_study

    sb = data / "sunnybrook"
    pairs = (("SCD0000101", "SC-HF-I-1", "training"), ("SCD0000201", "SC-HF-I-2", "validation"))
    if not all((sb / "dicoms" / d).is_dir() for d, _, _ in pairs):
        return None
    content: dict[str, list[dict[str, Any]]] = {"training": [], "validation": []}
    for dicom, contours, section in pairs:
        study = read_sunnybrook_study(sb / "dicoms" / dicom, sb / "contourfiles" / contours)
        for phase, t in (("ED", study.ed_phase), ("ES", study.es_phase)):
            if t is None:
                continue
            image = np.asarray(study.image[t], np.float32)
            image = (image - image.min()) / max(float(image.max() - image.min()), 1e-6)
            label = np.asarray(study.labels[t], np.uint8)
            annotated = sorted(int(z) for z in study.annotated_slices[t])
            img = out / "sunnybrook" / f"{dicom}_{phase}.nii.gz"
            lab = out / "sunnybrook" / f"{dicom}_{phase}_gt.nii.gz"
            if not img.exists():
                write_nifti(img, image)
            if not lab.exists():
                write_nifti(lab, label)
            content[section].append(
                {
                    "image": str(img.relative_to(out)),
                    "label": str(lab.relative_to(out)),
                    "patient": dicom,
                    "phase": phase,
                    "annotated_slices": annotated,
                }
            )
    return content


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path("../runs/transfer_experiment/data"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-sunnybrook", action="store_true")
    args = parser.parse_args()
    root = args.data / "acdc_ssl4mis"
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    patients = list_ssl4mis_patients(root)
    for name, groups, n_val in (("source", SOURCE_GROUPS, 3), ("target", TARGET_GROUPS, 5)):
        train, val = _split(patients, groups, n_val, args.seed)
        content = {"training": _entries(root, out, train), "validation": _entries(root, out, val)}
        atomic_write_text(out / f"{name}.json", json.dumps(content, indent=1) + "\n", overwrite=True)
        print(f"{name}: {len(train)} training patients, {len(val)} validation patients {val}")
    if not args.no_sunnybrook:
        sb = _sunnybrook(args.data, out)
        if sb is not None:
            atomic_write_text(out / "sunnybrook.json", json.dumps(sb, indent=1) + "\n", overwrite=True)
            # ED only: Sunnybrook's ES phase has endocardial contours only (no myocardium label there)
            ed = {k: [e for e in v if e["phase"] == "ED"] for k, v in sb.items()}
            atomic_write_text(out / "sunnybrook_ed.json", json.dumps(ed, indent=1) + "\n", overwrite=True)
            print(
                "sunnybrook:",
                [(e["patient"], e["phase"], len(e["annotated_slices"])) for s in sb.values() for e in s],
            )


if __name__ == "__main__":
    main()
