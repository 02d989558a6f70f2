"""Segment one study end to end: read, predict every phase, write labels on the input grid and a report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cardiacseg.clinical.indices import compute_cardiac_indices
from cardiacseg.clinical.report import build_report, write_report
from cardiacseg.inferers.predictor import SlicePredictor
from cardiacseg.io.nifti import write_nifti
from cardiacseg.io.readers import read_study
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import PathLike

__all__ = ["segment_study"]


def segment_study(
    input_path: PathLike | CineStudy, output_dir: PathLike, predictor: SlicePredictor, overwrite: bool = False
) -> dict[str, Any]:
    """Segment a DICOM folder, ACDC folder or NIfTI file and write ``labels.nii.gz`` and ``report.json/csv``.

    Labels are written as NIfTI on the input grid with the input affine (4D for cine input); ED and ES are
    the phases with the largest and smallest predicted LV volume unless the source states them.

    Args:
        input_path: the study (or an already read :class:`CineStudy`).
        output_dir: output folder (created).
        predictor: the model.
        overwrite: replace existing output files.

    Returns:
        The report dictionary (with ``"outputs"``: the written paths).

    Raises:
        FileExistsError: outputs exist and ``overwrite`` is False.
        ValueError: unreadable input (the message names the file).

    Example:
        >>> segment_study("dicoms/SCD0000101", "out/SCD0000101", predictor)  # doctest: +SKIP

    """
    study = input_path if isinstance(input_path, CineStudy) else read_study(input_path)
    labels = predictor.predict(study)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stack = np.stack([labels[t] for t in range(study.n_phases)])
    label_path = write_nifti(
        out / "labels.nii.gz",
        stack if study.n_phases > 1 else stack[0],
        study.affine,
        study.spacing_mm,
        overwrite=overwrite,
    )
    predicted = study.with_labels(labels)
    indices = compute_cardiac_indices(predicted)
    predicted = replace(predicted, ed_phase=indices.ed_phase, es_phase=indices.es_phase)
    report = build_report(
        predicted, indices, {"labels": "predicted", "model": type(predictor.network).__name__}
    )
    paths = write_report(out, report, overwrite=overwrite)
    report["outputs"] = [str(label_path), *(str(p) for p in paths)]
    return report
