"""Sunnybrook Cardiac Data: expert contour files to label maps aligned with the DICOM cine.

Contour files are named ``IM-0001-NNNN-{i,o}contour-manual.txt`` where ``NNNN`` is the DICOM
InstanceNumber of the contoured image; each line holds ``x y`` in pixel coordinates (x = column,
y = row). ``i`` contours are the LV endocardium (ED and ES), ``o`` contours the epicardium (ED only).
LV blood pool = filled inner contour; myocardium = filled outer contour minus the filled inner contour.
"""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from skimage.draw import polygon2mask

from cardiacseg.enums import CardiacLabel
from cardiacseg.io.dicom import read_dicom_cine
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import LabelArray, PathLike

__all__ = [
    "ContourFormatError",
    "read_contour_file",
    "read_sunnybrook_contours",
    "read_sunnybrook_link",
    "read_sunnybrook_study",
]

_NAME = re.compile(r"IM-\d+-(\d+)-([io])contour-manual\.txt$")


class ContourFormatError(ValueError):
    """A contour file that cannot be parsed or does not match the study; the message names the file."""


def read_contour_file(path: PathLike) -> npt.NDArray[np.float64]:
    """Read one Sunnybrook contour file.

    Args:
        path: a ``*contour-manual.txt`` file.

    Returns:
        ``(N, 2)`` array of ``(x, y)`` = (column, row) pixel coordinates.

    Raises:
        ContourFormatError: when a line is not two numbers or fewer than 3 points are present.

    Example:
        >>> pts = read_contour_file("IM-0001-0048-icontour-manual.txt")  # doctest: +SKIP
        >>> pts.shape[1]  # doctest: +SKIP
        2

    """
    pts = []
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                if len(parts) != 2:
                    raise ValueError(f"expected 2 numbers, got {len(parts)}")
                pts.append((float(parts[0]), float(parts[1])))
            except ValueError as exc:
                raise ContourFormatError(f"{path}:{n}: {exc}") from exc
    if len(pts) < 3:
        raise ContourFormatError(f"{path}: a contour needs at least 3 points, found {len(pts)}")
    return np.asarray(pts, dtype=np.float64)


def _fill(points: npt.NDArray[np.float64], shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
    # polygon2mask takes (row, col) vertices.
    return np.asarray(polygon2mask(shape, points[:, ::-1]), dtype=np.bool_)


def read_sunnybrook_contours(
    contour_dir: PathLike, study: CineStudy
) -> tuple[dict[int, LabelArray], dict[int, tuple[int, ...]]]:
    """Turn a patient's contour folder into internal label maps on the study grid.

    Args:
        contour_dir: the patient's contour folder (``SC-HF-I-1``), holding ``i-contours/`` and
            ``o-contours/`` (searched recursively).
        study: the DICOM study the contours belong to (must carry ``instance_numbers``).

    Returns:
        ``(labels, annotated_slices)``: label maps ``(Z, Y, X)`` keyed by phase index, and for each
        labelled phase the slices that carry a contour.

    Raises:
        ContourFormatError: a contour names an InstanceNumber absent from the study, or is malformed.
        ValueError: when the study has no DICOM instance numbers.

    Example:
        >>> study = read_dicom_cine("dicoms/SCD0000101")  # doctest: +SKIP
        >>> labels, slices = read_sunnybrook_contours("contourfiles/SC-HF-I-1", study)  # doctest: +SKIP

    """
    if study.instance_numbers is None:
        raise ValueError("study has no DICOM instance numbers; Sunnybrook contours need a DICOM study")
    where = {int(n): (t, z) for (t, z), n in np.ndenumerate(study.instance_numbers)}
    shape = (int(study.image.shape[2]), int(study.image.shape[3]))
    inner: dict[tuple[int, int], npt.NDArray[np.bool_]] = {}
    outer: dict[tuple[int, int], npt.NDArray[np.bool_]] = {}
    files = sorted(Path(contour_dir).rglob("*contour-manual.txt"))
    if not files:
        raise ContourFormatError(f"{contour_dir}: no '*contour-manual.txt' files found")
    for f in files:
        m = _NAME.search(f.name)
        if m is None:
            continue
        instance, kind = int(m.group(1)), m.group(2)
        if instance not in where:
            raise ContourFormatError(
                f"{f}: InstanceNumber {instance} is not an image of the study ({study.source})"
            )
        mask = _fill(read_contour_file(f), shape)
        (inner if kind == "i" else outer)[where[instance]] = mask
    labels: dict[int, LabelArray] = {}
    annotated: dict[int, set[int]] = {}
    for t, z in sorted(set(inner) | set(outer)):
        lab = labels.setdefault(t, np.zeros(study.image.shape[1:], dtype=np.uint8))
        if (t, z) in outer:
            lab[z][outer[(t, z)]] = CardiacLabel.MYO
        if (t, z) in inner:
            lab[z][inner[(t, z)]] = CardiacLabel.LV
        annotated.setdefault(t, set()).add(z)
    return labels, {t: tuple(sorted(zs)) for t, zs in annotated.items()}


def read_sunnybrook_link(path: PathLike) -> dict[str, str]:
    """Read ``link.csv`` mapping DICOM patient folders to contour folder ids.

    Args:
        path: the CSV with columns ``patient_id,original_id``.

    Returns:
        ``{patient_id: original_id}``, e.g. ``{"SCD0000101": "SC-HF-I-1"}``.

    Raises:
        ContourFormatError: when the columns are missing.

    Example:
        >>> read_sunnybrook_link("sunnybrook/link.csv")["SCD0000101"]  # doctest: +SKIP
        'SC-HF-I-1'

    """
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"patient_id", "original_id"} <= set(reader.fieldnames):
            raise ContourFormatError(f"{path}: expected columns patient_id,original_id")
        return {row["patient_id"]: row["original_id"] for row in reader}


def read_sunnybrook_study(dicom_dir: PathLike, contour_dir: PathLike) -> CineStudy:
    """Read a Sunnybrook cine with its expert contours, ED and ES identified from the contours.

    ED is the labelled phase with epicardial (myocardium) contours (the largest LV volume when both or
    neither have them); ES is the other labelled phase.

    Args:
        dicom_dir: the patient's DICOM folder.
        contour_dir: the patient's contour folder.

    Returns:
        A :class:`CineStudy` carrying labels, annotated slices and ED/ES phases.

    Raises:
        ContourFormatError: contours that do not match the study.
        DicomReadError: unreadable DICOM input.

    Example:
        >>> s = read_sunnybrook_study("dicoms/SCD0000101", "contourfiles/SC-HF-I-1")  # doctest: +SKIP
        >>> s.ed_phase, s.es_phase  # doctest: +SKIP
        (18, 7)

    """
    study = read_dicom_cine(dicom_dir)
    labels, annotated = read_sunnybrook_contours(contour_dir, study)
    phases = sorted(
        labels,
        key=lambda t: (
            bool((labels[t] == CardiacLabel.MYO).any()),
            int((labels[t] == CardiacLabel.LV).sum()),
        ),
        reverse=True,
    )
    ed = phases[0] if phases else None
    es = phases[1] if len(phases) > 1 else None
    return replace(
        study.with_labels(labels, annotated),
        ed_phase=ed,
        es_phase=es,
        source=f"{study.source} + contours {contour_dir}",
    )
