"""Command-line interface: a thin argparse layer over pure functions.

Only the standard library's argparse, json and sys are imported here (and ``cardiacseg``, which is lazy):
each command imports what it needs when it runs, so ``cardiacseg --help`` and ``--version`` start at once
(benchmarks/startup.py; tests/test_cli.py checks that no heavy module is imported).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from cardiacseg import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from cardiacseg.inferers.predictor import SlicePredictor as SlicePredictorT
    from cardiacseg.inferers.slice_range import SliceRangeClassifier as SliceRangeClassifierT
    from cardiacseg.io.study import CineStudy as CineStudyT
    from cardiacseg.workflows.segment import BatchResult as BatchResultT

__all__ = ["build_parser", "main"]


class _VersionAction(argparse.Action):
    """``--version``: the package, the shipped bundle's name and version and its weights' SHA-256.

    Computed only when asked for (hashing the weights is not free), with the standard library only
    (:func:`cardiacseg.provenance.version_text`): no torch or MONAI import.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show the package version and the shipped model's identity, and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        from cardiacseg.demo import shipped_bundle_path
        from cardiacseg.provenance import version_text

        try:
            bundle = shipped_bundle_path()
        except FileNotFoundError:
            bundle = None
        print(version_text(__version__, bundle))
        parser.exit()


def _lean_monai() -> None:
    """Import MONAI without the optional packages inference never uses (about 4 s less start-up).

    Only for commands that predict and score (segment, evaluate, demo): they use no MONAI engine or
    handler (:mod:`cardiacseg._lean_import` lists what becomes unavailable). ``CARDIACSEG_FULL_IMPORTS=1``
    turns it off.
    """
    from cardiacseg._lean_import import import_monai_lean

    import_monai_lean()


def _cmd_demo(args: argparse.Namespace) -> int:
    _lean_monai()
    from cardiacseg.demo import run_demo

    run_demo(args.output, overwrite=args.overwrite)
    return 0


def _study_dict(study: CineStudyT) -> dict[str, object]:
    return {
        "source": study.source,
        "shape_TZYX": list(study.image.shape),
        "spacing_mm_zyx": study.spacing_mm,
        "phase_times_ms": study.phase_times_ms,
        "slice_positions_mm": study.slice_positions_mm,
        "curation": study.curation.to_list(),
    }


def _cmd_info(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cardiacseg.io.discover import discover_studies, read_study

    path = Path(args.path)
    found = discover_studies([path]) if path.is_dir() else []
    if len(found) <= 1:  # one study (or none, or a file: read_study says why); headers are read once
        study = found[0].read() if found else read_study(path)
        print(json.dumps(_study_dict(study), indent=2) if args.json else study.summary())
        return 0
    # a folder of several studies (patients): describe each, as segment would see them
    out: list[dict[str, object]] = []
    failed = 0
    for s in found:
        try:
            study = s.read()
        except (ValueError, FileNotFoundError) as exc:
            failed += 1
            out.append({"study": s.name, "path": str(s.path), "error": str(exc)})
            if not args.json:
                print(f"[{s.name}] error: {exc}\n")
            continue
        out.append({"study": s.name, "path": str(s.path), **_study_dict(study)})
        if not args.json:
            print(f"[{s.name}] {study.summary()}\n")
    if args.json:
        print(json.dumps({"studies": out}, indent=2))
    else:
        print(f"{len(found)} studies in {path} ({failed} unreadable)")
    return 0 if not failed else 2


#: ``cardiacseg segment --fast``: one view, bfloat16 where the CPU/GPU has it natively (else float32), and a
#: 128-pixel (192 mm) crop that falls back to 192 pixels when the heart reaches its border. On the 15 ACDC
#: validation patients and both Sunnybrook studies the smaller crop changed mean 3D Dice by at most 0.002
#: per class for LV and MYO (docs/inference.md).
FAST_PRESET: dict[str, object] = {
    "tta": "none",
    "precision": "auto",
    "crop_size": 128,
    "crop_fallback_size": 192,
}


def _predictor(args: argparse.Namespace) -> SlicePredictorT:
    from cardiacseg.config import check_device
    from cardiacseg.inferers.predictor import SlicePredictor

    check_device(args.device)  # before the model is loaded: a clear message, not a CUDA traceback
    bundle, kwargs = _predictor_options(args)
    return SlicePredictor.from_bundle(bundle, device=args.device, **kwargs)


def _predictor_options(args: argparse.Namespace) -> tuple[Path, dict[str, object]]:
    """Return the bundle and the ``SlicePredictor.from_bundle`` options of segment's options (no device)."""
    from pathlib import Path

    from cardiacseg.demo import shipped_bundle_path
    from cardiacseg.postprocess import PostProcessor

    kwargs: dict[str, object] = {"batch_size": args.batch_size}
    if args.fast:  # the benchmarked speed preset; explicit options below take precedence
        kwargs.update(FAST_PRESET)
    if args.crop_size is not None:
        kwargs["crop_size"] = args.crop_size
    if args.crop_fallback is not None:
        kwargs["crop_fallback_size"] = args.crop_fallback or None
    if args.tta is not None:
        kwargs["tta"] = args.tta
    if args.precision is not None:
        kwargs["precision"] = args.precision
    if args.postprocess is not None:
        if not args.postprocess.strip():  # e.g. an unset shell variable: never a silent change of results
            raise ValueError("--postprocess is empty: name the steps, or 'none' for no post-processing")
        steps = [] if args.postprocess == "none" else args.postprocess.split(",")
        kwargs["postprocess"] = PostProcessor(steps)
    if args.weights:
        kwargs["weights"] = [Path(w) for w in args.weights]
    bundle = Path(args.bundle) if args.bundle else shipped_bundle_path()
    if args.network:
        kwargs["network_name"] = args.network
    return bundle, kwargs


def _positive_int(text: str) -> int:
    """Parse an integer of at least 1 (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _slice_classifier(args: argparse.Namespace) -> SliceRangeClassifierT:
    from pathlib import Path

    from cardiacseg.inferers.slice_range import SliceRangeClassifier, shipped_slice_range_bundle

    bundle = Path(args.slice_classifier) if args.slice_classifier else shipped_slice_range_bundle()
    return SliceRangeClassifier.from_bundle(bundle, device=args.device)


def _part(text: str | None) -> tuple[int, int] | None:
    """``--part K/N`` as ``(K, N)``."""
    if text is None:
        return None
    k, sep, n = text.partition("/")
    if not (sep and k.strip().isdigit() and n.strip().isdigit() and 1 <= int(k) <= int(n)):
        raise SystemExit(f"cardiacseg: error: --part must be K/N with 1 <= K <= N (e.g. 2/8), got {text!r}")
    return int(k), int(n)


def _cmd_merge(args: argparse.Namespace) -> int:
    from cardiacseg.workflows.segment import merge_batch_parts

    rows = merge_batch_parts(args.output, overwrite=args.overwrite)
    failed = [r for r in rows if r.get("status") == "failed"]
    print(f"merged {len(rows)} studies ({len(failed)} failed): {args.output}/batch_summary.csv")
    return 0 if not failed else 2


def _patient_options(args: argparse.Namespace) -> dict[str, Any]:
    """Body size and reference ranges for segment: --patient-info, --height-cm ..., --reference-ranges."""
    from cardiacseg.clinical.reference_ranges import load_reference_ranges
    from cardiacseg.io.patients import read_patient_table
    from cardiacseg.io.study import PatientInfo

    options: dict[str, Any] = {"bsa_formula": args.bsa_formula}
    if args.reference_ranges:
        options["reference_ranges"] = load_reference_ranges(args.reference_ranges)
    given = (args.height_cm, args.weight_kg, args.sex, args.age_years)
    if any(v is not None for v in given):
        if args.patient_info:
            raise SystemExit("cardiacseg: give --patient-info or --height-cm/--weight-kg/--sex/--age-years")
        if len(args.inputs) != 1:
            raise SystemExit(
                "cardiacseg: --height-cm/--weight-kg/--sex/--age-years describe one study; for several, "
                "use --patient-info TABLE.csv"
            )
        try:
            patient = PatientInfo(*given, source="given by the user")
            patient.check_plausible("--height-cm/--weight-kg/--age-years")
        except ValueError as exc:
            raise SystemExit(f"cardiacseg: error: {exc}") from exc
        options["patient"] = patient
    elif args.patient_info:
        options["patients"] = read_patient_table(args.patient_info)
    return options


def _cmd_segment(args: argparse.Namespace) -> int:
    _lean_monai()
    from cardiacseg.workflows.segment import segment_batch

    patient_options = _patient_options(args)
    part = _part(args.part)
    options: dict[str, Any] = {
        "overwrite": args.overwrite,
        "progress": not args.quiet,
        "slice_range": args.slice_range,
        "slice_classifier": _slice_classifier(args) if args.slice_range == "classifier" else None,
        "figures": not args.no_figures,
        "dicom_seg": args.dicom_seg,
        "dicom_sr": args.dicom_sr,
        "part": part,
        **patient_options,
    }
    if args.ray is not None:
        result = _segment_on_ray(args, options)
    else:
        result = segment_batch(args.inputs, args.output, _predictor(args), **options)
    summary = "batch_summary.csv" if part is None else f"batch_summary_part{part[0]}of{part[1]}.csv"
    print(
        f"segmented {len(result.done)}, skipped {len(result.skipped)} (already done), "
        f"failed {len(result.failed)}; summary: {args.output}/{summary}"
    )
    for name, msg in result.failed.items():
        print(f"cardiacseg: failed: {name}: {msg}", file=sys.stderr)
    return 0 if result.ok else 2


def _segment_on_ray(args: argparse.Namespace, options: dict[str, Any]) -> BatchResultT:
    """``segment --ray``: the cohort on Ray workers that each build the model once."""
    from functools import partial

    from cardiacseg.inferers.predictor import SlicePredictor
    from cardiacseg.workflows.cohort import segment_cohort

    if (args.ray_workers is not None and args.ray_workers < 1) or args.ray_cpus < 1:
        raise SystemExit("cardiacseg: error: --ray-workers and --ray-cpus must be at least 1")
    bundle, kwargs = _predictor_options(args)
    try:
        return segment_cohort(
            args.inputs,
            args.output,
            partial(SlicePredictor.from_bundle, bundle, **kwargs),
            address=None if args.ray == "local" else args.ray,
            num_workers=args.ray_workers,
            cpus_per_worker=args.ray_cpus,
            **options,
        )
    except (ImportError, ConnectionError) as exc:
        raise SystemExit(f"cardiacseg: error: {exc}") from exc


def _cmd_evaluate(args: argparse.Namespace) -> int:
    _lean_monai()
    from cardiacseg.workflows.evaluate import compare_cohort

    summary = compare_cohort(
        args.pred,
        args.ref,
        args.output,
        pred_convention=args.pred_labels,
        ref_convention=args.ref_labels,
        overwrite=args.overwrite,
        structures=args.structures.split(",") if args.structures else None,
        annotated_only=args.annotated_slices_only,
    )
    keys = ("n_studies", "scored_structures", "annotated_slices_only", "metrics", "indices", "failed")
    print(json.dumps({k: summary[k] for k in keys}, indent=2))
    return 0 if not summary["failed"] else 2


def _cmd_label_datastore(args: argparse.Namespace) -> int:
    _lean_monai()
    from cardiacseg.workflows.label_datastore import write_label_datastore

    def segment(study: CineStudyT) -> dict[int, Any]:
        # loaded only for a study that does not name its ED and ES phases
        from pathlib import Path

        from cardiacseg.config import check_device
        from cardiacseg.demo import shipped_bundle_path
        from cardiacseg.inferers.predictor import SlicePredictor

        if not predictors:
            check_device(args.device)
            bundle = Path(args.bundle) if args.bundle else shipped_bundle_path()
            predictors.append(SlicePredictor.from_bundle(bundle, device=args.device))
        return predictors[0].predict(study)

    predictors: list[SlicePredictorT] = []
    written = write_label_datastore(
        args.inputs,
        args.output,
        phases=args.phases,
        segment=segment,
        with_labels=args.with_labels,
        overwrite=args.overwrite,
        progress=None if args.quiet else print,
    )
    n_labelled = sum(w.labelled for w in written)
    print(f"wrote {len(written)} image(s) ({n_labelled} with labels) to {args.output}")
    return 0


def _cmd_label_app(args: argparse.Namespace) -> int:
    from cardiacseg.workflows.label_app import write_label_app

    app = write_label_app(args.app_dir, overwrite=args.overwrite)
    print(f"wrote the MONAI Label app to {app}; serve it with:")
    print(f"  monailabel start_server --app {app} --studies DATASTORE")
    return 0


def _cmd_pseudo_label(args: argparse.Namespace) -> int:
    _lean_monai()
    from cardiacseg.workflows.pseudo_label import (
        parse_tolerances,
        pseudo_label_cohort,
        read_id_map,
        read_reference_volumes,
    )

    # the tables are checked before the model loads: a bad one fails at once
    tolerances = parse_tolerances(args.tolerances)
    read_reference_volumes(args.reference, args.reference_units)
    if args.id_map:
        read_id_map(args.id_map)
    result = pseudo_label_cohort(
        args.inputs,
        args.output,
        _predictor(args),
        args.reference,
        reference_units=args.reference_units,
        id_map=args.id_map,
        tolerances=tolerances,
        overwrite=args.overwrite,
        progress=not args.quiet,
        figures=not args.no_figures,
    )
    summary = result.summary
    print(
        f"{summary['n_studies']} studies: {summary['n_compared']} compared, "
        f"{summary['n_not_comparable']} not comparable, {summary['n_failed']} failed "
        f"(volumes in {summary['units']})"
    )
    for name, s in summary["sets"].items():
        where = f"{args.output}/{s['datalist']}"
        print(f"  {name} (±{s['tolerance_percent']:g} %): {s['studies']} studies -> {where}")
    print(f"table: {result.table}")
    for c in result.studies:
        if c.status != "compared":
            print(f"cardiacseg: {c.status}: {c.study}: {c.reason}", file=sys.stderr)
    return 0 if result.ok else 2


def _add_pseudo_label_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``cardiacseg pseudo-label``: confidence sets of pseudo-labels (docs/pseudo-labels.md)."""
    pl = sub.add_parser(
        "pseudo-label",
        help="segment an unlabelled cohort, compare LV EDV/ESV with reference volumes (Kaggle DSB CSV) and "
        "write confidence sets p5/p10/p15 as datalists of images + pseudo-labels",
        description="Each study found in INPUT (as segment finds them) is matched to a row of the reference "
        "CSV (Id,Systole,Diastole) by the integer in its name or by --id-map, segmented into "
        "OUTPUT/segmentations (resumable), and put in the set pK when its predicted LV EDV and ESV both lie "
        "within ±K % of the reference. See docs/pseudo-labels.md.",
    )
    pl.add_argument("inputs", nargs="+", metavar="INPUT")
    pl.add_argument("--output", "-o", required=True, help="output folder (datalists, table, pseudo-labels)")
    pl.add_argument(
        "--reference",
        required=True,
        metavar="CSV",
        help="reference volumes, Kaggle Data Science Bowl format: Id,Systole,Diastole (or Id,Volume)",
    )
    pl.add_argument(
        "--reference-units",
        choices=["ml", "voxels"],
        default="ml",
        help="units of the reference volumes: ml, or voxels for studies without spacing (default: ml)",
    )
    pl.add_argument(
        "--id-map",
        metavar="CSV",
        help="table study,Id naming each study's reference Id (default: the one integer in the study name)",
    )
    pl.add_argument(
        "--tolerances",
        default="5,10,15",
        help="set tolerances in percent, comma-separated (default: 5,10,15, the paper's p5/p10/p15)",
    )
    pl.add_argument("--bundle", help="bundle folder with configs/ and models/ (default: the shipped model)")
    pl.add_argument(
        "--weights", nargs="+", help="state-dict file(s) instead of the bundle's (several: ensemble)"
    )
    pl.add_argument("--network", help="network name of --weights (default: the bundle's)")
    pl.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    pl.add_argument(
        "--batch-size", type=_positive_int, default=32, help="slices per forward pass (default: 32)"
    )
    pl.add_argument(
        "--tta", choices=["none", "flip", "flip_rot90"], help="test-time augmentation (default: the bundle's)"
    )
    pl.add_argument("--precision", choices=["fp32", "bf16", "auto"], help="network arithmetic (as segment)")
    pl.add_argument("--crop-size", type=int, help="heart crop side in pixels (as segment)")
    pl.add_argument(
        "--crop-fallback", type=int, help="crop side when the heart reaches the border (0: never)"
    )
    pl.add_argument("--fast", action="store_true", help="segment's speed preset (see segment --help)")
    pl.add_argument("--postprocess", help="comma-separated post-processing steps or 'none' (as segment)")
    pl.add_argument("--no-figures", action="store_true", help="do not write the segmentations' PNGs")
    pl.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished run's outputs (segmentations made by the same model are reused)",
    )
    pl.add_argument("--quiet", action="store_true", help="no progress bar")
    pl.set_defaults(func=_cmd_pseudo_label)


def _cmd_transfer(args: argparse.Namespace) -> int:
    from cardiacseg.workflows.transfer import run_transfer

    result = run_transfer(
        args.data,
        args.output,
        args.start,
        imagenet_weights=args.imagenet_weights,
        bundle=args.bundle,
        labelled=args.labelled,
        label_convention=args.label_convention,
        drop_unlabelled=args.drop_unlabelled,
        val_fraction=args.val_fraction,
        subjects=args.subjects,
        images=args.images,
        ed_es_only=args.ed_es_only,
        stage1_epochs=args.stage1_epochs,
        stage2_epochs=args.stage2_epochs,
        stage1_lr=args.stage1_lr,
        stage2_lr=args.stage2_lr,
        patience=args.patience,
        seed=args.seed,
        batch_size=args.batch_size,
        crop_size=args.crop_size,
        patch_size=args.patch_size,
        device=args.device,
        mlflow=not args.no_mlflow,
        overwrite=args.overwrite,
    )
    resumed = f", resumed from epoch {result.resumed_from}" if result.resumed_from else ""
    print(
        f"trained {result.epochs_run} epoch(s){resumed} on {result.train_images} images of "
        f"{len(result.train_patients)} patients; best validation mean Dice {result.best_val_dice} at epoch "
        f"{result.best_epoch}; bundle: {result.bundle} (cardiacseg segment --bundle {result.bundle} ...)"
    )
    return 0


def _add_transfer_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``cardiacseg transfer``: train a copy of the bundle on the user's data (docs/transfer.md)."""
    tr = sub.add_parser(
        "transfer",
        help="transfer the segmentation model to your own labelled data (R / TL / TL2 starts, subsets, "
        "partial labels); writes a bundle for segment --bundle",
        description="DATA is a MONAI datalist JSON, an ACDC-layout folder or the SSL4MIS HDF5 folder. "
        "Re-running the same command on an unfinished OUT resumes it. See docs/transfer.md.",
    )
    tr.add_argument("--data", required=True, help="datalist JSON, ACDC folder or SSL4MIS folder")
    tr.add_argument("--output", "-o", required=True, help="output bundle folder")
    tr.add_argument(
        "--start",
        choices=["random", "imagenet", "shipped"],
        default="shipped",
        help="initial weights: random (R), imagenet encoder (TL, needs --imagenet-weights) or the "
        "shipped model (TL2) (default: shipped)",
    )
    tr.add_argument(
        "--imagenet-weights",
        metavar="FILE",
        help="torchvision ResNet34 ImageNet state dict (.pth) for --start imagenet; nothing is downloaded",
    )
    tr.add_argument("--bundle", help="bundle to copy and start from (default: the shipped one)")
    tr.add_argument(
        "--labelled",
        default="lv,myo,rv",
        help="structures the labels contain, comma-separated from lv, myo, rv (default: lv,myo,rv)",
    )
    tr.add_argument(
        "--label-convention",
        choices=["internal", "acdc"],
        help="label values of a datalist: internal (1 LV, 2 MYO, 3 RV; default) or acdc (1 RV, 2 MYO, 3 LV)",
    )
    tr.add_argument(
        "--drop-unlabelled",
        action="store_true",
        help="set label values of structures not in --labelled to 0 instead of refusing them",
    )
    tr.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="patients held out for validation without a validation section (default: 0.2)",
    )
    tr.add_argument("--subjects", type=int, help="train on N whole subjects (nested subsets)")
    tr.add_argument("--images", type=int, help="train on N random images (2D slices; nested subsets)")
    tr.add_argument("--ed-es-only", action="store_true", help="train on ED and ES images only")
    tr.add_argument(
        "--stage1-epochs", type=int, default=10, help="epochs with the encoder frozen (default: 10)"
    )
    tr.add_argument(
        "--stage2-epochs", type=int, default=20, help="epochs fine-tuning everything (default: 20)"
    )
    tr.add_argument("--stage1-lr", type=float, default=1e-4, help="stage 1 learning rate (default: 0.0001)")
    tr.add_argument("--stage2-lr", type=float, default=1e-5, help="stage 2 learning rate (default: 1e-05)")
    tr.add_argument(
        "--patience", type=int, default=6, help="stop after N validations without improvement (default: 6)"
    )
    tr.add_argument("--seed", type=int, default=0, help="seed of split, subsets and training (default: 0)")
    tr.add_argument("--batch-size", type=int, default=16, help="training batch size (default: 16)")
    tr.add_argument("--crop-size", type=int, default=160, help="heart crop side in pixels (default: 160)")
    tr.add_argument(
        "--patch-size", type=int, default=128, help="training patch side in pixels (default: 128)"
    )
    tr.add_argument("--device", help="torch device (default: cuda:0 when available, else cpu)")
    tr.add_argument("--no-mlflow", action="store_true", help="do not track the run with MLflow")
    tr.add_argument(
        "--overwrite",
        action="store_true",
        help="delete a finished transfer (or an unfinished one with other options) in --output first",
    )
    tr.set_defaults(func=_cmd_transfer)


def _cmd_transfer_experiment(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from cardiacseg.workflows.transfer_experiment import run_transfer_experiment

    stop_at = None
    if args.stop_at:
        stop_at = datetime.fromisoformat(args.stop_at)
        if stop_at.tzinfo is None:
            stop_at = stop_at.replace(tzinfo=timezone.utc)
    result = run_transfer_experiment(
        args.spec,
        args.output,
        device=args.device,
        mlflow=not args.no_mlflow,
        stop_at=stop_at,
        arms=args.arms.split(",") if args.arms else None,
        dry_run=args.dry_run,
    )
    for arm in result.arms:
        state = (
            "trained"
            if arm.name in result.trained
            else "finished before"
            if arm.name in result.skipped
            else "pending"
            if arm.name in result.pending
            else "not selected"
        )
        print(
            f"{arm.name}: {arm.train_images} images x {arm.epochs} epochs "
            f"({arm.stage1_epochs} + {arm.stage2_epochs}): {state}"
        )
    print(f"learning curves and summary: {result.output}")
    return 0


def _add_transfer_experiment_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``cardiacseg transfer-experiment``: the data-requirement grid (docs/transfer.md)."""
    te = sub.add_parser(
        "transfer-experiment",
        help="train a grid of transfer runs (start x subset x size x seed) with an equal budget of images "
        "seen; writes learning curves (CSV, PNG) and start/convergence/peak per arm",
        description="SPEC is a YAML experiment spec (docs/transfer.md). Re-running the same command "
        "continues a killed grid: finished arms are skipped, an unfinished arm resumes.",
    )
    te.add_argument("spec", metavar="SPEC", help="YAML experiment spec")
    te.add_argument("--output", "-o", required=True, help="experiment folder (arms, curves, summary)")
    te.add_argument("--device", help="torch device (default: cuda:0 when available, else cpu)")
    te.add_argument("--no-mlflow", action="store_true", help="do not track the arms with MLflow")
    te.add_argument(
        "--stop-at",
        metavar="TIME",
        help="start no arm after this ISO time (UTC unless it has an offset); the rest stays pending",
    )
    te.add_argument("--arms", help="comma-separated arm names to train (all when not given)")
    te.add_argument("--dry-run", action="store_true", help="list the arms and their epochs, train nothing")
    te.set_defaults(func=_cmd_transfer_experiment)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``cardiacseg`` argument parser.

    Returns:
        The parser with its sub-commands.

    Example:
        >>> build_parser().parse_args(["demo", "--output", "out"]).output
        'out'

    """
    parser = argparse.ArgumentParser(
        prog="cardiacseg",
        description="Cardiac cine MRI segmentation and "
        "clinical indices (LV, MYO, RV; EDV, ESV, EF, LV mass).",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="report on the packaged Sunnybrook sample study")
    demo.add_argument("--output", "-o", default="demo_output", help="output folder (default: demo_output)")
    demo.add_argument("--overwrite", action="store_true", help="replace files of an earlier run")
    demo.set_defaults(func=_cmd_demo)
    info = sub.add_parser(
        "info",
        help="read a study (DICOM folder or file, ACDC folder, NIfTI) and describe it; a folder of several "
        "studies (patients) describes each, as segment would see them",
    )
    info.add_argument("path")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=_cmd_info)

    seg = sub.add_parser(
        "segment",
        help="segment studies: labels on the input grid, report.json/csv, montage and volume-curve PNGs",
        description="INPUT is a DICOM folder, a NIfTI file (3D or 4D), an ACDC patient folder, or a folder "
        "of such studies. Finished studies are skipped (resumable); a failing study is reported and the "
        "batch goes on (exit code 2).",
    )
    seg.add_argument("inputs", nargs="+", metavar="INPUT")
    seg.add_argument("--output", "-o", required=True, help="output folder (one sub-folder per study)")
    seg.add_argument("--bundle", help="bundle folder with configs/ and models/ (default: the shipped model)")
    seg.add_argument(
        "--weights", nargs="+", help="state-dict file(s) instead of the bundle's (several: ensemble)"
    )
    seg.add_argument("--network", help="network name of --weights (default: the bundle's)")
    seg.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    seg.add_argument(
        "--batch-size", type=_positive_int, default=32, help="slices per forward pass (default: 32)"
    )
    seg.add_argument(
        "--tta", choices=["none", "flip", "flip_rot90"], help="test-time augmentation (default: the bundle's)"
    )
    seg.add_argument(
        "--precision",
        choices=["fp32", "bf16", "auto"],
        help="network arithmetic (default: the bundle's, fp32 for the shipped model; bf16 is about 1.5x "
        "faster on CPUs with native bfloat16; auto: bf16 where native)",
    )
    seg.add_argument(
        "--crop-size",
        type=int,
        help="heart crop side in pixels at the model's spacing (default: the bundle's)",
    )
    seg.add_argument(
        "--crop-fallback",
        type=int,
        help="redo a study with a crop of this side when its heart reaches the crop border (0: never; "
        "default: the bundle's)",
    )
    seg.add_argument(
        "--fast",
        action="store_true",
        help="speed preset: --tta none --precision auto --crop-size 128 --crop-fallback 192 (2.7-3.6x "
        "faster than plain slice-wise inference on a 2-core CPU with native bfloat16; see docs/inference.md)",
    )
    seg.add_argument(
        "--postprocess",
        help="comma-separated steps (fill_holes, lcc_volume, lcc_slice, lcc_volume_lv, lcc_volume_myo, "
        "lcc_volume_rv, rv_without_lv, rv_far_from_lv) or 'none' (default: the steps chosen on validation "
        "data, recorded in the bundle)",
    )
    seg.add_argument(
        "--slice-range",
        choices=["all", "segmentation", "classifier"],
        default="all",
        help="slices counted in LV volumes: all (default), those inside the LV by the segmentation rule, or "
        "those the slice-range classifier calls IN (OAP/OBS slices dropped; the report lists them and why)",
    )
    seg.add_argument(
        "--slice-classifier",
        metavar="BUNDLE",
        help="slice-range classifier bundle for --slice-range classifier (default: the shipped one)",
    )
    seg.add_argument(
        "--dicom-seg",
        action="store_true",
        help="also write a DICOM Segmentation per phase (dicom_seg/, one SEG series referencing the source "
        "images; DICOM input only; needs highdicom)",
    )
    seg.add_argument(
        "--dicom-sr",
        action="store_true",
        help="also write a DICOM SR measurement report (TID 1500, dicom_sr.dcm) referencing the SEG (implies "
        "--dicom-seg)",
    )
    seg.add_argument(
        "--height-cm", type=float, help="patient height (cm), over what the source states; one study only"
    )
    seg.add_argument(
        "--weight-kg", type=float, help="patient weight (kg), over what the source states; one study only"
    )
    seg.add_argument("--sex", choices=["M", "F"], help="patient sex for the reference ranges; one study only")
    seg.add_argument("--age-years", type=float, help="patient age (years); one study only")
    seg.add_argument(
        "--patient-info",
        metavar="CSV",
        help="table of study,height_cm,weight_kg,sex,age_years for a batch (study = the output folder name)",
    )
    seg.add_argument(
        "--bsa-formula",
        choices=["mosteller", "du_bois"],
        default="mosteller",
        help="body surface area formula for indexed volumes (default: mosteller)",
    )
    seg.add_argument(
        "--reference-ranges",
        metavar="JSON",
        help="your laboratory's adult reference ranges (format: docs/inference.md; default: the shipped, "
        "published ranges)",
    )
    seg.add_argument("--no-figures", action="store_true", help="do not write the PNGs")
    seg.add_argument("--overwrite", action="store_true", help="re-segment finished studies")
    seg.add_argument(
        "--part",
        metavar="K/N",
        help="segment only part K of N of the studies (every N-th from the K-th, in sorted order) for "
        "schedulers without Ray; writes batch_summary_partKofN.csv; join with `cardiacseg merge`",
    )
    seg.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="segment on a Ray cluster, one model per worker, a GPU each when the cluster has GPUs "
        "(pip install cardiacseg[ray]): alone, a local Ray instance on this machine; with ADDRESS "
        "(HOST:PORT, or auto for the cluster `ray start` joined here), that cluster; OUTPUT must be on a "
        "filesystem every node sees (docs/scale.md)",
    )
    seg.add_argument(
        "--ray-workers",
        type=int,
        metavar="N",
        help="Ray workers to start (default: one per GPU if the cluster has GPUs, else CPUs / --ray-cpus)",
    )
    seg.add_argument("--ray-cpus", type=int, default=1, metavar="C", help="CPUs per Ray worker (default: 1)")
    seg.add_argument("--quiet", action="store_true", help="no progress bar")
    seg.set_defaults(func=_cmd_segment)

    merge = sub.add_parser(
        "merge",
        help="join the batch summaries of `segment --part K/N` runs into batch_summary.csv/json",
        description="OUTPUT is the folder the parts wrote to; every part 1..N must have finished.",
    )
    merge.add_argument("output", metavar="OUTPUT")
    merge.add_argument("--overwrite", action="store_true", help="replace an existing batch_summary.csv/json")
    merge.set_defaults(func=_cmd_merge)

    ev = sub.add_parser(
        "evaluate",
        help="compare predicted labels with references: Dice/HD95/MSD, EF/EDV/ESV errors, Bland-Altman PNG",
        description="PRED and REF are label NIfTI files, `cardiacseg segment` output folders, ACDC patient "
        "folders (REF), or folders of them paired by study name.",
    )
    ev.add_argument("pred", metavar="PRED")
    ev.add_argument("ref", metavar="REF")
    ev.add_argument("--output", "-o", default="evaluation", help="output folder (default: evaluation)")
    ev.add_argument(
        "--pred-labels", choices=["internal", "acdc"], default="internal", help="label values of PRED"
    )
    ev.add_argument(
        "--ref-labels", choices=["internal", "acdc"], default="internal", help="label values of REF"
    )
    ev.add_argument(
        "--structures",
        help="comma-separated structures to score, e.g. lv,myo for LV-only contours (default: lv,myo,rv); "
        "the others are NaN",
    )
    ev.add_argument(
        "--annotated-slices-only",
        action="store_true",
        help="score only slices where the reference has a label (partly contoured references)",
    )
    ev.add_argument("--overwrite", action="store_true", help="replace earlier outputs")
    ev.set_defaults(func=_cmd_evaluate)

    lds = sub.add_parser(
        "label-datastore",
        help="write a MONAI Label datastore (one NIfTI per short-axis phase) from DICOM/NIfTI/ACDC studies",
        description="Every study found in INPUT (as segment finds them) becomes 3D NIfTI images "
        "<study>_t<NN>[_ED|_ES].nii.gz in OUTPUT; see docs/monai-label.md.",
    )
    lds.add_argument("inputs", nargs="+", metavar="INPUT")
    lds.add_argument("--output", "-o", required=True, help="the datastore folder")
    lds.add_argument(
        "--phases",
        choices=["ed-es", "all"],
        default="ed-es",
        help="ED and ES only (default; found with the shipped model when the study does not name them) "
        "or every phase",
    )
    lds.add_argument(
        "--with-labels",
        action="store_true",
        help="also write a study's own labels (ACDC _gt files) to labels/final as finished annotations",
    )
    lds.add_argument("--bundle", help="segmentation bundle used to find ED/ES (default: the shipped model)")
    lds.add_argument("--device", default="cpu", help="torch device for finding ED/ES (default: cpu)")
    lds.add_argument("--overwrite", action="store_true", help="replace images written before")
    lds.add_argument("--quiet", action="store_true", help="no line per study")
    lds.set_defaults(func=_cmd_label_datastore)

    lapp = sub.add_parser(
        "label-app",
        help="write the cardiacseg MONAI Label app (infer, train, active learning) to a folder",
        description="Writes APP_DIR/main.py and a copy of the segmentation bundle; serve it with "
        "`monailabel start_server --app APP_DIR --studies DATASTORE` (see docs/monai-label.md).",
    )
    lapp.add_argument("app_dir", metavar="APP_DIR")
    lapp.add_argument(
        "--overwrite", action="store_true", help="rewrite an existing app (trained weights kept in history)"
    )
    lapp.set_defaults(func=_cmd_label_app)
    _add_pseudo_label_parser(sub)
    _add_transfer_parser(sub)
    _add_transfer_experiment_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI.

    Args:
        argv: arguments (default: ``sys.argv[1:]``).

    Returns:
        Process exit code: 0 on success, 1 on an input error (printed without a traceback), 130 when
        interrupted (Ctrl-C, or SIGTERM from a scheduler: outputs being written are removed, finished
        studies and the batch summary so far are kept; the same command resumes).

    Example:
        >>> main(["--version"])  # doctest: +SKIP

    """
    args = build_parser().parse_args(argv)
    import signal
    import threading
    import warnings  # after parsing: --help and --version need nothing more

    warnings.filterwarnings("ignore", message="Invalid value for VR UI")
    main_thread = threading.current_thread() is threading.main_thread()
    # SIGTERM (Slurm's time limit, `kill`) unwinds like Ctrl-C, so no half-written file is left behind
    before = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    before = signal.SIG_DFL if before is None else before
    try:
        code: int = args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError) as exc:
        print(f"cardiacseg: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "cardiacseg: interrupted; finished studies are kept: run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, before)
    return code


def _interrupt(signum: int, frame: object) -> None:
    """Raise :class:`KeyboardInterrupt` on SIGTERM, as Ctrl-C does."""
    raise KeyboardInterrupt(f"signal {signum}")
