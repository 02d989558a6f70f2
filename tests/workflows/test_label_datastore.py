"""`cardiacseg label-datastore` and `label-app`: what MONAI Label is served, checked against the sources."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cardiacseg.cli import main
from cardiacseg.io.nifti import read_nifti_study, write_nifti
from cardiacseg.io.study import CineStudy
from cardiacseg.metrics.uncertainty import heart_region_entropy
from cardiacseg.workflows.label_app import write_label_app
from cardiacseg.workflows.label_datastore import (
    DATASTORE_MANIFEST,
    check_datastore_image,
    check_datastore_label,
    choose_phases,
    split_by_study,
    stage_epochs,
    write_label_datastore,
)

DEMO = Path(__file__).resolve().parents[2] / "cardiacseg" / "data" / "demo" / "SCD0000101"


def _zyx(path: Path) -> np.ndarray:
    return np.transpose(np.asarray(nib.load(str(path)).dataobj), (2, 1, 0))


def test_acdc_ed_es_with_expert_labels_round_trip(acdc_dir: Path, tmp_path: Path) -> None:
    from cardiacseg.io.ssl4mis import read_ssl4mis_study

    study = read_ssl4mis_study(acdc_dir, "patient004")
    ds = tmp_path / "ds"
    written = write_label_datastore([("patient004", study)], ds, phases="ed-es", with_labels=True)
    assert [(w.image_id, w.role, w.labelled) for w in written] == [
        ("patient004_t00_ED", "ED", True),
        ("patient004_t01_ES", "ES", True),
    ]
    for w in written:
        image = ds / f"{w.image_id}.nii.gz"
        assert np.array_equal(_zyx(image), study.image[w.phase])
        assert np.array_equal(_zyx(ds / "labels" / "final" / image.name), study.labels[w.phase])
        assert read_nifti_study(image).spacing_mm is None  # ACDC HDF5 has no spacing: none is made up
        check_datastore_label(ds / "labels" / "final" / image.name, image)
    manifest = json.loads((ds / DATASTORE_MANIFEST).read_text())["images"]
    assert manifest["patient004_t01_ES"]["study"] == "patient004"
    before = {p: p.stat().st_mtime_ns for p in ds.rglob("*.nii.gz")}
    with pytest.raises(FileExistsError, match="patient004_t00_ED"):
        write_label_datastore([("patient004", study)], ds, phases="ed-es")
    assert {p: p.stat().st_mtime_ns for p in ds.rglob("*.nii.gz")} == before


def test_cli_finds_ed_es_of_a_dicom_study_like_the_expert(tmp_path: Path) -> None:
    """The packaged Sunnybrook study: ED/ES chosen by the shipped model are the expert-contoured phases."""
    from cardiacseg.io.discover import read_study
    from cardiacseg.io.sunnybrook import read_sunnybrook_study

    expert = read_sunnybrook_study(DEMO / "dicom", DEMO / "contours")
    ds = tmp_path / "ds"
    assert main(["label-datastore", str(DEMO / "dicom"), "-o", str(ds), "--quiet"]) == 0
    names = sorted(p.name for p in ds.glob("*.nii.gz"))
    name = next(iter(json.loads((ds / DATASTORE_MANIFEST).read_text())["images"].values()))["study"]
    assert names == [f"{name}_t{expert.es_phase:02d}_ES.nii.gz", f"{name}_t{expert.ed_phase:02d}_ED.nii.gz"]
    study = read_study(DEMO / "dicom")
    ed_file = ds / f"{name}_t{expert.ed_phase:02d}_ED.nii.gz"
    assert np.array_equal(_zyx(ed_file), study.image[expert.ed_phase])
    assert study.affine is not None
    np.testing.assert_allclose(nib.load(str(ed_file)).affine, study.affine, atol=1e-4)
    assert main(["label-datastore", str(DEMO / "dicom"), "-o", str(ds), "--quiet"]) == 1  # exists


def test_choose_phases_rules() -> None:
    s = CineStudy(image=np.zeros((4, 2, 4, 4), np.float32))
    assert choose_phases(s, "all") == {0: "", 1: "", 2: "", 3: ""}
    with pytest.raises(ValueError, match="does not name its ED and ES"):
        choose_phases(s, "ed-es")
    lv = {t: np.zeros((2, 4, 4), np.uint8) for t in range(4)}
    lv[2][:, :2, :2] = 1  # largest LV: ED
    lv[1][0, 0, 0] = 1
    lv[0][:, :1, :2] = 1
    lv[3][:, :1, :1] = 1  # smallest non-zero... phase 1 has 1 voxel: ES
    assert choose_phases(s, "ed-es", segment=lambda _: lv) == {1: "ES", 2: "ED"}
    assert choose_phases(s, "all", segment=lambda _: lv) == {0: "", 1: "ES", 2: "ED", 3: ""}
    with pytest.raises(ValueError, match="phases must be"):
        choose_phases(s, "es")  # type: ignore[arg-type]


def test_label_checks_name_the_problem(tmp_path: Path) -> None:
    img = write_nifti(tmp_path / "img.nii.gz", np.zeros((3, 8, 8), np.float32), spacing_mm=(8, 1.5, 1.5))
    ok = write_nifti(tmp_path / "ok.nii.gz", np.full((3, 8, 8), 3, np.uint8), spacing_mm=(8, 1.5, 1.5))
    check_datastore_label(ok, img)
    wrong_shape = write_nifti(tmp_path / "shape.nii.gz", np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"shape.nii.gz.*\(2, 8, 8\).*\(3, 8, 8\)"):
        check_datastore_label(wrong_shape, img)
    values = write_nifti(
        tmp_path / "values.nii.gz", np.full((3, 8, 8), 4, np.uint8), spacing_mm=(8, 1.5, 1.5)
    )
    with pytest.raises(ValueError, match=r"values \[4\]"):
        check_datastore_label(values, img)
    four_d = write_nifti(tmp_path / "cine.nii.gz", np.zeros((5, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="one cardiac phase per image"):
        check_datastore_image(four_d)
    (tmp_path / "junk.nii.gz").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"junk\.nii\.gz"):
        check_datastore_image(tmp_path / "junk.nii.gz")
    with pytest.raises(ValueError, match="not a NIfTI"):
        check_datastore_image(tmp_path / "a.png")


def test_split_keeps_every_study_on_one_side() -> None:
    items = [
        {"image": f"/d/s{k}_t{t:02d}_{r}.nii.gz", "label": "x"}
        for k in range(7)
        for t, r in ((0, "ED"), (9, "ES"))
    ]
    train, val = split_by_study(items, 0.2)
    tr, va = {i["patient"] for i in train}, {i["patient"] for i in val}
    assert tr.isdisjoint(va) and tr | va == {f"s{k}" for k in range(7)}
    assert len(va) == 1 and len(val) == 2  # every 5th of 7 sorted studies
    manifest = {"odd_name": {"study": "s0"}}
    train, val = split_by_study([{"image": "/d/odd_name.nii.gz", "label": "x"}, *items[:2]], 0.5, manifest)
    assert {i["patient"] for i in train + val} == {"s0"} and val == []  # one study: no validation
    assert stage_epochs(30) == (10, 20) and stage_epochs(1) == (1, 0) and stage_epochs(4, 9) == (4, 0)
    with pytest.raises(ValueError):
        stage_epochs(0)


def test_heart_region_entropy_by_hand() -> None:
    p = np.zeros((4, 2, 3))
    p[0] = 1.0  # all background: no heart region
    assert heart_region_entropy(p) == pytest.approx(math.log(4))
    p[:, 0, 0] = [0.5, 0.5, 0.0, 0.0]  # entropy log 2
    p[:, 0, 1] = [0.0, 1.0, 0.0, 0.0]  # entropy 0
    assert heart_region_entropy(p) == pytest.approx(math.log(2) / 2)
    with pytest.raises(ValueError):
        heart_region_entropy(np.full((4, 2), 1.5))
    with pytest.raises(ValueError):
        heart_region_entropy(np.ones(3))


def test_label_app_folder_and_trained_weights_are_kept(tmp_path: Path) -> None:
    app = write_label_app(tmp_path / "app")
    bundle = app / "model" / "cardiac_cine_seg"
    assert (app / "main.py").read_text().count("CardiacSegApp") >= 2
    for part in ("configs/inference.json", "configs/train.json", "configs/transfer.json", "models/model.pt"):
        assert (bundle / part).is_file(), part
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_label_app(app)
    (bundle / "models" / "model.pt").write_bytes(b"trained weights")
    write_label_app(app, overwrite=True)
    kept = list((bundle / "models" / "history").glob("model_*.pt"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"trained weights"
    assert (bundle / "models" / "model.pt").read_bytes() != b"trained weights"


def test_a_label_elsewhere_than_its_image_is_refused(tmp_path: Path) -> None:
    img = write_nifti(tmp_path / "img.nii.gz", np.zeros((3, 8, 8), np.float32), spacing_mm=(8, 1.5, 1.5))
    aff = nib.load(str(img)).affine.copy()
    aff[:3, 3] += 50.0
    moved = write_nifti(tmp_path / "moved.nii.gz", np.zeros((3, 8, 8), np.uint8), affine=aff)
    with pytest.raises(ValueError, match=r"moved.nii.gz: its geometry .* 50.0 mm"):
        check_datastore_label(moved, img)


def test_existing_images_stop_the_run_before_any_work(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "p1_t03_ES.nii.gz").write_bytes(b"earlier")
    calls = []

    def segment(study: CineStudy) -> dict[int, np.ndarray]:
        calls.append(1)
        return {}

    s = CineStudy(image=np.zeros((4, 2, 4, 4), np.float32))
    with pytest.raises(FileExistsError, match=r"p1_t03_ES\.nii\.gz exists"):
        write_label_datastore([("p1", s)], ds, segment=segment)
    assert calls == [] and (ds / "p1_t03_ES.nii.gz").read_bytes() == b"earlier"
