"""The data-requirement experiment: a grid of transfer runs and their learning curves (7T paper, Fig. 6).

``cardiacseg transfer-experiment SPEC.yaml`` (or :func:`run_transfer_experiment`) expands a YAML spec into
arms, start x subset type x subset size x seed, and trains each arm with
:func:`~cardiacseg.workflows.transfer.run_transfer` into ``OUT/arms/<arm>/``. Every arm sees the same
training budget in images (``epochs = max(min_epochs, ceil(budget_images / training images))``, capped by
``max_epochs``), so small subsets get more epochs, as in the paper. After every arm the runner rewrites
``OUT/learning_curves.csv`` (validation Dice against images seen, per epoch), ``OUT/summary.csv`` and
``summary.json`` (start point, convergence point and peak per arm) and the figures
``OUT/learning_curves_raw.png`` and ``OUT/learning_curves_smoothed.png``.

Rules (see docs/transfer.md, "The data-requirement experiment"):

- **start point**: the validation Dice after the first epoch;
- **peak**: the highest validation mean Dice, and the images seen at its first occurrence;
- **convergence point**: the images seen at the first epoch whose mean Dice reaches
  ``convergence_fraction`` (default 0.95) of the arm's peak (raw, unsmoothed values);
- **smoothing** (smoothed figure only): a trailing moving average over ``smooth_window`` epochs
  (default 3; fewer at the start of a curve).

The grid resumes: an arm whose ``transfer/run.json`` says ``finished`` is skipped (its options are
checked against the spec), an unfinished arm resumes through ``run_transfer``'s own resume, and arms not
yet started are trained in order.

Example:
    >>> result = run_transfer_experiment("spec.yaml", "out")  # doctest: +SKIP
    >>> [a.name for a in result.arms]  # doctest: +SKIP
    ['R_subjects1_s0', 'TL2_subjects1_s0', ...]

"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cardiacseg.typing import PathLike

logger = logging.getLogger(__name__)

__all__ = [
    "ArmSpec",
    "ExperimentResult",
    "ExperimentSpec",
    "ValidateAtEpochs",
    "arm_summary",
    "epochs_for_budget",
    "expand_grid",
    "load_experiment_spec",
    "moving_average",
    "run_transfer_experiment",
    "structure_output_transform",
    "validation_epochs",
    "write_experiment_report",
]

STRUCTURES = {1: "lv", 2: "myo", 3: "rv"}
SUBSET_TYPES = ("subjects", "images")
_START_KINDS = ("random", "imagenet", "shipped")
_SPEC_KEYS = {
    "name",
    "data",
    "label_convention",
    "labelled",
    "drop_unlabelled",
    "val_fraction",
    "ed_es_only",
    "starts",
    "subsets",
    "sizes",
    "seeds",
    "budget_images",
    "min_epochs",
    "max_epochs",
    "stage1_fraction",
    "stage1_lr",
    "stage2_lr",
    "patience",
    "batch_size",
    "crop_size",
    "patch_size",
    "convergence_fraction",
    "smooth_window",
    "order",
    "validations",
}


@dataclass(frozen=True)
class StartSpec:
    """One starting point of the grid.

    Attributes:
        label: the name in arm names and figures (e.g. ``R``, ``TL``, ``TL2``).
        start: ``run_transfer``'s start: ``random``, ``imagenet`` or ``shipped``.
        bundle: the bundle to start from (``None``: the shipped one).
        imagenet_weights: the ImageNet ResNet34 state dict for ``imagenet``.

    """

    label: str
    start: str
    bundle: Path | None = None
    imagenet_weights: Path | None = None


@dataclass(frozen=True)
class ExperimentSpec:
    """A parsed experiment spec (see :func:`load_experiment_spec` for the YAML keys).

    Attributes:
        name: the MLflow experiment name of the arms.
        data: datalist JSON or folder (as ``run_transfer``'s ``data``).
        starts: the starting points.
        subsets: subset types, ``subjects`` and/or ``images``.
        sizes: subset sizes in subjects (``None`` = all); ``images`` arms take the image count of the
            same-seed ``subjects`` subset of that size (``all`` is not repeated for ``images``).
        seeds: seeds of subsets, split and training.
        budget_images: training images each arm sees (sets the epochs).
        options: the remaining ``run_transfer`` options and rules (see the YAML keys).

    """

    name: str
    data: Path
    starts: tuple[StartSpec, ...]
    subsets: tuple[str, ...]
    sizes: tuple[int | None, ...]
    seeds: tuple[int, ...]
    budget_images: int
    label_convention: str | None = None
    labelled: tuple[str, ...] = ("lv", "myo", "rv")
    drop_unlabelled: bool = False
    val_fraction: float = 0.2
    ed_es_only: bool = False
    min_epochs: int = 2
    max_epochs: int | None = None
    stage1_fraction: float = 1.0 / 3.0
    stage1_lr: float = 1e-4
    stage2_lr: float = 1e-5
    patience: int | None = None
    batch_size: int = 16
    crop_size: int = 160
    patch_size: int = 128
    convergence_fraction: float = 0.95
    smooth_window: int = 3
    order: tuple[str, ...] = ()
    validations: int | None = None


@dataclass(frozen=True)
class ArmSpec:
    """One arm of the grid: the options of one ``run_transfer`` call.

    Attributes:
        name: ``<start>_<subset><size>_s<seed>``, e.g. ``TL2_subjects3_s0`` or ``R_imagesall_s0``.
        start: the start's label.
        subset: ``subjects`` or ``images``.
        size: the size in subjects (``None`` = all).
        seed: the seed.
        subjects: ``run_transfer``'s ``subjects``.
        images: ``run_transfer``'s ``images`` (the count matched to ``size`` subjects).
        train_images: training images of the arm.
        epochs: total epochs (from the budget).
        stage1_epochs: epochs of stage 1 (encoder frozen for TL/TL2; same learning rate for R).
        stage2_epochs: epochs of stage 2.
        val_epochs: the epochs after which the arm is validated (all when the spec has no
            ``validations``).

    """

    name: str
    start: str
    subset: str
    size: int | None
    seed: int
    subjects: int | None
    images: int | None
    train_images: int
    epochs: int
    stage1_epochs: int
    stage2_epochs: int
    val_epochs: tuple[int, ...] = ()

    @property
    def size_label(self) -> str:
        """The size as written in names and tables (``all`` for ``None``)."""
        return "all" if self.size is None else str(self.size)


@dataclass
class ExperimentResult:
    """What :func:`run_transfer_experiment` did.

    Attributes:
        output: the experiment folder.
        arms: every arm of the grid, in training order.
        trained: arms trained (or resumed) in this call.
        skipped: arms already finished before this call.
        pending: arms not started because the deadline passed.
        summary: one row per arm with a history (see :func:`arm_summary`).
        seconds: wall time of each arm trained in this call.

    """

    output: Path
    arms: list[ArmSpec]
    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _size(value: Any, where: str) -> int | None:
    if isinstance(value, str) and value.lower() == "all":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: subset sizes are positive integers or 'all', got {value!r}")
    return value


def load_experiment_spec(path: PathLike) -> ExperimentSpec:
    """Read and check a YAML experiment spec.

    Keys (paths relative to the spec file): ``name`` (MLflow experiment), ``data`` (datalist JSON or
    folder), ``starts`` (mapping label -> ``{start: random|imagenet|shipped, bundle?, imagenet_weights?}``),
    ``subsets`` (``[subjects, images]``), ``sizes`` (e.g. ``[1, 3, 7, all]``), ``seeds``,
    ``budget_images``; optional: ``labelled``, ``label_convention``, ``drop_unlabelled``,
    ``val_fraction``, ``ed_es_only``, ``min_epochs`` (2), ``max_epochs``, ``stage1_fraction`` (1/3),
    ``stage1_lr``, ``stage2_lr``, ``patience`` (default: no early stopping), ``batch_size``,
    ``crop_size``, ``patch_size``, ``convergence_fraction`` (0.95), ``smooth_window`` (3), ``order``
    (``subset:size`` strings trained first, in that order, e.g. ``[subjects:1, subjects:all]``).

    Args:
        path: the YAML file.

    Returns:
        The parsed :class:`ExperimentSpec`.

    Raises:
        FileNotFoundError: no such spec file.
        ValueError: unknown keys, missing keys or bad values (the key is named).

    Example:
        >>> spec = load_experiment_spec("acdc_pathology.yaml")  # doctest: +SKIP

    """
    import yaml  # type: ignore[import-untyped]

    spec_path = Path(path).resolve()
    if not spec_path.is_file():
        raise FileNotFoundError(f"{spec_path}: experiment spec not found")
    raw = yaml.safe_load(spec_path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{spec_path}: an experiment spec is a YAML mapping")
    unknown = sorted(set(raw) - _SPEC_KEYS)
    if unknown:
        raise ValueError(f"{spec_path}: unknown keys {unknown} (known: {sorted(_SPEC_KEYS)})")
    missing = [k for k in ("data", "starts", "subsets", "sizes", "budget_images") if k not in raw]
    if missing:
        raise ValueError(f"{spec_path}: missing keys {missing}")
    base = spec_path.parent

    def rel(value: Any) -> Path:
        return (base / str(value)).resolve()

    starts_raw = raw["starts"]
    if not isinstance(starts_raw, dict) or not starts_raw:
        raise ValueError(f"{spec_path}: 'starts' maps labels to {{start: ..., bundle: ...}}")
    starts = []
    for label, options in starts_raw.items():
        options = options or {}
        kind = str(options.get("start", ""))
        if kind not in _START_KINDS:
            raise ValueError(f"{spec_path}: starts.{label}.start must be one of {_START_KINDS}, got {kind!r}")
        extra = sorted(set(options) - {"start", "bundle", "imagenet_weights"})
        if extra:
            raise ValueError(f"{spec_path}: starts.{label}: unknown keys {extra}")
        bundle = rel(options["bundle"]) if options.get("bundle") else None
        weights = rel(options["imagenet_weights"]) if options.get("imagenet_weights") else None
        starts.append(StartSpec(str(label), kind, bundle, weights))
    subsets = tuple(str(s) for s in raw["subsets"])
    if not subsets or any(s not in SUBSET_TYPES for s in subsets):
        raise ValueError(f"{spec_path}: subsets must be a non-empty list from {SUBSET_TYPES}, got {subsets}")
    sizes = tuple(_size(v, f"{spec_path}: sizes") for v in raw["sizes"])
    if not sizes:
        raise ValueError(f"{spec_path}: sizes is empty")
    seeds = tuple(int(s) for s in raw.get("seeds", [0]))
    budget = raw["budget_images"]
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"{spec_path}: budget_images must be a positive integer, got {budget!r}")
    labelled = raw.get("labelled", ["lv", "myo", "rv"])
    labelled = tuple(labelled.split(",")) if isinstance(labelled, str) else tuple(str(x) for x in labelled)
    spec = ExperimentSpec(
        name=str(raw.get("name", spec_path.stem)),
        data=rel(raw["data"]),
        starts=tuple(starts),
        subsets=subsets,
        sizes=sizes,
        seeds=seeds,
        budget_images=budget,
        label_convention=raw.get("label_convention"),
        labelled=labelled,
        drop_unlabelled=bool(raw.get("drop_unlabelled", False)),
        val_fraction=float(raw.get("val_fraction", 0.2)),
        ed_es_only=bool(raw.get("ed_es_only", False)),
        min_epochs=int(raw.get("min_epochs", 2)),
        max_epochs=None if raw.get("max_epochs") is None else int(raw["max_epochs"]),
        stage1_fraction=float(raw.get("stage1_fraction", 1.0 / 3.0)),
        stage1_lr=float(raw.get("stage1_lr", 1e-4)),
        stage2_lr=float(raw.get("stage2_lr", 1e-5)),
        patience=None if raw.get("patience") is None else int(raw["patience"]),
        batch_size=int(raw.get("batch_size", 16)),
        crop_size=int(raw.get("crop_size", 160)),
        patch_size=int(raw.get("patch_size", 128)),
        convergence_fraction=float(raw.get("convergence_fraction", 0.95)),
        smooth_window=int(raw.get("smooth_window", 3)),
        order=tuple(str(o) for o in raw.get("order", [])),
        validations=None if raw.get("validations") is None else int(raw["validations"]),
    )
    if not 0.0 <= spec.stage1_fraction <= 1.0:
        raise ValueError(f"{spec_path}: stage1_fraction must lie in [0, 1], got {spec.stage1_fraction}")
    if not 0.0 < spec.convergence_fraction <= 1.0:
        raise ValueError(f"{spec_path}: convergence_fraction must lie in (0, 1]")
    if spec.min_epochs < 1 or (spec.max_epochs is not None and spec.max_epochs < spec.min_epochs):
        raise ValueError(f"{spec_path}: need 1 <= min_epochs <= max_epochs")
    if spec.smooth_window < 1:
        raise ValueError(f"{spec_path}: smooth_window must be >= 1")
    if spec.validations is not None and spec.validations < 2:
        raise ValueError(f"{spec_path}: validations must be >= 2 (the first and the last epoch)")
    return spec


def epochs_for_budget(
    train_images: int,
    budget_images: int,
    min_epochs: int = 2,
    max_epochs: int | None = None,
    stage1_fraction: float = 1.0 / 3.0,
) -> tuple[int, int, int]:
    """Epochs that give an arm ``budget_images`` training images seen.

    ``epochs = max(min_epochs, ceil(budget_images / train_images))``, then at most ``max_epochs``;
    stage 1 takes ``round(epochs * stage1_fraction)`` of them (at least 1 when the fraction is positive
    and at most ``epochs - 1`` when it is below 1), stage 2 the rest.

    Args:
        train_images: training images (2D slices) of the arm.
        budget_images: images to see in all.
        min_epochs: fewest epochs.
        max_epochs: most epochs (``None``: no cap; a cap breaks the equal budget for the smallest arms).
        stage1_fraction: share of the epochs in stage 1.

    Returns:
        ``(epochs, stage1_epochs, stage2_epochs)``.

    Raises:
        ValueError: non-positive counts.

    Example:
        >>> epochs_for_budget(20, 1000)
        (50, 17, 33)
        >>> epochs_for_budget(400, 1000)
        (3, 1, 2)

    """
    if train_images < 1 or budget_images < 1:
        raise ValueError(
            f"train_images and budget_images must be positive, got {train_images}, {budget_images}"
        )
    epochs = max(min_epochs, math.ceil(budget_images / train_images))
    if max_epochs is not None:
        epochs = min(epochs, max_epochs)
    stage1 = round(epochs * stage1_fraction)
    if stage1_fraction > 0:
        stage1 = max(stage1, 1)
    if stage1_fraction < 1:
        stage1 = min(stage1, epochs - 1)
    stage1 = max(0, min(stage1, epochs))
    return epochs, stage1, epochs - stage1


def validation_epochs(epochs: int, validations: int | None) -> tuple[int, ...]:
    """Epochs to validate: all, or about ``validations`` evenly spaced ones including the first and last.

    Args:
        epochs: the arm's epochs.
        validations: validation points wanted (``None``: every epoch).

    Returns:
        Sorted epoch numbers (1-based).

    Example:
        >>> validation_epochs(10, 4)
        (1, 4, 7, 10)
        >>> validation_epochs(3, 8)
        (1, 2, 3)

    """
    if validations is None or validations >= epochs:
        return tuple(range(1, epochs + 1))
    points = {1 + round(k * (epochs - 1) / (validations - 1)) for k in range(validations)}
    return tuple(sorted(points))


class ValidateAtEpochs:
    """Run the validator after the given epochs only (the experiment's ``validations`` option).

    Replaces MONAI's ``ValidationHandler`` in an arm's bundle so that arms with many short epochs (small
    subsets under an equal budget of images seen) are validated about as often as the others.

    Args:
        validator: the evaluator.
        epochs: 1-based epochs after which to validate.

    Example:
        >>> ValidateAtEpochs(evaluator, [1, 5, 10]).attach(trainer)  # doctest: +SKIP

    """

    def __init__(self, validator: Any, epochs: Sequence[int]) -> None:
        self.validator = validator
        self.epochs = frozenset(int(e) for e in epochs)

    def attach(self, engine: Any) -> None:
        """Register with the trainer.

        Args:
            engine: the Ignite trainer.

        """
        from ignite.engine import Events

        event = Events.EPOCH_COMPLETED(event_filter=lambda _, epoch: epoch in self.epochs)
        engine.add_event_handler(event, self)

    def __call__(self, engine: Any) -> None:
        """Validate now.

        Args:
            engine: the trainer.

        """
        self.validator.run(engine.state.epoch)


def _arm_name(start: str, subset: str, size: int | None, seed: int) -> str:
    return f"{start}_{subset}{'all' if size is None else size}_s{seed}"


def expand_grid(
    spec: ExperimentSpec, count_images: Callable[[int | None, int], int] | None = None
) -> list[ArmSpec]:
    """Expand a spec into its arms, in training order, with their epochs.

    Seed by seed; within a seed the spec's ``order`` (``subset:size`` strings) first, then subset types
    and sizes as given; within one subset and size every start in spec order. ``images`` arms of size
    ``all`` are left out (the same data as ``subjects`` ``all``).

    Args:
        spec: the parsed spec.
        count_images: ``(subjects, seed) -> training images`` (default: read from the data with
            :func:`~cardiacseg.workflows.transfer.select_transfer_data`).

    Returns:
        The arms.

    Raises:
        ValueError: a size larger than the training part, or an ``order`` entry not in the grid.

    Example:
        >>> arms = expand_grid(load_experiment_spec("spec.yaml"))  # doctest: +SKIP

    """
    counter = count_images or _image_counter(spec)
    keys: list[tuple[int, str, int | None]] = []
    for seed in spec.seeds:
        for subset in spec.subsets:
            for size in spec.sizes:
                if subset == "images" and size is None:
                    continue
                keys.append((seed, subset, size))
    wanted = {f"{s}:{'all' if n is None else n}" for _, s, n in keys}
    bad = [o for o in spec.order if o not in wanted]
    if bad:
        raise ValueError(f"order entries {bad} are not in the grid ({sorted(wanted)})")

    def rank(key: tuple[int, str, int | None]) -> int:
        tag = f"{key[1]}:{'all' if key[2] is None else key[2]}"
        return spec.order.index(tag) if tag in spec.order else len(spec.order)

    keys = sorted(keys, key=lambda k: (spec.seeds.index(k[0]), rank(k), keys.index(k)))
    arms = []
    for seed, subset, size in keys:
        n_images = counter(size, seed)
        epochs, stage1, stage2 = epochs_for_budget(
            n_images, spec.budget_images, spec.min_epochs, spec.max_epochs, spec.stage1_fraction
        )
        for start in spec.starts:
            arms.append(
                ArmSpec(
                    name=_arm_name(start.label, subset, size, seed),
                    start=start.label,
                    subset=subset,
                    size=size,
                    seed=seed,
                    subjects=size if subset == "subjects" else None,
                    images=n_images if subset == "images" else None,
                    train_images=n_images,
                    epochs=epochs,
                    stage1_epochs=stage1,
                    stage2_epochs=stage2,
                    val_epochs=validation_epochs(epochs, spec.validations),
                )
            )
    return arms


def _image_counter(spec: ExperimentSpec) -> Callable[[int | None, int], int]:
    from cardiacseg.workflows.transfer import parse_labelled, resolve_transfer_data, select_transfer_data

    source = resolve_transfer_data(spec.data, spec.label_convention)
    classes = parse_labelled(spec.labelled)
    cache: dict[tuple[int | None, int], int] = {}

    def count(subjects: int | None, seed: int) -> int:
        if (subjects, seed) not in cache:
            _, summary = select_transfer_data(
                source,
                spec.val_fraction,
                subjects,
                None,
                spec.ed_es_only,
                classes,
                spec.drop_unlabelled,
                seed,
            )
            cache[(subjects, seed)] = int(summary["train_images"])
        return cache[(subjects, seed)]

    return count


def structure_output_transform(channel: int) -> Callable[[Any], tuple[list[Any], list[Any]]]:
    """Make an Ignite output transform giving one structure's one-hot channel (and background).

    Used by the experiment's start bundles for per-structure validation Dice (``val_dice_lv`` ...):
    ``MeanDice(include_background=False)`` on the returned two channels is the Dice of ``channel``.

    Args:
        channel: the one-hot channel (internal label: 1 LV, 2 MYO, 3 RV).

    Returns:
        ``output -> (preds, labels)``.

    Example:
        >>> transform = structure_output_transform(1)

    """

    def transform(output: Any) -> tuple[list[Any], list[Any]]:
        from monai.handlers import from_engine

        preds, labels = from_engine(["pred", "label"])(output)
        return [p[[0, channel]] for p in preds], [lab[[0, channel]] for lab in labels]

    return transform


def _prepare_start_bundle(
    out: Path, start: StartSpec, arm: ArmSpec, name: str, classes: Sequence[int]
) -> Path:
    """Copy the start's bundle to ``out/starts/<arm>``: per-structure Dice, validated epochs, MLflow name.

    The copy's ``train.json`` adds ``val_dice_<structure>`` metrics for the labelled structures (recorded
    in ``history.json`` with the mean) and names the MLflow experiment ``name``; its ``transfer.json``
    validates after ``arm.val_epochs`` (:class:`ValidateAtEpochs`). Written once (one rename).
    """
    from cardiacseg.demo import shipped_bundle_path
    from cardiacseg.utils.atomic import atomic_write_text

    target = out / "starts" / arm.name
    if (target / "configs" / "train.json").is_file():
        return target
    source = start.bundle if start.bundle is not None else shipped_bundle_path()
    tmp = target.parent / f".{target.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for part in ("configs", "docs", "LICENSE"):
        if (source / part).is_dir():
            shutil.copytree(source / part, tmp / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif (source / part).is_file():
            shutil.copy2(source / part, tmp / part)
    if not (tmp / "configs" / "train.json").is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        raise FileNotFoundError(
            f"{source}: not a cardiacseg segmentation bundle (configs/train.json missing)"
        )
    if start.start == "shipped":
        weights = source / "models" / "model.pt"
        if not weights.is_file():
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileNotFoundError(f"{weights}: the start bundle's weights are missing")
        (tmp / "models").mkdir()
        shutil.copy2(weights, tmp / "models" / "model.pt")
    train = json.loads((tmp / "configs" / "train.json").read_text())
    train.setdefault("imports", []).append("$import cardiacseg.workflows.transfer_experiment")
    metrics = {
        f"val_dice_{STRUCTURES[c]}": {
            "_target_": "MeanDice",
            "include_background": False,
            "output_transform": f"$cardiacseg.workflows.transfer_experiment.structure_output_transform({c})",
        }
        for c in classes
    }
    train["validate"]["additional_metrics"] = metrics
    train["validate"]["evaluator"]["additional_metrics"] = "@validate#additional_metrics"
    for key in ("mlflow", "mlflow_validation"):
        if isinstance(train.get(key), dict) and "experiment_name" in train[key]:
            train[key]["experiment_name"] = name
    atomic_write_text(tmp / "configs" / "train.json", json.dumps(train, indent=4) + "\n", overwrite=True)
    transfer = json.loads((tmp / "configs" / "transfer.json").read_text())
    # transfer.json's imports replace train.json's when the two are merged: import the metrics' module here
    transfer.setdefault("imports", []).append("$import cardiacseg.workflows.transfer_experiment")
    transfer["train#handlers"] = [
        {
            "_target_": "cardiacseg.workflows.transfer_experiment.ValidateAtEpochs",
            "validator": "@validate#evaluator",
            "epochs": list(arm.val_epochs or range(1, arm.epochs + 1)),
        }
        if isinstance(h, dict) and h.get("_target_") == "ValidationHandler"
        else h
        for h in transfer["train#handlers"]
    ]
    atomic_write_text(
        tmp / "configs" / "transfer.json", json.dumps(transfer, indent=4) + "\n", overwrite=True
    )
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    content: dict[str, Any] = json.loads(path.read_text())
    return content


def _history(arm_dir: Path) -> list[dict[str, Any]]:
    content = _read_json(arm_dir / "transfer" / "history.json")
    return [] if content is None else list(content.get("epochs", []))


def _status(arm_dir: Path) -> str:
    marker = _read_json(arm_dir / "transfer" / "run.json")
    return "pending" if marker is None else str(marker.get("status", "unknown"))


def _check_finished(arm_dir: Path, arm: ArmSpec) -> None:
    marker = _read_json(arm_dir / "transfer" / "run.json") or {}
    fp = marker.get("fingerprint", {})
    expected = {
        "subjects": arm.subjects,
        "images": arm.images,
        "seed": arm.seed,
        "stage1_epochs": arm.stage1_epochs,
        "stage2_epochs": arm.stage2_epochs,
    }
    diff = {k: (fp.get(k), v) for k, v in expected.items() if fp.get(k) != v}
    if diff:
        raise ValueError(
            f"{arm_dir}: a finished arm with other options than the spec ({diff}: found, wanted); use "
            "another output folder or delete this arm"
        )


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average: point i is the mean of values ``max(0, i - window + 1) .. i``.

    Args:
        values: the curve.
        window: the window in points (1 = unchanged).

    Returns:
        The smoothed curve, as long as ``values``.

    Example:
        >>> moving_average([0.0, 1.0, 2.0, 3.0], 2)
        [0.0, 0.5, 1.5, 2.5]

    """
    out = []
    for i in range(len(values)):
        part = values[max(0, i - window + 1) : i + 1]
        out.append(sum(part) / len(part))
    return out


def arm_summary(history: Sequence[dict[str, Any]], convergence_fraction: float = 0.95) -> dict[str, Any]:
    """Start point, convergence point and peak of one learning curve.

    Args:
        history: ``history.json`` records (``epoch``, ``images_seen``, ``val_mean_dice``, optional
            ``val_dice_<structure>``), in epoch order.
        convergence_fraction: the convergence point is the first record reaching this share of the peak.

    Returns:
        ``start_dice`` (mean Dice after the first epoch), ``start_images``, ``peak_dice``,
        ``peak_epoch``, ``peak_images`` (first occurrence), ``convergence_images``,
        ``convergence_epoch``, ``epochs``, ``images_seen`` (last record), and per structure
        ``start_<s>`` and ``peak_<s>`` (the structure's Dice at the mean peak's epoch) where recorded.

    Raises:
        ValueError: an empty history.

    Example:
        >>> h = [{"epoch": 1, "images_seen": 10, "val_mean_dice": 0.5},
        ...      {"epoch": 2, "images_seen": 20, "val_mean_dice": 0.8}]
        >>> arm_summary(h)["convergence_images"]
        20

    """
    scored = [h for h in history if h.get("val_mean_dice") is not None]
    if not scored:
        raise ValueError("no validated epoch in the history")
    dice = [float(h["val_mean_dice"]) for h in scored]
    peak = max(dice)
    i_peak = dice.index(peak)
    i_conv = next(i for i, d in enumerate(dice) if d >= convergence_fraction * peak)
    row: dict[str, Any] = {
        "start_dice": dice[0],
        "start_images": int(scored[0]["images_seen"]),
        "convergence_images": int(scored[i_conv]["images_seen"]),
        "convergence_epoch": int(scored[i_conv]["epoch"]),
        "peak_dice": peak,
        "peak_epoch": int(scored[i_peak]["epoch"]),
        "peak_images": int(scored[i_peak]["images_seen"]),
        "epochs": int(scored[-1]["epoch"]),
        "images_seen": int(scored[-1]["images_seen"]),
    }
    for s in STRUCTURES.values():
        key = f"val_dice_{s}"
        if key in scored[0]:
            row[f"start_{s}"] = float(scored[0][key])
            row[f"peak_{s}"] = float(scored[i_peak][key]) if key in scored[i_peak] else math.nan
    return row


_CURVE_FIELDS = ["arm", "start", "subset", "n", "seed", "status", "epoch", "images_seen"]
_SUMMARY_FIELDS = [
    "arm",
    "start",
    "subset",
    "n",
    "seed",
    "status",
    "train_images",
    "epochs",
    "images_seen",
    "start_dice",
    "convergence_images",
    "convergence_epoch",
    "peak_dice",
    "peak_epoch",
    "peak_images",
    "start_lv",
    "peak_lv",
    "start_myo",
    "peak_myo",
    "start_rv",
    "peak_rv",
    "seconds",
]


def _csv_text(fields: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in fields})
    return buffer.getvalue()


def write_experiment_report(
    output: PathLike,
    arms: Sequence[ArmSpec],
    convergence_fraction: float = 0.95,
    smooth_window: int = 3,
    title: str = "",
    seconds: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Write ``learning_curves.csv``, ``summary.csv``/``.json`` and the raw and smoothed PNGs of a grid.

    Arms without a history yet are listed in the summary with their status and no values. Files are
    written atomically.

    Args:
        output: the experiment folder (arms under ``output/arms/<name>``).
        arms: the grid's arms.
        convergence_fraction: see :func:`arm_summary`.
        smooth_window: moving-average window (epochs) of the smoothed figure.
        title: the figures' title.
        seconds: training wall time per arm name (kept from earlier calls in ``summary.json``).

    Returns:
        The summary rows.

    Example:
        >>> write_experiment_report("out", expand_grid(spec))  # doctest: +SKIP

    """
    from cardiacseg.utils.atomic import atomic_write_text

    out = Path(output)
    previous = _read_json(out / "summary.json") or {}
    times = {r["arm"]: r.get("seconds") for r in previous.get("arms", []) if r.get("seconds") is not None}
    times.update(seconds or {})
    curves: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    structures: list[str] = []
    for arm in arms:
        arm_dir = out / "arms" / arm.name
        ident = {
            "arm": arm.name,
            "start": arm.start,
            "subset": arm.subset,
            "n": arm.size_label,
            "seed": arm.seed,
            "status": _status(arm_dir),
        }
        history = _history(arm_dir)
        for record in history:
            row = dict(ident, epoch=record["epoch"], images_seen=record["images_seen"])
            for key, value in record.items():
                if key.startswith("val_dice_") or key == "val_mean_dice":
                    row[key] = value
                    if key.startswith("val_dice_") and key not in structures:
                        structures.append(key)
            curves.append(row)
        row = dict(ident, train_images=arm.train_images, seconds=times.get(arm.name))
        if history:
            row.update(arm_summary(history, convergence_fraction))
        summary.append(row)
    order = [f"val_dice_{s}" for s in STRUCTURES.values()]
    structures = sorted(structures, key=order.index)
    atomic_write_text(
        out / "learning_curves.csv",
        _csv_text(_CURVE_FIELDS + structures + ["val_mean_dice"], curves),
        overwrite=True,
    )
    atomic_write_text(out / "summary.csv", _csv_text(_SUMMARY_FIELDS, summary), overwrite=True)
    payload = {
        "rules": {
            "start_point": "validation mean Dice after the first epoch",
            "convergence_point": (
                f"images seen at the first epoch with mean Dice >= {convergence_fraction} x peak"
            ),
            "peak": "highest validation mean Dice (first occurrence)",
            "smoothing": f"trailing moving average over {smooth_window} validation points (figure only)",
        },
        "arms": summary,
    }
    atomic_write_text(out / "summary.json", json.dumps(payload, indent=1, default=str) + "\n", overwrite=True)
    if curves:
        for smooth, suffix in ((1, "raw"), (smooth_window, "smoothed")):
            _plot(out / f"learning_curves_{suffix}.png", arms, curves, structures, smooth, title)
    return summary


def _plot(
    path: Path,
    arms: Sequence[ArmSpec],
    curves: Sequence[dict[str, Any]],
    structures: Sequence[str],
    window: int,
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cardiacseg.utils.atomic import atomic_write

    sizes: list[str] = []
    for arm in arms:
        if arm.size_label not in sizes:
            sizes.append(arm.size_label)
    sizes = sorted(sizes, key=lambda s: (s == "all", int(s) if s != "all" else 0))
    starts = list(dict.fromkeys(a.start for a in arms))
    metrics = ["val_mean_dice", *structures]
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(
        len(metrics),
        len(sizes),
        figsize=(max(3.6 * len(sizes) + 1, 7.5), 2.6 * len(metrics) + 1.2),
        squeeze=False,
        sharex=True,
    )
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for row in curves:
        by_arm.setdefault(str(row["arm"]), []).append(row)
    for arm in arms:
        rows = by_arm.get(arm.name, [])
        if not rows:
            continue
        col = sizes.index(arm.size_label)
        colour = colours(starts.index(arm.start) % 10)
        style = "-" if arm.subset == "subjects" else ":"
        xs = [float(r["images_seen"]) for r in rows]
        for i, metric in enumerate(metrics):
            ys = [float(r[metric]) if r.get(metric) not in (None, "") else math.nan for r in rows]
            ax = axes[i][col]
            ax.plot(
                xs,
                moving_average(ys, window),
                style,
                color=colour,
                lw=2.0 if style == "-" else 2.4,
                marker=".",
                ms=3,
                label=f"{arm.start} {arm.subset}",
            )
    for i, metric in enumerate(metrics):
        for j, size in enumerate(sizes):
            ax = axes[i][j]
            ax.set_ylim(0.0, 1.0)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(f"n = {size} subject{'s' if size != '1' else ''}")
            if i == len(metrics) - 1:
                ax.set_xlabel("training images seen")
            if j == 0:
                name = metric.replace("val_", "").replace("dice_", "")
                ax.set_ylabel("mean Dice" if name == "mean_dice" else f"Dice {name.upper()}")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), frameon=False)
    smoothing = "raw" if window == 1 else f"moving average over {window} validation points"
    fig.suptitle(
        f"{title}: validation Dice vs images seen ({smoothing})\n"
        "solid: whole subjects, dotted: count-matched random images"
        + ("; one line per seed" if len({a.seed for a in arms}) > 1 else "")
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.94))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)

    def write(tmp: Path) -> None:
        tmp.write_bytes(buffer.getvalue())

    atomic_write(path, write, overwrite=True)


def _tag_mlflow_run(tracking_uri: str, run_id: str | None, arm: ArmSpec, name: str) -> None:
    if run_id is None:
        return
    try:
        import mlflow

        client = mlflow.tracking.MlflowClient(tracking_uri=tracking_uri)
        client.set_tag(run_id, "mlflow.runName", arm.name)
        for key, value in asdict(arm).items():
            client.set_tag(run_id, f"arm.{key}", str(value))
        client.set_tag(run_id, "transfer_experiment", name)
    except Exception as exc:  # tags are a convenience; never fail an arm for them
        logger.warning(f"could not tag the MLflow run of {arm.name}: {exc}")


def run_transfer_experiment(
    spec: PathLike | ExperimentSpec,
    output: PathLike,
    *,
    device: str | None = None,
    mlflow: bool = True,
    tracking_uri: str | None = None,
    stop_at: datetime | None = None,
    arms: Sequence[str] | None = None,
    dry_run: bool = False,
) -> ExperimentResult:
    """Train (or continue) the grid of a spec and write its learning curves and summary.

    Each arm is a :func:`~cardiacseg.workflows.transfer.run_transfer` call into ``output/arms/<arm>``
    from a copy of its start bundle in ``output/starts/<label>`` (that copy adds per-structure
    validation Dice and names the MLflow experiment ``spec.name``). MLflow runs go to ``tracking_uri``
    (default ``sqlite:///output/mlruns/mlruns.db``), one per arm, named after the arm. Early stopping is
    off unless the spec sets ``patience``. The report is rewritten after every arm.

    Args:
        spec: a YAML file or a parsed :class:`ExperimentSpec`.
        output: the experiment folder.
        device: torch device (default: the first GPU when available, else CPU).
        mlflow: track the arms with MLflow.
        tracking_uri: MLflow tracking URI.
        stop_at: start no arm after this (timezone-aware) moment; arms left are listed as ``pending``.
        arms: train only these arm names (default all; the report covers the whole grid).
        dry_run: only expand the grid (and write ``output/grid.json``), train nothing.

    Returns:
        An :class:`ExperimentResult`.

    Raises:
        ValueError: a bad spec, unknown arm names, or a finished arm whose options differ from the spec.
        FileNotFoundError: missing spec, data or start bundle.

    Example:
        >>> r = run_transfer_experiment("acdc_pathology.yaml", "out")  # doctest: +SKIP
        >>> r.summary[0]["peak_dice"]  # doctest: +SKIP

    """
    from cardiacseg.utils.atomic import atomic_write_text
    from cardiacseg.workflows.transfer import parse_labelled, run_transfer

    parsed = spec if isinstance(spec, ExperimentSpec) else load_experiment_spec(spec)
    out = Path(output).resolve()
    grid = expand_grid(parsed)
    names = [a.name for a in grid]
    if arms is not None:
        unknown = sorted(set(arms) - set(names))
        if unknown:
            raise ValueError(f"arms {unknown} are not in the grid ({names})")
    out.mkdir(parents=True, exist_ok=True)
    grid_doc = {"spec": _spec_doc(parsed), "arms": [asdict(a) for a in grid]}
    atomic_write_text(out / "grid.json", json.dumps(grid_doc, indent=1, default=str) + "\n", overwrite=True)
    result = ExperimentResult(out, grid)
    if dry_run:
        result.pending = [a.name for a in grid if _status(out / "arms" / a.name) != "finished"]
        return result
    uri = tracking_uri or f"sqlite:///{out / 'mlruns' / 'mlruns.db'}"
    if mlflow and tracking_uri is None:
        (out / "mlruns").mkdir(exist_ok=True)
    classes = parse_labelled(parsed.labelled)
    starts = {s.label: s for s in parsed.starts}
    for arm in grid:
        arm_dir = out / "arms" / arm.name
        if arms is not None and arm.name not in arms:
            continue
        if _status(arm_dir) == "finished":
            _check_finished(arm_dir, arm)
            result.skipped.append(arm.name)
            continue
        if stop_at is not None and datetime.now(timezone.utc) >= stop_at:
            result.pending.append(arm.name)
            continue
        start = starts[arm.start]
        bundle = _prepare_start_bundle(out, start, arm, parsed.name, classes)
        logger.info(f"arm {arm.name}: {arm.train_images} images x {arm.epochs} epochs")
        t0 = time.monotonic()
        transfer = run_transfer(
            parsed.data,
            arm_dir,
            start.start,
            imagenet_weights=start.imagenet_weights,
            bundle=bundle,
            labelled=list(parsed.labelled),
            label_convention=parsed.label_convention,
            drop_unlabelled=parsed.drop_unlabelled,
            val_fraction=parsed.val_fraction,
            subjects=arm.subjects,
            images=arm.images,
            ed_es_only=parsed.ed_es_only,
            stage1_epochs=arm.stage1_epochs,
            stage2_epochs=arm.stage2_epochs,
            stage1_lr=parsed.stage1_lr,
            stage2_lr=parsed.stage2_lr,
            patience=parsed.patience if parsed.patience is not None else arm.epochs + 1,
            seed=arm.seed,
            batch_size=parsed.batch_size,
            crop_size=parsed.crop_size,
            patch_size=parsed.patch_size,
            device=device,
            mlflow=mlflow,
            tracking_uri=uri if mlflow else None,
        )
        result.seconds[arm.name] = time.monotonic() - t0
        result.trained.append(arm.name)
        if mlflow:
            _tag_mlflow_run(uri, transfer.mlflow_run_id, arm, parsed.name)
        result.summary = write_experiment_report(
            out, grid, parsed.convergence_fraction, parsed.smooth_window, parsed.name, result.seconds
        )
    result.summary = write_experiment_report(
        out, grid, parsed.convergence_fraction, parsed.smooth_window, parsed.name, result.seconds
    )
    return result


def _spec_doc(spec: ExperimentSpec) -> dict[str, Any]:
    doc = asdict(spec)
    doc["sizes"] = ["all" if s is None else s for s in spec.sizes]
    return doc
