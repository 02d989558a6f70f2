"""The one training route: the bundle's ``train.json`` as a MONAI ``ConfigWorkflow``, from Python.

There is no separate Python trainer builder: a script or notebook trains with exactly the configuration
``python -m monai.bundle run --config_file configs/train.json`` uses (loss, optimiser, schedule,
augmentation, validation, checkpointing, exact resume, MLflow), with overrides for anything it wants to
change, so the two routes cannot diverge.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from monai.bundle import BundleWorkflow, create_workflow

from cardiacseg.typing import PathLike

__all__ = ["training_workflow"]


def training_workflow(
    bundle_dir: PathLike | None = None,
    config_files: Sequence[str] = ("train.json",),
    **override: Any,
) -> BundleWorkflow:
    """Create and initialise the training workflow a bundle's configs define.

    A thin wrapper over :func:`monai.bundle.create_workflow` with ``workflow_type="train"``: the configs
    are read from ``bundle_dir/configs`` (later files override earlier ones by ``#`` paths, e.g.
    ``("train.json", "transfer.json")`` for staged transfer learning), ``bundle_root`` is the bundle
    folder and ``metadata.json`` is its ``_meta_``.

    Args:
        bundle_dir: the bundle folder (default: the shipped ``cardiac_cine_seg`` bundle).
        config_files: config file names inside ``configs/``, applied in order.
        override: config values to replace, by id (``epochs=2``, ``ckpt_dir="runs/a"``,
            ``train_patients=[...]``; nested ids with ``#`` through a dict, e.g.
            ``**{"train#dataloader#batch_size": 8}``).

    Returns:
        The initialised workflow: ``wf.run()`` trains, ``wf.finalize()`` closes it; its pieces are
        ``wf.parser.get_parsed_content("train#trainer")``, ``"network"``, ``"validate#evaluator"``...

    Raises:
        FileNotFoundError: a config file does not exist.

    Example:
        >>> wf = training_workflow(epochs=2, ckpt_dir="runs/try", mlflow_tracking=False)  # doctest: +SKIP
        >>> wf.run(); wf.finalize()  # doctest: +SKIP

    """
    root = (
        Path(bundle_dir)
        if bundle_dir is not None
        else Path(str(resources.files("cardiacseg") / "cardiac_cine_seg"))
    )
    files = [root / "configs" / name for name in config_files]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"bundle config(s) not found: {', '.join(missing)}")
    meta = root / "configs" / "metadata.json"
    workflow: BundleWorkflow = create_workflow(
        config_file=[str(f) for f in files] if len(files) > 1 else str(files[0]),
        meta_file=str(meta) if meta.is_file() else None,
        workflow_type="train",
        bundle_root=str(root),
        **override,
    )
    return workflow
