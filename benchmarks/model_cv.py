"""Five-fold cross-validation of training recipes on the 75 ACDC patients (issue 22: shipped model v2).

Folds: :func:`cardiacseg.data.datalist.kfold_patients` with 5 folds, seed 0, stratified by ACDC pathology
group (15 patients per fold, 3 of each group). Fold 0's validation patients are the shipped (v1) model's 15
validation patients (``split_patients(..., 0.2, 0)`` is fold 0 of the same split).

A recipe is a set of overrides of the bundle's ``train.json`` (and of its inference settings). Every fold is
trained on its 60 training patients with no validation during training and keeps its **last** weights, so
nothing is selected on the patients a fold reports; the fold's model is written as a bundle folder
(``OUT/<recipe>/fold<k>/``: the shipped configs, ``models/model.pt`` in float16, ``fold.json`` with the
patients, epochs, seconds and CPU). A stopped training resumes from its checkpoint when the command is run
again (the bundle's exact-resume checkpointing), across sessions and machines; a finished fold is skipped.

``evaluate`` predicts each fold's 15 validation patients (ED and ES, all slices, the bundle's default
inference: flip TTA and its post-processing) with that fold's model and writes the rows of
:func:`cardiacseg.workflows.evaluate.compare_label_maps` to ``OUT/<recipe>/fold<k>/eval/``; ``report`` pools
the 75 out-of-fold patients per recipe (per fold, per class and phase) and compares recipes paired by patient
(``docs/benchmarks/model_cv.md/.json``).

The v1 recipe (``train.json`` of model 0.2.x: U-Net, ``nnunet`` augmentation, 100 epochs) is retrained on
every fold the same way. The shipped v1 weights are fold 0's training patients' model too, but were chosen
as the best of 20 validations on fold 0's validation patients: ``evaluate --recipe shipped`` scores them on
fold 0 only, as a check that the retrained v1 fold 0 is comparable.

Usage::

    python benchmarks/model_cv.py train --recipe v1 --folds 1 2 3 4 [--out ../runs/model_cv]
    python benchmarks/model_cv.py evaluate --recipe v1 [--folds ...]
    python benchmarks/model_cv.py report --recipes v1 v2
    python benchmarks/model_cv.py postprocessing --recipe v2a   # chosen out of fold (nnU-Net's rule)
    python benchmarks/model_cv.py choose --recipes v2a v2b --folds 1   # the v2 recipe, by a fixed rule
    python benchmarks/model_cv.py train --recipe v2a --all   # the model that ships: all 75 patients

``train --all`` trains the recipe on all 75 patients (``OUT/<recipe>/all/``), the same way and with the same
epochs as a fold: what ships once the folds have chosen the recipe.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from cardiacseg.data.datalist import acdc_group, kfold_patients
from cardiacseg.demo import shipped_bundle_path
from cardiacseg.io.ssl4mis import list_ssl4mis_patients

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
ACDC = DATA / "acdc_ssl4mis"
OUT_DOCS = REPO / "docs" / "benchmarks"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bundles import make_bundle, save_trained_weights  # noqa: E402
from _machine import cpu_bf16_flags, cpu_model  # noqa: E402
from _stats import bootstrap_mean_ci  # noqa: E402

N_FOLDS = 5
SEED = 0

_UNET = {
    "_target_": "cardiacseg.networks.get_network",
    "name": "unet",
    "spatial_dims": 2,
    "in_channels": 1,
    "out_channels": 4,
}

#: Recipe name -> overrides of ``train.json`` (``training``) and of the predictor (``inference``).
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    # model 0.2.x as trained: train.json as committed then (U-Net 32-512, nnunet augmentation, 100 epochs,
    # AdamW 1e-3 cosine, batch 16, patch 128 of a 160 crop)
    "v1": {"training": {}, "inference": {}},
    # slim: the same U-Net at half the width (1.6 M parameters, 2.6x faster inference on 160 x 160 crops
    # in float32 here, 2x in bfloat16), 150 epochs with augmentation in a loader process (it is about half
    # of a slim training step); motion preset (issue 20: robust to respiratory motion, a tie on clean images)
    "v2a": {
        "training": {
            "network_def": {**_UNET, "channels": [16, 32, 64, 128, 256]},
            "augmentation": "motion",
            "epochs": 150,
            "num_workers": 1,
        },
        "inference": {"network_kwargs": {"channels": [16, 32, 64, 128, 256]}},
    },
    # v2a with 2.5D input: the slice and its two neighbours as channels (for basal RV at end-systole)
    "v2b": {
        "training": {
            "network_def": {**_UNET, "in_channels": 3, "channels": [16, 32, 64, 128, 256]},
            "augmentation": "motion",
            "epochs": 150,
            "num_workers": 1,
            "context_slices": 1,
        },
        "inference": {"network_kwargs": {"channels": [16, 32, 64, 128, 256]}, "context_slices": 1},
    },
}


def folds() -> list[tuple[list[str], list[str]]]:
    """The five ``(train, validation)`` patient lists (stratified by pathology group, seed 0)."""
    return kfold_patients(list_ssl4mis_patients(ACDC), N_FOLDS, SEED, acdc_group)


#: Fold id of the final training on all 75 patients (the model that ships; nothing is held out).
ALL = -1


def fold_dir(out: Path, recipe: str, fold: int) -> Path:
    """``OUT/<recipe>/fold<k>``, or ``OUT/<recipe>/all`` for :data:`ALL`."""
    return out / recipe / ("all" if fold == ALL else f"fold{fold}")


def fold_patients(fold: int) -> tuple[list[str], list[str]]:
    """``(train, validation)`` patients of a fold; :data:`ALL`: every patient, no validation."""
    if fold == ALL:
        return list_ssl4mis_patients(ACDC), []
    return folds()[fold]


def train_fold(out: Path, recipe: str, fold: int) -> dict[str, Any]:
    """Train one fold (resuming if unfinished), write its bundle folder and ``fold.json``; return the record."""

    from cardiacseg.engines import training_workflow

    folder = fold_dir(out, recipe, fold)
    record_file = folder / "fold.json"
    if record_file.is_file():
        print(f"{recipe} {folder.name}: finished earlier, skipped", flush=True)
        return dict(json.loads(record_file.read_text()))
    shipped = shipped_bundle_path()
    make_bundle(shipped, folder, RECIPES[recipe]["inference"])
    train_patients, val_patients = fold_patients(fold)
    overrides = dict(RECIPES[recipe]["training"])
    epochs = int(overrides.pop("epochs", 100))
    ckpt = folder / "train"
    wf = training_workflow(
        shipped,
        data_root=str(ACDC),
        ckpt_dir=str(ckpt),
        epochs=epochs,
        val_interval=epochs + 1,  # no validation: the last weights are kept
        mlflow_tracking=False,
        seed=SEED,
        train_patients=train_patients,
        val_patients=(val_patients or train_patients)[:1],  # built but never run
        **overrides,
    )
    network = wf.parser.get_parsed_content("network")
    trainer = wf.parser.get_parsed_content("train#trainer")
    start = time.perf_counter()
    trainer.run()  # ResumableCheckpoint resumes from ckpt/last.pt
    seconds = time.perf_counter() - start
    wf.finalize()
    save_trained_weights(network, ckpt, folder)
    record: dict[str, Any] = {
        "recipe": recipe,
        "fold": fold,
        "training": RECIPES[recipe]["training"],
        "epochs": epochs,
        "train_precision": wf.parser.get_parsed_content("train_precision"),
        "train_patients": train_patients,
        "val_patients": val_patients,
        "seconds_last_run": round(seconds, 1),
        "cpu": f"{cpu_model()} ({cpu_bf16_flags()})",
    }
    record_file.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{recipe} {folder.name}: done, last run {seconds:.0f} s", flush=True)
    return record


SUNNYBROOK = {"SCD0000101": "SC-HF-I-1", "SCD0000201": "SC-HF-I-2"}
CLASSES = ("lv", "myo", "rv")


def model_folder(out: Path, recipe: str, fold: int) -> Path:
    """The bundle folder scored for a fold: the fold's own, or the shipped bundle (``shipped``, fold 0 only)."""
    if recipe == "shipped":
        if fold != 0:
            raise ValueError("the shipped v1 weights were trained on fold 0's training patients: fold 0 only")
        return shipped_bundle_path()
    folder = fold_dir(out, recipe, fold)
    if not (folder / "fold.json").is_file():
        raise FileNotFoundError(f"{folder}: fold not trained yet (no fold.json); run the train command first")
    return folder


def evaluate_fold(
    out: Path, recipe: str, fold: int, sunnybrook: bool = True, tta: str | None = None, oof_pp: bool = False
) -> Path:
    """Score a fold's model on its 15 validation patients (and the two Sunnybrook studies); return the folder.

    ``tta`` replaces the bundle's test-time augmentation; the rows then go to ``eval-tta-<mode>/``.
    ``oof_pp`` replaces the bundle's post-processing by the steps chosen on the other folds
    (``postprocessing`` command, ``OUT/<recipe>/postprocessing_oof.json``); the rows go to ``eval[...]-pp-oof/``.
    """
    from cardiacseg.inferers import SlicePredictor
    from cardiacseg.workflows.bundle_evaluation import evaluate_ssl4mis, evaluate_sunnybrook
    from cardiacseg.workflows.evaluate import write_comparison

    if not 0 <= fold < N_FOLDS:
        raise ValueError(f"fold {fold}: only folds 0-{N_FOLDS - 1} have held-out patients to score")
    _, val_patients = folds()[fold]
    predictor = SlicePredictor.from_bundle(model_folder(out, recipe, fold), **({"tta": tta} if tta else {}))
    name = "eval" + (f"-tta-{tta}" if tta else "")
    if oof_pp:
        from cardiacseg.postprocess import PostProcessor

        chosen = json.loads((out / recipe / "postprocessing_oof.json").read_text())["folds"]
        if str(fold) not in chosen:
            raise ValueError(
                f"fold {fold}: not in {out / recipe / 'postprocessing_oof.json'}; rerun postprocessing"
            )
        predictor.postprocess = PostProcessor(chosen[str(fold)]["steps_chosen_on_other_folds"])
        name += "-pp-oof"
    target = fold_dir(out, recipe, fold) / name
    start = time.perf_counter()
    write_comparison(evaluate_ssl4mis(predictor, ACDC, val_patients), target / "acdc", overwrite=True)
    if sunnybrook:
        write_comparison(
            evaluate_sunnybrook(predictor, DATA / "sunnybrook", SUNNYBROOK),
            target / "sunnybrook",
            overwrite=True,
        )
    steps = list(predictor.postprocess.steps) if predictor.postprocess is not None else []
    info = {"seconds": round(time.perf_counter() - start, 1), "tta": predictor.tta, "postprocessing": steps}
    (target / "eval.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"{recipe} fold {fold}: evaluated in {info['seconds']} s", flush=True)
    return target


def raw_predictions(out: Path, recipe: str, fold: int) -> dict[str, Any]:
    """ED and ES label maps of a fold's 15 patients with the bundle's inference but no post-processing.

    Cached in ``OUT/<recipe>/fold<k>/raw_predictions.npz`` (keys ``<patient>_ed``/``_es``): the input of the
    out-of-fold post-processing choice (:func:`oof_postprocessing`).
    """
    import numpy as np

    from cardiacseg.inferers import SlicePredictor
    from cardiacseg.io.ssl4mis import read_ssl4mis_study

    cache = fold_dir(out, recipe, fold) / "raw_predictions.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    predictor = SlicePredictor.from_bundle(model_folder(out, recipe, fold))
    predictor.postprocess = None
    arrays: dict[str, Any] = {}
    for pid in folds()[fold][1]:
        study = read_ssl4mis_study(ACDC, pid)
        assert study.ed_phase is not None and study.es_phase is not None
        pred = predictor.predict(study, [study.ed_phase, study.es_phase])
        arrays[f"{pid}_ed"], arrays[f"{pid}_es"] = pred[study.ed_phase], pred[study.es_phase]
    tmp = cache.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(cache)
    print(f"{recipe} fold {fold}: raw predictions cached", flush=True)
    return arrays


def oof_postprocessing(out: Path, recipe: str, fold_ids: list[int]) -> dict[str, Any]:
    """Choose post-processing on out-of-fold predictions, never on the patients it is scored on.

    For each fold k, the steps are chosen (:func:`cardiacseg.postprocess.select_postprocessing`, nnU-Net's
    greedy rule) on the raw predictions of the *other* folds and scored on fold k, beside no post-processing
    and the v1 bundle's steps (chosen on fold 0's patients with the v1 model). The steps chosen on all the
    folds' predictions are the ones to ship with the recipe. Writes ``OUT/<recipe>/postprocessing_oof.json``.
    """
    from cardiacseg.io.ssl4mis import read_ssl4mis_study
    from cardiacseg.postprocess import PostprocessingChoice, postprocessed_dice, select_postprocessing

    cases: dict[int, list[tuple[Any, Any]]] = {}
    for k in fold_ids:
        raw = raw_predictions(out, recipe, k)
        cases[k] = []
        for pid in folds()[k][1]:
            study = read_ssl4mis_study(ACDC, pid)
            assert study.labels is not None and study.ed_phase is not None and study.es_phase is not None
            cases[k] += [(raw[f"{pid}_ed"], study.labels[study.ed_phase])]
            cases[k] += [(raw[f"{pid}_es"], study.labels[study.es_phase])]

    def score(pairs: list[tuple[Any, Any]], steps: list[str]) -> dict[str, float]:
        return postprocessed_dice([p for p, _ in pairs], [r for _, r in pairs], steps)

    v1_steps = PostprocessingChoice.load_steps(shipped_bundle_path() / "configs" / "postprocessing.json")
    result: dict[str, Any] = {"recipe": recipe, "v1_steps": v1_steps, "folds": {}}
    for k in fold_ids:
        others = [pair for j in fold_ids if j != k for pair in cases[j]]
        steps = select_postprocessing([p for p, _ in others], [r for _, r in others]).steps if others else []
        result["folds"][k] = {
            "steps_chosen_on_other_folds": steps,
            "none": score(cases[k], []),
            "v1_steps": score(cases[k], v1_steps),
            "oof_steps": score(cases[k], steps),
        }
    every = [pair for k in fold_ids for pair in cases[k]]
    result["steps_to_ship"] = select_postprocessing([p for p, _ in every], [r for _, r in every]).steps
    (out / recipe / "postprocessing_oof.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


def _read_csv(path: Path) -> list[dict[str, Any]]:
    import csv

    def num(v: str) -> Any:
        try:
            return float(v)
        except ValueError:
            return v

    with path.open(newline="") as f:
        return [{k: num(v) for k, v in row.items()} for row in csv.DictReader(f)]


def patient_rows(out: Path, recipe: str, fold_ids: list[int], dataset: str = "acdc") -> list[dict[str, Any]]:
    """One row per out-of-fold patient: fold, 3D Dice per class at ED and ES, LV and RV EF errors (points).

    ``recipe`` may end in ``@tta-<mode>`` for the rows of ``evaluate --tta <mode>``.
    """
    rows = []
    name, _, variant = recipe.partition("@")
    for k in fold_ids:
        base = fold_dir(out, name, k) / ("eval" if not variant else f"eval-{variant}") / dataset
        if not (base / "metrics.csv").is_file():
            continue
        metrics = _read_csv(base / "metrics.csv")
        indices = {r["study"]: r for r in _read_csv(base / "indices.csv")}
        for study in sorted({r["study"] for r in metrics}):
            row: dict[str, Any] = {"recipe": recipe, "fold": k, "patient": study}
            for m in metrics:
                if m["study"] == study and m["phase_name"] in ("ED", "ES"):
                    for c in CLASSES:
                        row[f"dice_{c}_{m['phase_name'].lower()}"] = m[f"dice_{c}"]
            ind = indices.get(study, {})
            row["lv_ef_error"] = ind.get("lv_ef_percent_error", float("nan"))
            row["rv_ef_error"] = ind.get("rv_ef_percent_error", float("nan"))
            rows.append(row)
    return rows


#: Columns of the fold tables: (key, header); Dice means, then mean absolute EF errors.
COLUMNS = (
    *((f"dice_{c}_{p}", f"{c.upper()} {p.upper()}") for c in CLASSES for p in ("ed", "es")),
    *((f"dice_{c}", f"{c.upper()}") for c in CLASSES),
    ("abs_lv_ef_error", "abs LV EF err"),
    ("abs_rv_ef_error", "abs RV EF err"),
)


def summarise(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Means over patients of the :data:`COLUMNS` (class Dice = mean of ED and ES)."""
    import numpy as np

    def mean(values: list[float]) -> float:
        a = np.asarray(values, dtype=float)
        return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")

    out: dict[str, float] = {"n": float(len(rows))}
    for c in CLASSES:
        for p in ("ed", "es"):
            out[f"dice_{c}_{p}"] = mean([r[f"dice_{c}_{p}"] for r in rows])
        out[f"dice_{c}"] = mean([r[f"dice_{c}_{p}"] for r in rows for p in ("ed", "es")])
    out["abs_lv_ef_error"] = mean([abs(r["lv_ef_error"]) for r in rows])
    out["abs_rv_ef_error"] = mean([abs(r["rv_ef_error"]) for r in rows])
    return out


def paired_difference(
    rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]], key: str, boot: int = 2000
) -> dict[str, float]:
    """Mean of ``b - a`` over the patients both have, with a 95 % patient bootstrap interval."""
    import numpy as np

    a = {r["patient"]: r for r in rows_a}
    b = {r["patient"]: r for r in rows_b}
    common = sorted(set(a) & set(b))

    def value(r: dict[str, Any]) -> float:
        if key.startswith("abs_"):
            return abs(float(r[key.removeprefix("abs_")]))
        if key in ("dice_lv", "dice_myo", "dice_rv"):
            return float(np.nanmean([r[f"{key}_ed"], r[f"{key}_es"]]))
        return float(r[key])

    d = np.array([value(b[p]) - value(a[p]) for p in common])
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"n": 0.0, "mean": float("nan"), "low": float("nan"), "high": float("nan")}
    low, high = bootstrap_mean_ci(d, np.random.default_rng(0), boot)
    return {"n": float(d.size), "mean": float(d.mean()), "low": low, "high": high}


def sunnybrook_rows(out: Path, recipe: str, fold_ids: list[int]) -> list[dict[str, Any]]:
    """One row per (fold, Sunnybrook study): LV Dice at ED and ES on the contoured slices, MYO Dice at ED
    (the epicardium is contoured at ED only), LV EF error against the expert contours (points)."""
    rows = []
    name, _, variant = recipe.partition("@")
    for k in fold_ids:
        base = fold_dir(out, name, k) / ("eval" if not variant else f"eval-{variant}") / "sunnybrook"
        if not (base / "metrics.csv").is_file():
            continue
        metrics = _read_csv(base / "metrics.csv")
        indices = {r["study"]: r for r in _read_csv(base / "indices.csv")}
        for study in sorted({r["study"] for r in metrics}):
            row: dict[str, Any] = {"fold": k, "study": study}
            for m in metrics:
                if m["study"] == study and m["phase_name"] in ("ED", "ES"):
                    row[f"lv_dice_{m['phase_name'].lower()}"] = m["dice_lv"]
                    if m["phase_name"] == "ED":
                        row["myo_dice_ed"] = m["dice_myo"]
            row["lv_ef_error"] = indices.get(study, {}).get("lv_ef_percent_error", float("nan"))
            rows.append(row)
    return rows


def acquisition_subgroups(patients: list[str]) -> dict[str, list[str]]:
    """The ACDC patients whose acquisitions differ most (issue 22): the quarter with the fewest slices and
    the quarter with the smallest in-plane matrix at ED.

    The shared HDF5 files keep no voxel spacing, so the smallest matrix (rows x columns) stands in for the
    largest pixels: ACDC fields of view are alike (about 300-400 mm), so fewer pixels means larger ones.
    """
    import numpy as np

    from cardiacseg.io.ssl4mis import read_ssl4mis_frame

    shape = {p: read_ssl4mis_frame(ACDC, p, 1)[0].shape for p in patients}  # (Z, H, W)
    n = max(1, len(patients) // 4)
    by_slices = sorted(patients, key=lambda p: (shape[p][0], p))[:n]
    by_matrix = sorted(patients, key=lambda p: (int(np.prod(shape[p][1:])), p))[:n]
    return {
        f"fewest slices ({shape[by_slices[0]][0]}-{shape[by_slices[-1]][0]})": by_slices,
        "smallest matrix (largest pixels; "
        f"{int(np.prod(shape[by_matrix[0]][1:]))}-{int(np.prod(shape[by_matrix[-1]][1:]))} px)": by_matrix,
    }


def _fmt(v: float, digits: int = 3) -> str:
    return "–" if v != v else f"{v:.{digits}f}"


def report(out: Path, recipes: list[str], fold_ids: list[int]) -> dict[str, Any]:
    """Fold and pooled tables per recipe, paired differences against the first recipe; write docs files."""
    result: dict[str, Any] = {"cpu": f"{cpu_model()} ({cpu_bf16_flags()})", "recipes": {}}
    md = [
        "# Five-fold cross-validation on the 75 ACDC patients (`benchmarks/model_cv.py`)",
        "",
        "Folds by patient, stratified by pathology group (seed 0); every fold trained on its 60 patients, "
        "last weights, scored on its 15 with the bundle's inference (flip TTA, post-processing). "
        "3D Dice at ED and ES (all slices), EF errors in points from voxel counts. `shipped` (fold 0 only) is "
        "the shipped v1 model: its weights were the best of 20 validations on fold 0's 15 patients, so its "
        "fold 0 figures are optimistic; every other recipe keeps its last weights.",
        "",
    ]
    header = "| fold | n | " + " | ".join(h for _, h in COLUMNS) + " |"
    rule = "|" + "---|" * (len(COLUMNS) + 2)
    all_rows: dict[str, list[dict[str, Any]]] = {}
    for recipe in recipes:
        rows = patient_rows(out, recipe, fold_ids)
        all_rows[recipe] = rows
        per_fold = {
            k: summarise([r for r in rows if r["fold"] == k]) for k in sorted({r["fold"] for r in rows})
        }
        pooled = summarise(rows)
        result["recipes"][recipe] = {"folds": per_fold, "pooled": pooled, "patients": rows}
        md += [f"## {recipe}", "", header, rule]
        for k, s in per_fold.items():
            digits = [_fmt(s[key], 1 if key.startswith("abs") else 3) for key, _ in COLUMNS]
            md.append(f"| {k} | {int(s['n'])} | " + " | ".join(digits) + " |")
        digits = [_fmt(pooled[key], 1 if key.startswith("abs") else 3) for key, _ in COLUMNS]
        md += [f"| pooled | {int(pooled['n'])} | " + " | ".join(digits) + " |", ""]
    pooled_patients = sorted({r["patient"] for rows in all_rows.values() for r in rows})
    if pooled_patients:
        groups = acquisition_subgroups(pooled_patients)
        result["subgroups"] = {}
        md += ["## Where the acquisitions differ (out-of-fold patients)", ""]
        md += ["| recipe | group | " + header.removeprefix("| fold | "), rule]
        for recipe in recipes:
            for group, members in groups.items():
                s = summarise([r for r in all_rows[recipe] if r["patient"] in members])
                result["subgroups"].setdefault(recipe, {})[group] = {**s, "patients": members}
                digits = [_fmt(s[key], 1 if key.startswith("abs") else 3) for key, _ in COLUMNS]
                md.append(f"| {recipe} | {group} | {int(s['n'])} | " + " | ".join(digits) + " |")
        md.append("")
    md += [
        "## Sunnybrook (GE DICOM, expert LV contours), end to end from DICOM with each fold's model",
        "",
        "| recipe | fold | study | LV Dice ED | LV Dice ES | MYO Dice ED | LV EF err |",
        "|---|---|---|---|---|---|---|",
    ]
    result["sunnybrook"] = {}
    for recipe in recipes:
        sb = sunnybrook_rows(out, recipe, fold_ids)
        result["sunnybrook"][recipe] = sb
        for r in sb:
            cells = [_fmt(r.get(key, float("nan"))) for key in ("lv_dice_ed", "lv_dice_es", "myo_dice_ed")]
            md.append(
                f"| {recipe} | {r['fold']} | {r['study']} | "
                + " | ".join(cells)
                + f" | {r['lv_ef_error']:+.1f} |"
            )
    md.append("")
    if len(recipes) > 1:
        ref = recipes[0]
        md += [f"## Against {ref}, paired by patient (mean difference, 95 % bootstrap interval)", ""]
        keys = ("dice_lv", "dice_myo", "dice_rv", "dice_rv_es", "abs_lv_ef_error")
        md += ["| recipe | n | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 2)]
        result["differences"] = {}
        for recipe in recipes[1:]:
            diffs = {key: paired_difference(all_rows[ref], all_rows[recipe], key) for key in keys}
            result["differences"][recipe] = diffs
            cells = [
                f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" if d["n"] else "no patient in common"
                for d in diffs.values()
            ]
            md.append(f"| {recipe} | {int(next(iter(diffs.values()))['n'])} | " + " | ".join(cells) + " |")
        md.append("")
    md.append(f"CPU: {result['cpu']}.")
    OUT_DOCS.mkdir(parents=True, exist_ok=True)
    (OUT_DOCS / "model_cv.json").write_text(json.dumps(result, indent=1) + "\n")
    (OUT_DOCS / "model_cv.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return result


#: Largest LV Dice loss (paired mean against v1) a v2 candidate may have and still be chosen (issue 22:
#: "beats v1 in MYO and RV without losing LV"; 0.005 is the band issue 21 uses for "no loss").
LV_LOSS_ALLOWED = 0.005


def choose_v2(out: Path, candidates: list[str], fold_ids: list[int]) -> dict[str, Any]:
    """Choose the v2 recipe among ``candidates`` by a rule fixed before their scores are seen.

    Each candidate is compared with v1 paired by patient on the folds both have
    (:func:`paired_difference`). Eligible: LV Dice not lower than v1's by more than
    :data:`LV_LOSS_ALLOWED`. Chosen: the eligible candidate with the largest mean of its MYO and RV Dice
    gains; on a tie (within 0.001) the earlier candidate, the simpler one. None eligible: the one with
    the largest gain, marked as not meeting the rule. Writes ``OUT/v2_choice`` (the recipe name, read by
    the training queue) and ``OUT/v2_choice.json`` (the figures and the rule).
    """
    v1 = patient_rows(out, "v1", fold_ids)
    scored: dict[str, dict[str, Any]] = {}
    for recipe in candidates:
        rows = patient_rows(out, recipe, fold_ids)
        diffs = {key: paired_difference(v1, rows, key) for key in ("dice_lv", "dice_myo", "dice_rv")}
        if not diffs["dice_lv"]["n"]:
            print(f"{recipe}: no fold in common with v1 on folds {fold_ids}: left out", flush=True)
            continue
        gain = (diffs["dice_myo"]["mean"] + diffs["dice_rv"]["mean"]) / 2
        scored[recipe] = {
            "differences_vs_v1": diffs,
            "myo_rv_gain": gain,
            "eligible": diffs["dice_lv"]["mean"] >= -LV_LOSS_ALLOWED,
        }
    if not scored:
        raise ValueError(f"no candidate among {candidates} is scored on folds {fold_ids} with v1")
    eligible = [r for r in candidates if r in scored and scored[r]["eligible"]]
    pool = eligible or [r for r in candidates if r in scored]
    best = max(scored[r]["myo_rv_gain"] for r in pool)
    chosen = next(r for r in pool if scored[r]["myo_rv_gain"] >= best - 0.001)
    result = {
        "chosen": chosen,
        "meets_rule": bool(eligible),
        "folds": fold_ids,
        "rule": f"LV loss vs v1 <= {LV_LOSS_ALLOWED}; largest mean of MYO and RV gains; ties (0.001) to the "
        "earlier candidate",
        "candidates": scored,
    }
    (out / "v2_choice.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "v2_choice").write_text(chosen + "\n")
    print(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("train", "evaluate", "postprocessing", "report", "choose"))
    parser.add_argument("--recipe", default="v1", choices=[*RECIPES, "shipped"])
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES))
    parser.add_argument("--folds", nargs="*", type=int, default=list(range(N_FOLDS)))
    parser.add_argument(
        "--all", action="store_true", help="train: on all 75 patients (the shipping model), not on folds"
    )
    parser.add_argument("--no-sunnybrook", action="store_true", help="evaluate: ACDC folds only")
    parser.add_argument(
        "--tta", choices=("none", "flip", "flip_rot90"), help="evaluate: replace the bundle's TTA"
    )
    parser.add_argument(
        "--oof-postprocessing",
        action="store_true",
        help="evaluate: with the post-processing chosen on the other folds (run postprocessing first)",
    )
    parser.add_argument("--out", type=Path, default=REPO.parent / "runs" / "model_cv")
    args = parser.parse_args()
    if args.command == "train":
        for k in [ALL] if args.all else args.folds:
            train_fold(args.out, args.recipe, k)
    elif args.command == "evaluate":
        for k in args.folds:
            evaluate_fold(args.out, args.recipe, k, not args.no_sunnybrook, args.tta, args.oof_postprocessing)
    elif args.command == "postprocessing":
        oof_postprocessing(args.out, args.recipe, args.folds)
    elif args.command == "choose":
        choose_v2(args.out, [r for r in args.recipes if r.startswith("v2")], args.folds)
    else:
        report(args.out, args.recipes, args.folds)


if __name__ == "__main__":
    main()
