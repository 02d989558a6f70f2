"""Write a MONAI Label datastore (3D short-axis NIfTI stacks, one cardiac phase each) from cine studies.

MONAI Label's local datastore is a folder of images (here ``<study>_t<NN>[_ED|_ES].nii.gz``, one phase of
one short-axis stack each, ``(X, Y, Z)`` voxels with the study's affine) and, for labelled images, a file
of the same name under ``labels/final/`` (internal label values: 0 background, 1 LV blood pool,
2 myocardium, 3 RV blood pool). The cardiacseg MONAI Label app (:mod:`cardiacseg.label`) serves it.

This module turns a user's studies (DICOM cine exports from PACS, 4D NIfTI, ACDC patient folders: anything
:func:`~cardiacseg.io.discover.discover_studies` finds) into such a folder:

* ``phases="ed-es"``: end-diastole and end-systole only, the phases most annotation protocols contour
  (SCMR post-processing recommendations, Schulz-Menger et al., JCMR 2020). When the source names them
  (ACDC ``Info.cfg``) those are used; otherwise they are the phases of largest and smallest LV blood-pool
  volume in the shipped model's segmentation (:func:`~cardiacseg.clinical.indices.detect_ed_es`, as
  ``cardiacseg segment`` chooses them).
* ``phases="all"``: every phase.

Expert labels that come with a study (ACDC ``_gt`` files) are written to ``labels/final/`` with
``with_labels=True``. A sidecar ``cardiacseg_datastore.json`` records, for every image, its study, phase
index, ED/ES role and source, so that training keeps the phases of one patient in the same split.
Inputs are never modified; every file is written atomically; an existing image is never replaced unless
``overwrite`` is set.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from cardiacseg.io.discover import discover_studies
from cardiacseg.io.nifti import write_nifti
from cardiacseg.io.study import CineStudy
from cardiacseg.typing import LabelArray, PathLike
from cardiacseg.utils.atomic import atomic_path

__all__ = [
    "DATASTORE_MANIFEST",
    "DatastoreImage",
    "LabelDatastorePhases",
    "check_datastore_image",
    "check_datastore_label",
    "choose_phases",
    "datastore_image_name",
    "split_by_study",
    "stage_epochs",
    "study_of",
    "write_label_datastore",
]

#: Name of the sidecar manifest written beside the images.
DATASTORE_MANIFEST = "cardiacseg_datastore.json"

#: Which phases of each study become datastore images.
LabelDatastorePhases = Literal["ed-es", "all"]

#: Folder of final (expert) labels inside a MONAI Label local datastore.
LABELS_FINAL = Path("labels") / "final"


@dataclass(frozen=True)
class DatastoreImage:
    """One image written to the datastore.

    Attributes:
        image_id: MONAI Label image id (the file name without ``.nii.gz``).
        study: the study's name (its output name in ``cardiacseg segment``); phases of one study share it.
        phase: index of the phase in the study's ``T`` axis.
        frame: the phase's index in the full cardiac cycle (``CineStudy.phase_ids``; ``phase`` when the
            study holds every phase); the ``t<NN>`` of the image id.
        role: ``"ED"``, ``"ES"`` or ``""``.
        source: where the study came from.
        labelled: whether an expert label was written to ``labels/final``.

    """

    image_id: str
    study: str
    phase: int
    frame: int
    role: str
    source: str
    labelled: bool = False


@dataclass
class _Manifest:
    images: dict[str, dict[str, Any]] = field(default_factory=dict)


def check_datastore_image(path: PathLike) -> tuple[int, int, int]:
    """Check that a file is one short-axis phase the app can segment: a readable 3D NIfTI image.

    Args:
        path: the image file (an upload or a datastore image).

    Returns:
        The image's ``(Z, Y, X)`` shape.

    Raises:
        ValueError: unreadable or not NIfTI, 4D (several phases: write one phase per image with
            ``cardiacseg label-datastore``), NaN voxels... The message names the file.

    Example:
        >>> check_datastore_image("datastore/SCD0000101_t00_ED.nii.gz")  # doctest: +SKIP
        (12, 256, 256)

    """
    from cardiacseg.io.nifti import read_nifti_array

    name = Path(path).name
    if not name.endswith((".nii", ".nii.gz")):
        raise ValueError(f"{name}: not a NIfTI file (.nii or .nii.gz expected)")
    array, _, _ = read_nifti_array(path)
    if array.ndim != 3:
        raise ValueError(
            f"{name}: {array.ndim}D image {array.shape}; the app segments one cardiac phase per image (3D): "
            "split a cine study with `cardiacseg label-datastore`"
        )
    z, y, x = array.shape
    return z, y, x


def check_datastore_label(label_path: PathLike, image_path: PathLike) -> None:
    """Check a label file against its image: readable NIfTI, same ``(Z, Y, X)`` shape and affine, values 0-3.

    The values are cardiacseg's (0 background, 1 LV blood pool, 2 myocardium, 3 RV blood pool), the
    ``labels`` of the app's model info.

    Args:
        label_path: the label file (e.g. an upload to ``PUT /datastore/label``).
        image_path: the datastore image it labels.

    Raises:
        ValueError: unreadable, another shape or affine (within 0.01 mm) than the image, or values outside
            {0, 1, 2, 3} or not integers; the message names the label file.

    Example:
        >>> check_datastore_label("upload.nii.gz", "datastore/p1_t00_ED.nii.gz")  # doctest: +SKIP

    """
    import numpy as np

    from cardiacseg.io.nifti import read_nifti_array

    name = Path(label_path).name
    label, label_affine, _ = read_nifti_array(label_path)
    image_shape = check_datastore_image(image_path)
    if label.shape != image_shape:
        raise ValueError(
            f"label {name}: shape (Z, Y, X) {label.shape} differs from the image's {image_shape}"
        )
    _, image_affine, _ = read_nifti_array(image_path)
    if not np.allclose(label_affine, image_affine, atol=1e-2):
        shift = float(np.abs(label_affine[:3, 3] - image_affine[:3, 3]).max())
        raise ValueError(
            f"label {name}: its geometry (affine) differs from the image's (origin off by up to "
            f"{shift:.1f} mm): it would show displaced in a viewer"
        )
    values = np.unique(label)
    bad = [v for v in values.tolist() if v not in (0, 1, 2, 3)]
    if bad:
        raise ValueError(
            f"label {name}: values {bad[:5]} are not cardiacseg labels (0 background, 1 LV, 2 MYO, 3 RV)"
        )


def datastore_image_name(study: str, phase: int, role: str = "") -> str:
    """Image id of one phase of one study: ``<study>_t<NN>`` plus ``_ED``/``_ES`` when it has that role.

    Args:
        study: the study name.
        phase: the phase's frame index in the cardiac cycle (0-based).
        role: ``"ED"``, ``"ES"`` or ``""``.

    Returns:
        The id (file name without ``.nii.gz``).

    Example:
        >>> datastore_image_name("SCD0000101", 0, "ED")
        'SCD0000101_t00_ED'

    """
    return f"{study}_t{phase:02d}" + (f"_{role}" if role else "")


def choose_phases(
    study: CineStudy,
    phases: LabelDatastorePhases,
    segment: Callable[[CineStudy], dict[int, LabelArray]] | None = None,
) -> dict[int, str]:
    """Choose the phases of a study that become datastore images, with their ED/ES role.

    Args:
        study: the study.
        phases: ``"ed-es"`` or ``"all"``.
        segment: returns label maps ``(Z, Y, X)`` per phase (e.g. ``SlicePredictor.predict``); needed for
            ``"ed-es"`` when the study does not name its ED and ES phases.

    Returns:
        ``{phase index: "ED" | "ES" | ""}``.

    Raises:
        ValueError: unknown ``phases``; ``"ed-es"`` without ``segment`` for a study that does not name
            ED/ES; no LV found in any phase.

    Example:
        >>> import numpy as np
        >>> s = CineStudy(image=np.zeros((3, 2, 4, 4), np.float32), ed_phase=0, es_phase=2)
        >>> choose_phases(s, "ed-es")
        {0: 'ED', 2: 'ES'}

    """
    if phases not in ("ed-es", "all"):
        raise ValueError(f"phases must be 'ed-es' or 'all', got {phases!r}")
    if study.n_phases == 1:
        return {0: ""}
    ed, es = study.ed_phase, study.es_phase
    if ed is None or es is None:
        if segment is None:
            if phases == "all":
                return dict.fromkeys(range(study.n_phases), "")
            raise ValueError(
                f"{study.source}: the study does not name its ED and ES phases; a segmentation model is "
                "needed to find them (or write all phases)"
            )
        from cardiacseg.clinical.indices import detect_ed_es

        ed, es = detect_ed_es(segment(study))
    roles = {ed: "ED", es: "ES"}
    if phases == "ed-es":
        return dict(sorted(roles.items()))
    return {t: roles.get(t, "") for t in range(study.n_phases)}


def write_label_datastore(
    inputs: Sequence[PathLike] | Sequence[tuple[str, CineStudy]],
    out_dir: PathLike,
    phases: LabelDatastorePhases = "ed-es",
    segment: Callable[[CineStudy], dict[int, LabelArray]] | None = None,
    with_labels: bool = False,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[DatastoreImage]:
    """Write one 3D NIfTI per chosen phase of every study into a MONAI Label datastore folder.

    Args:
        inputs: study paths (DICOM folders or files, NIfTI files, ACDC patient folders, or folders holding
            several studies: every study found is written), or ``(name, CineStudy)`` pairs from Python.
        out_dir: the datastore folder (created). Images are written at its top level, labels under
            ``labels/final``, the manifest as ``cardiacseg_datastore.json``.
        phases: ``"ed-es"`` (default) or ``"all"`` (see the module docstring).
        segment: label maps per phase for studies that do not name ED/ES (``"ed-es"`` only).
        with_labels: also write the study's own labels (expert references) of the chosen phases to
            ``labels/final`` (internal values 1 LV, 2 MYO, 3 RV).
        overwrite: replace images (and labels) that exist; otherwise an existing file stops the run before
            anything is written for that study.
        progress: called with a line of text per study.

    Returns:
        The images written, in order.

    Raises:
        FileExistsError: an image or label exists and ``overwrite`` is False (the file is named).
        ValueError: no study found, or a reader's error (it names the file).

    Example:
        >>> written = write_label_datastore(["exports/"], "datastore", phases="ed-es")  # doctest: +SKIP

    """
    out = Path(out_dir)
    pairs: list[tuple[str, CineStudy | Callable[[], CineStudy]]] = []
    for item in inputs:
        if isinstance(item, tuple):
            pairs.append((item[0], item[1]))
    if not pairs:
        found = discover_studies([Path(str(p)) for p in inputs])
        if not found:
            raise ValueError(f"no study found in {', '.join(str(p) for p in inputs)}")
        pairs = [(s.name, s.read) for s in found]
    manifest_path = out / DATASTORE_MANIFEST
    manifest = _Manifest()
    if manifest_path.exists():
        manifest.images = json.loads(manifest_path.read_text()).get("images", {})
    written: list[DatastoreImage] = []
    if not overwrite:  # refuse before any reading or model run (the ED/ES phases are not known yet)
        for name, _ in pairs:
            existing = sorted(out.glob(f"{name}_t[0-9]*.nii.gz"))
            if existing:
                raise FileExistsError(
                    f"{existing[0]} exists (images of study {name!r} were written before); pass overwrite "
                    "(--overwrite) to replace them"
                )
    for name, source in pairs:
        study = source if isinstance(source, CineStudy) else source()
        chosen = choose_phases(study, phases, segment)
        planned: list[tuple[DatastoreImage, Path, Path | None]] = []
        for t, role in chosen.items():
            frame = study.phase_ids[t] if study.phase_ids else t
            image_id = datastore_image_name(name, frame, role)
            label = study.labels.get(t) if with_labels else None
            img_path = out / f"{image_id}.nii.gz"
            lab_path = out / LABELS_FINAL / f"{image_id}.nii.gz" if label is not None else None
            for p in (img_path, lab_path):
                if p is not None and p.exists() and not overwrite:
                    raise FileExistsError(f"{p} exists; pass overwrite to replace it")
            entry = DatastoreImage(image_id, name, t, frame, role, study.source, labelled=label is not None)
            planned.append((entry, img_path, lab_path))
        out.mkdir(parents=True, exist_ok=True)
        for entry, img_path, lab_path in planned:
            aff, spacing = study.affine, study.spacing_mm
            write_nifti(img_path, study.image[entry.phase], aff, spacing, overwrite=overwrite)
            if lab_path is not None:
                write_nifti(lab_path, study.labels[entry.phase], aff, spacing, overwrite=True)
            manifest.images[entry.image_id] = asdict(entry)
            written.append(entry)
        with atomic_path(manifest_path, overwrite=True) as tmp:
            tmp.write_text(json.dumps({"images": manifest.images}, indent=1) + "\n")
        if progress is not None:
            what = ", ".join(f"t{e.frame:02d}{' ' + e.role if e.role else ''}" for e, _, _ in planned)
            progress(f"{name}: {len(planned)} image(s) ({what})")
    return written


def study_of(image_id: str, manifest: dict[str, dict[str, Any]]) -> str:
    """Return the study of an image: from the datastore manifest, else the id before ``_t<NN>``."""
    if image_id in manifest:
        return str(manifest[image_id]["study"])
    head, sep, tail = image_id.rpartition("_t")
    return head if sep and tail[:2].isdigit() else image_id


def split_by_study(
    datalist: Sequence[dict[str, str]], val_split: float, manifest: dict[str, dict[str, Any]] | None = None
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Split labelled images into training and validation with every study's phases on one side.

    Studies are sorted by name and every ``round(1 / val_split)``-th one (at least one when there are two
    or more studies and ``val_split > 0``) goes to validation: deterministic, so a repeated train round
    validates on the same studies. With a single study, or ``val_split <= 0``, validation is empty.

    Args:
        datalist: ``[{"image": path, "label": path}, ...]`` (MONAI Label's ``datastore.datalist()``).
        val_split: fraction of studies for validation (0-1).
        manifest: ``cardiacseg_datastore.json``'s ``images`` (image id -> entry with ``study``).

    Returns:
        ``(train, validation)`` items, each with a ``patient`` key (the study).

    Example:
        >>> items = [{"image": f"/d/{s}_t0{t}.nii.gz", "label": "l"} for s in "abc" for t in (0, 9)]
        >>> tr, va = split_by_study(items, 0.34)
        >>> sorted({i["patient"] for i in va}), len(tr)
        (['c'], 4)

    """
    manifest = manifest or {}
    items = []
    for d in datalist:
        image_id = Path(d["image"]).name.removesuffix(".gz").removesuffix(".nii")
        items.append({**d, "patient": study_of(image_id, manifest)})
    studies = sorted({i["patient"] for i in items})
    val: set[str] = set()
    if val_split > 0 and len(studies) > 1:
        step = max(1, round(1 / val_split))
        val = {s for k, s in enumerate(studies) if (k + 1) % step == 0} or {studies[-1]}
        if len(val) == len(studies):
            val = {studies[-1]}
    return [i for i in items if i["patient"] not in val], [i for i in items if i["patient"] in val]


def stage_epochs(max_epochs: int, stage1_epochs: int | None = None) -> tuple[int, int]:
    """Epochs of the frozen-encoder stage and of the fine-tuning stage for a train round.

    The transfer bundle's default ratio (10 frozen then 20 unfrozen: one third frozen) scaled to
    ``max_epochs``; at least one frozen epoch.

    Example:
        >>> stage_epochs(30), stage_epochs(1), stage_epochs(6, 2)
        ((10, 20), (1, 0), (2, 4))

    """
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")
    s1 = max(1, round(max_epochs / 3)) if stage1_epochs is None else min(max(1, stage1_epochs), max_epochs)
    return s1, max_epochs - s1
