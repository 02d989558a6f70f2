"""The packaged demo study and the main job run by ``cardiacseg demo`` / ``make demo``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from cardiacseg.clinical.figures import plot_overlay
from cardiacseg.clinical.indices import compute_cardiac_indices
from cardiacseg.clinical.report import build_report, format_indices, write_report
from cardiacseg.io.study import CineStudy
from cardiacseg.io.sunnybrook import read_sunnybrook_study
from cardiacseg.typing import PathLike

__all__ = ["demo_study_path", "load_demo_study", "run_demo"]


def demo_study_path() -> Path:
    """Folder of the packaged CC0 Sunnybrook sample (``dicom/`` and ``contours/``).

    Returns:
        The path inside the installed package.

    Example:
        >>> (demo_study_path() / "dicom").is_dir()
        True

    """
    return Path(str(resources.files("cardiacseg") / "data" / "demo" / "SCD0000101"))


def load_demo_study() -> CineStudy:
    """Load the packaged sample: ED and ES of Sunnybrook SC-HF-I-1 with its expert contours.

    Returns:
        A two-phase :class:`CineStudy` with expert labels, ED and ES set.

    Example:
        >>> load_demo_study().image.shape
        (2, 12, 256, 256)

    """
    root = demo_study_path()
    return read_sunnybrook_study(root / "dicom", root / "contours")


def run_demo(output: PathLike, overwrite: bool = False) -> dict[str, object]:
    """Read the demo study, compute the clinical indices, print them and write a report and overlay.

    Args:
        output: output folder (``report.json``, ``report.csv``, ``overlay.png``).
        overwrite: allow replacing files from an earlier run.

    Returns:
        The report dictionary.

    Raises:
        FileExistsError: output files exist and ``overwrite`` is False.

    Example:
        >>> report = run_demo("demo_output", overwrite=True)  # doctest: +SKIP

    """
    study = load_demo_study()
    indices = compute_cardiac_indices(study)
    report = build_report(study, indices, {"labels": "expert contours (Sunnybrook)"})
    out = Path(output)
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
    print("Clinical indices from expert contours:")
    print(format_indices(indices))
    print("Wrote: " + ", ".join(str(p) for p in paths))
    return report
