"""The official ACDC layout: ``patientNNN/Info.cfg``, ``patientNNN_frameNN[_gt].nii.gz``, ``_4d.nii.gz``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cardiacseg.io.labels import acdc_to_internal, internal_to_acdc
from cardiacseg.io.nifti import read_nifti_array, write_nifti
from cardiacseg.io.study import CineStudy, PatientInfo
from cardiacseg.typing import LabelArray, PathLike
from cardiacseg.utils.atomic import atomic_write_text

__all__ = ["AcdcFormatError", "AcdcInfo", "read_acdc_info", "read_acdc_patient", "write_acdc_patient"]


class AcdcFormatError(ValueError):
    """A folder that does not follow the ACDC layout; the message names the file."""


@dataclass(frozen=True)
class AcdcInfo:
    """Contents of ``Info.cfg``.

    Attributes:
        ed_frame: 1-based ED frame number.
        es_frame: 1-based ES frame number.
        group: pathology group (DCM, HCM, MINF, NOR, RV), empty when absent.
        height_cm: patient height, or ``None``.
        weight_kg: patient weight, or ``None``.
        n_frames: number of frames of the cine, or ``None``.

    Example:
        >>> AcdcInfo(1, 12, "DCM", 184.0, 95.0, 30).es_frame
        12

    """

    ed_frame: int
    es_frame: int
    group: str = ""
    height_cm: float | None = None
    weight_kg: float | None = None
    n_frames: int | None = None


def read_acdc_info(path: PathLike) -> AcdcInfo:
    """Parse an ACDC ``Info.cfg``.

    Args:
        path: the file.

    Returns:
        :class:`AcdcInfo`.

    Raises:
        AcdcFormatError: missing ED/ES or malformed lines.

    Example:
        >>> read_acdc_info("patient001/Info.cfg").ed_frame  # doctest: +SKIP
        1

    """
    values: dict[str, str] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        if ":" not in line:
            raise AcdcFormatError(f"{path}:{n}: expected 'Key: value', got {line!r}")
        k, v = line.split(":", 1)
        values[k.strip()] = v.strip()
    try:
        return AcdcInfo(
            ed_frame=int(values["ED"]),
            es_frame=int(values["ES"]),
            group=values.get("Group", ""),
            height_cm=float(values["Height"]) if "Height" in values else None,
            weight_kg=float(values["Weight"]) if "Weight" in values else None,
            n_frames=int(values["NbFrame"]) if "NbFrame" in values else None,
        )
    except KeyError as exc:
        raise AcdcFormatError(f"{path}: missing key {exc}") from exc
    except ValueError as exc:
        raise AcdcFormatError(f"{path}: {exc}") from exc


def _frame_files(folder: Path, pid: str) -> dict[int, Path]:
    out = {}
    for f in folder.glob(f"{pid}_frame*.nii*"):
        m = re.fullmatch(rf"{pid}_frame(\d+)\.nii(\.gz)?", f.name)
        if m:
            out[int(m.group(1))] = f
    return out


def read_acdc_patient(folder: PathLike) -> CineStudy:
    """Read one ACDC patient folder.

    With ``patientNNN_4d.nii.gz`` the whole cine is loaded and the ground truth is placed at the ED/ES
    frames; without it, the ED and ES frame images are stacked (``T = 2``, ``phase_ids`` giving their
    0-based frame numbers).

    Args:
        folder: the ``patientNNN`` folder.

    Returns:
        A :class:`CineStudy` with internal labels for the frames that have ``_gt`` files.

    Raises:
        AcdcFormatError: missing ``Info.cfg`` or frame files, or frames with inconsistent shapes.

    Example:
        >>> study = read_acdc_patient("training/patient001")  # doctest: +SKIP
        >>> study.ed_phase, study.es_phase  # doctest: +SKIP
        (0, 11)

    """
    root = Path(folder)
    pid = root.name
    cfg = root / "Info.cfg"
    if not cfg.exists():
        raise AcdcFormatError(f"{cfg}: missing (not an ACDC patient folder)")
    info = read_acdc_info(cfg)
    frames = _frame_files(root, pid)
    for name, fr in (("ED", info.ed_frame), ("ES", info.es_frame)):
        if fr not in frames:
            raise AcdcFormatError(f"{root}: {name} frame {fr} image '{pid}_frame{fr:02d}.nii.gz' not found")
    four_d = [p for p in (root / f"{pid}_4d.nii.gz", root / f"{pid}_4d.nii") if p.exists()]
    labels: dict[int, LabelArray] = {}
    if four_d:
        image, affine, spacing = read_nifti_array(four_d[0])
        if image.ndim != 4:
            raise AcdcFormatError(f"{four_d[0]}: expected a 4D image, got {image.ndim}D")
        phase_ids = tuple(range(image.shape[0]))
        index = {fr: fr - 1 for fr in (info.ed_frame, info.es_frame)}
    else:
        stack = []
        affine, spacing = np.eye(4), None
        for fr in (info.ed_frame, info.es_frame):
            arr, affine, spacing = read_nifti_array(frames[fr])
            stack.append(arr)
        if stack[0].shape != stack[1].shape:
            raise AcdcFormatError(
                f"{root}: ED and ES frames differ in shape {stack[0].shape} vs {stack[1].shape}"
            )
        image = np.stack(stack)
        phase_ids = (info.ed_frame - 1, info.es_frame - 1)
        index = {info.ed_frame: 0, info.es_frame: 1}
    for fr, t in index.items():
        gt = [
            p
            for p in (root / f"{pid}_frame{fr:02d}_gt.nii.gz", root / f"{pid}_frame{fr:02d}_gt.nii")
            if p.exists()
        ]
        if gt:
            lab, _, _ = read_nifti_array(gt[0])
            if lab.shape != image.shape[1:]:
                raise AcdcFormatError(
                    f"{gt[0]}: label shape {lab.shape} differs from image {image.shape[1:]}"
                )
            labels[t] = acdc_to_internal(lab)
    return CineStudy(
        image=image.astype(np.float32),
        spacing_mm=spacing,
        affine=affine,
        phase_ids=phase_ids,
        labels=labels,
        ed_phase=index[info.ed_frame],
        es_phase=index[info.es_frame],
        source=f"ACDC {root} (group {info.group or '?'})",
        patient=PatientInfo(info.height_cm, info.weight_kg, source="ACDC Info.cfg")
        if info.height_cm or info.weight_kg
        else None,
    )


def write_acdc_patient(
    folder: PathLike,
    study: CineStudy,
    group: str = "",
    overwrite: bool = False,
    height_cm: float | None = None,
    weight_kg: float | None = None,
) -> Path:
    """Write a study in the ACDC layout (labels converted to ACDC values).

    Writes ``Info.cfg``, the ED and ES frames with their ``_gt`` files (where labelled), and
    ``_4d.nii.gz`` when the study holds more than the two frames.

    Args:
        folder: the ``patientNNN`` folder to create (its name is the file prefix).
        study: a study with ``ed_phase`` and ``es_phase`` set.
        group: pathology group for ``Info.cfg``.
        overwrite: allow replacing existing files.
        height_cm: optional height for ``Info.cfg``.
        weight_kg: optional weight for ``Info.cfg``.

    Returns:
        The folder.

    Raises:
        ValueError: ED or ES unknown.
        FileExistsError: a file exists and ``overwrite`` is False.

    Example:
        >>> write_acdc_patient("/tmp/out/patient101", study)  # doctest: +SKIP

    """
    if study.ed_phase is None or study.es_phase is None:
        raise ValueError("writing the ACDC layout needs study.ed_phase and study.es_phase")
    root = Path(folder)
    pid = root.name
    root.mkdir(parents=True, exist_ok=True)
    ids = study.phase_ids or tuple(range(study.n_phases))
    n_frames = len(ids) if study.n_phases > 2 else max(ids) + 1
    lines = [f"ED: {ids[study.ed_phase] + 1}", f"ES: {ids[study.es_phase] + 1}", f"Group: {group}"]
    if height_cm is not None:
        lines.append(f"Height: {height_cm}")
    lines.append(f"NbFrame: {n_frames}")
    if weight_kg is not None:
        lines.append(f"Weight: {weight_kg}")
    atomic_write_text(root / "Info.cfg", "\n".join(lines) + "\n", overwrite=overwrite)
    for t in (study.ed_phase, study.es_phase):
        fr = ids[t] + 1
        write_nifti(
            root / f"{pid}_frame{fr:02d}.nii.gz",
            study.image[t],
            study.affine,
            study.spacing_mm,
            overwrite=overwrite,
        )
        if t in study.labels:
            write_nifti(
                root / f"{pid}_frame{fr:02d}_gt.nii.gz",
                internal_to_acdc(study.labels[t]),
                study.affine,
                study.spacing_mm,
                overwrite=overwrite,
            )
    if study.n_phases > 2:
        write_nifti(
            root / f"{pid}_4d.nii.gz", study.image, study.affine, study.spacing_mm, overwrite=overwrite
        )
    return root
