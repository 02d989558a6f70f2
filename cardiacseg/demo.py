"""The packaged demo study and the main job run by ``cardiacseg demo`` / ``make demo``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cardiacseg.enums import STRUCTURES

if TYPE_CHECKING:  # the paths below need none of these; `cardiacseg segment` asks only for the bundle path
    from cardiacseg.io.study import CineStudy
    from cardiacseg.typing import PathLike

__all__ = ["demo_study_path", "load_demo_study", "run_demo", "shipped_bundle_path", "shipped_model_path"]


def demo_study_path() -> Path:
    """Folder of the packaged CC0 Sunnybrook sample (``dicom/`` and ``contours/``).

    Returns:
        The path inside the installed package.

    Example:
        >>> (demo_study_path() / "dicom").is_dir()
        True

    """
    return Path(str(resources.files("cardiacseg") / "data" / "demo" / "SCD0000101"))


def shipped_model_path() -> Path:
    """Return the path of the shipped weights (the ``cardiac_cine_seg`` bundle's ``models/model.pt``).

    Returns:
        The path inside the installed package (it may not exist in a build without weights).

    Example:
        >>> shipped_model_path().relative_to(shipped_model_path().parents[2]).as_posix()
        'cardiac_cine_seg/models/model.pt'

    """
    return _shipped_bundle_folder() / "models" / "model.pt"


def _shipped_bundle_folder() -> Path:
    # package data (setup.cfg): the bundle itself, not a link; bundles/cardiac_cine_seg links to it
    return Path(str(resources.files("cardiacseg") / "cardiac_cine_seg"))


def shipped_bundle_path() -> Path:
    """Return the folder of the shipped ``cardiac_cine_seg`` bundle (configs, post-processing, weights).

    Returns:
        The bundle folder the packaged weights belong to.

    Raises:
        FileNotFoundError: the shipped weights or the bundle's configs are missing from this installation.

    Example:
        >>> (shipped_bundle_path() / "configs" / "inference.json").is_file()
        True

    """
    root = _shipped_bundle_folder()
    weights = root / "models" / "model.pt"
    if not weights.is_file() or not (root / "configs" / "inference.json").is_file():
        raise FileNotFoundError(
            f"{root}: shipped model or its bundle configs not found; pass --bundle or --weights"
        )
    return root


def load_demo_study() -> CineStudy:
    """Load the packaged sample: ED and ES of Sunnybrook SC-HF-I-1 with its expert contours.

    Returns:
        A two-phase :class:`CineStudy` with expert labels, ED and ES set.

    Example:
        >>> load_demo_study().image.shape
        (2, 12, 256, 256)

    """
    from cardiacseg.io.sunnybrook import read_sunnybrook_study

    root = demo_study_path()
    return read_sunnybrook_study(root / "dicom", root / "contours")


def _model_vs_expert(study: CineStudy, out: Path, overwrite: bool) -> dict[str, Any]:
    from cardiacseg.clinical.figures import plot_overlay
    from cardiacseg.clinical.indices import compute_cardiac_indices
    from cardiacseg.clinical.report import format_indices
    from cardiacseg.inferers.predictor import SlicePredictor
    from cardiacseg.workflows.evaluate import compare_study, json_ready

    predictor = SlicePredictor.from_bundle(shipped_bundle_path())
    predicted = study.with_labels(predictor.predict(study, sorted(study.labels)))
    # the rows of `cardiacseg evaluate` (cardiacseg.workflows.evaluate), on the contoured slices only
    comparison = compare_study(study, predicted.labels, restrict_to_annotated=True, name="SC-HF-I-1")
    assert study.ed_phase is not None
    plot_overlay(
        predicted,
        out / "overlay_model.png",
        overwrite=overwrite,
        slices=list(study.annotated_slices.get(study.ed_phase, range(study.n_slices))),
        title="Sunnybrook SC-HF-I-1: shipped model (LV red, MYO green, RV blue)",
    )
    model_idx = compute_cardiac_indices(predicted)
    return {
        "comparison": json_ready({"metrics": comparison.metrics, "indices": comparison.indices[0]}),
        "model_indices_all_slices": model_idx.to_dict(),
        "model_text": format_indices(model_idx),
    }


def _print_comparison(comparison: dict[str, Any]) -> None:
    """Print the model-vs-expert rows (``None``: not available, e.g. MYO at ES without epicardium)."""

    def num(v: float | None, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    by_phase = {m["phase_name"]: m for m in comparison["metrics"]}
    idx = comparison["indices"]
    print("Shipped model vs expert, on the contoured slices:")
    dice = "   ".join(
        f"{s.name} Dice "
        + "  ".join(f"{p} {num(by_phase.get(p, {}).get(f'dice_{s.key}'), '.3f')}" for p in ("ED", "ES"))
        for s in STRUCTURES
        if any(by_phase.get(p, {}).get(f"dice_{s.key}") is not None for p in ("ED", "ES"))
    )
    print(f"  {dice}")
    print(
        f"  LV EF model {num(idx['lv_ef_percent_pred'], '.1f')} %  expert "
        f"{num(idx['lv_ef_percent_ref'], '.1f')} %  ({num(idx['lv_ef_percent_error'], '+.1f')} points)"
    )
    edv, esv = (
        f"{num(idx[f'{q}_pred'], '.1f')} mL  expert {num(idx[f'{q}_ref'], '.1f')} mL"
        for q in ("lv_edv_ml", "lv_esv_ml")
    )
    print(f"  LV EDV model {edv}; ESV model {esv}")


def run_demo(output: PathLike, overwrite: bool = False) -> dict[str, object]:
    """Segment the demo study with the shipped model, compare with the expert contours, write a report.

    Writes ``report.json`` / ``report.csv`` (expert-contour indices and per-slice table, plus the model
    comparison: under ``model.comparison``, the ``metrics`` rows (ED, ES) and the ``indices`` row of
    :mod:`cardiacseg.workflows.evaluate`, on the contoured slices; ``null`` where not available),
    ``overlay.png`` (expert contours) and ``overlay_model.png`` (model).

    Args:
        output: output folder.
        overwrite: allow replacing files from an earlier run.

    Returns:
        The report dictionary.

    Raises:
        FileExistsError: output files exist and ``overwrite`` is False.

    Example:
        >>> report = run_demo("demo_output", overwrite=True)  # doctest: +SKIP

    """
    from cardiacseg.clinical.figures import plot_overlay
    from cardiacseg.clinical.indices import compute_cardiac_indices
    from cardiacseg.clinical.report import build_report, format_indices, write_report

    study = load_demo_study()
    indices = compute_cardiac_indices(study)
    out = Path(output)
    extra: dict[str, Any] = {"labels": "expert contours (Sunnybrook)"}
    model: dict[str, Any] | None = None
    if shipped_model_path().exists():
        out.mkdir(parents=True, exist_ok=True)
        model = _model_vs_expert(study, out, overwrite)
        extra["model"] = {k: v for k, v in model.items() if k != "model_text"}
    report = build_report(study, indices, extra)
    paths = write_report(out, report, overwrite=overwrite)
    paths.append(
        plot_overlay(
            study,
            out / "overlay.png",
            overwrite=overwrite,
            title="Sunnybrook SC-HF-I-1: expert contours (LV red, MYO green)",
        )
    )
    print(study.summary())
    print("Clinical indices from the expert contours (contoured slices):")
    print(format_indices(indices))
    if model is None:
        print("No shipped model weights found; skipped the model segmentation.")
    else:
        _print_comparison(model["comparison"])
        print("Model on all slices (base and apex included):")
        print(model["model_text"])
        paths.append(out / "overlay_model.png")
    print("Wrote: " + ", ".join(str(p) for p in paths))
    return report
