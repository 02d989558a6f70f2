"""Pseudo-labels with confidence sets on real studies whose reference volumes are known.

References are computed here without cardiacseg: the Sunnybrook expert contours by polygon fill
(``tests.conftest.independent_sunnybrook_volumes``), the ACDC expert labels by counting LV voxels
(label 3) in the SSL4MIS HDF5 files with h5py and numpy. Predicted volumes are recounted from the written
label files; set membership must be what those independent relative errors say.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pydicom
import pytest

from cardiacseg.cli import FAST_PRESET, main
from cardiacseg.data.datalist import nifti_slice_items
from cardiacseg.demo import shipped_bundle_path
from cardiacseg.inferers import SlicePredictor
from cardiacseg.io.kaggle import DsbFormatError
from cardiacseg.io.nifti import write_nifti
from cardiacseg.io.ssl4mis import read_ssl4mis_study
from cardiacseg.workflows.pseudo_label import (
    ReferenceVolumes,
    confidence_sets,
    match_reference_ids,
    parse_tolerances,
    pseudo_label_cohort,
    read_reference_volumes,
    reference_id_from_name,
)
from tests.conftest import SUNNYBROOK, independent_sunnybrook_volumes

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

#: Validation patients of the shipped model (the bundle's split, see tests/bundles/test_shipped_model.py)
#: whose errors span the sets with the fast preset: p5, p10 only, p15 only, none.
ACDC_PATIENTS = ("patient004", "patient024", "patient027", "patient037")
TOLERANCES = (5.0, 10.0, 15.0)


def _xyz_to_tzyx(path: Path) -> np.ndarray:
    data = np.asarray(nib.load(path).dataobj)  # type: ignore[attr-defined]
    return np.transpose(data, tuple(range(data.ndim))[::-1])


def _table(out: Path) -> dict[str, dict[str, str]]:
    with (out / "pseudo_labels.csv").open(newline="") as fh:
        return {r["study"]: r for r in csv.DictReader(fh)}


def _expected_sets(e_edv: float, e_esv: float) -> set[str]:
    return {f"p{k:g}" for k in TOLERANCES if abs(e_edv) <= k / 100 and abs(e_esv) <= k / 100}


def _check_outputs(out: Path, expected: dict[str, set[str]], units: str, studies: Path | None = None) -> None:
    """The table, the datalists and their files agree with the independent set membership.

    With ``studies`` (a folder of NIfTI inputs), each image must be the input's phase, voxel for voxel.
    """
    table = _table(out)
    assert set(table) - {"study999"} == set(expected)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["units"] == units
    for study, sets in expected.items():
        row = table[study]
        assert row["status"] == "compared" and row["units"] == units
        assert {f"p{k:g}" for k in TOLERANCES if row[f"in_p{k:g}"] == "1"} == sets, study
    for k in TOLERANCES:
        name = f"p{k:g}"
        members = sorted(s for s, sets in expected.items() if name in sets)
        datalist = out / f"{name}.json"
        content = json.loads(datalist.read_text())
        assert sorted({e["patient"] for e in content["training"]}) == members
        assert summary["sets"][name]["studies"] == len(members)
        assert len(content["training"]) == 2 * len(members) == content["numTraining"]
        n_slices = 0
        for entry in content["training"]:
            image, label = datalist.parent / entry["image"], datalist.parent / entry["label"]
            assert image.exists() and label.exists() and not Path(entry["image"]).is_absolute()
            img, lab = _xyz_to_tzyx(image), _xyz_to_tzyx(label)
            assert img.ndim == 3 and img.shape == lab.shape
            # the pseudo-label is the segmentation's phase, exactly
            row = table[entry["patient"]]
            t = int(row["ed_phase" if entry["phase"] == "ED" else "es_phase"])
            seg = _xyz_to_tzyx(out / "segmentations" / entry["patient"] / "labels.nii.gz")
            assert np.array_equal(lab, seg[t])
            if studies is not None:
                assert np.array_equal(img, _xyz_to_tzyx(studies / f"{entry['patient']}.nii.gz")[t])
            n_slices += img.shape[0]
        if members:
            items = nifti_slice_items(datalist)
            assert len(items) == n_slices == summary["sets"][name]["images_2d"]
            assert {i["phase"] for i in items} == {"ED", "ES"}


@pytest.fixture(scope="module")
def predictor() -> SlicePredictor:
    try:
        bundle = shipped_bundle_path()
    except FileNotFoundError:
        pytest.skip("no shipped model in this checkout")
    return SlicePredictor.from_bundle(bundle, **FAST_PRESET)


def _acdc_lv_voxels(acdc_dir: Path, patient: str, frame: int) -> int:
    """LV voxels (ACDC label 3) of one frame, straight from the HDF5 file(s)."""
    files = sorted((acdc_dir / "data").glob(f"{patient}_frame{frame:02d}*.h5"))
    assert files
    total = 0
    for f in files:
        with h5py.File(f, "r") as h:
            total += int((np.asarray(h["label"]) == 3).sum())
    return total


@pytest.fixture(scope="module")
def acdc_run(acdc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Four ACDC patients as 4D NIfTI without spacing, a voxel-count reference, and the CLI run."""
    base = tmp_path_factory.mktemp("pseudo_acdc")
    studies = base / "studies"
    lines = ["Id,Systole,Diastole"]
    for pid in ACDC_PATIENTS:
        write_nifti(studies / f"{pid}.nii.gz", read_ssl4mis_study(acdc_dir, pid).image)  # no geometry
        ed, es = _acdc_lv_voxels(acdc_dir, pid, 1), _acdc_lv_voxels(acdc_dir, pid, 2)
        lines.append(f"{int(pid[-3:])},{es},{ed}")
    lines.append("999,50,100")
    lines.append("998,50,100")  # a reference row without a study is fine
    (studies / "study999.nii.gz").write_bytes(b"\x1f\x8b not really a gzip stream")  # fails, batch goes on
    reference = base / "reference_voxels.csv"
    reference.write_text("\n".join(lines) + "\n")
    out = base / "out"
    args = [str(studies), "-o", str(out), "--reference", str(reference), "--reference-units", "voxels"]
    assert main(["pseudo-label", *args, "--fast", "--no-figures", "--quiet"]) == 2
    return studies, reference, out


def test_acdc_sets_match_independent_voxel_counts(acdc_dir: Path, acdc_run: tuple[Path, Path, Path]) -> None:
    """ACDC (no spacing): voxel-unit reference, default name rule patientNNN -> NNN."""
    studies, _, out = acdc_run
    table = _table(out)
    expected: dict[str, set[str]] = {}
    for pid in ACDC_PATIENTS:
        seg = _xyz_to_tzyx(out / "segmentations" / pid / "labels.nii.gz")
        lv = [int((seg[t] == 1).sum()) for t in range(seg.shape[0])]  # internal label 1 = LV
        ed, es = int(np.argmax(lv)), int(np.argmin(lv))  # two phases: ED is the larger
        ref_ed, ref_es = _acdc_lv_voxels(acdc_dir, pid, 1), _acdc_lv_voxels(acdc_dir, pid, 2)
        e_edv, e_esv = (lv[ed] - ref_ed) / ref_ed, (lv[es] - ref_es) / ref_es
        row = table[pid]
        assert int(row["reference_id"]) == int(pid[-3:])
        assert (int(row["ed_phase"]), int(row["es_phase"])) == (ed, es)
        assert float(row["pred_edv"]) == lv[ed] and float(row["ref_esv"]) == ref_es
        assert float(row["edv_rel_error_percent"]) == pytest.approx(100 * e_edv, abs=1e-5)
        assert float(row["esv_rel_error_percent"]) == pytest.approx(100 * e_esv, abs=1e-5)
        expected[pid] = _expected_sets(e_edv, e_esv)
    assert len({frozenset(s) for s in expected.values()}) >= 2  # the patients do not all fall alike
    failed = table["study999"]  # the corrupt study: recorded, in no set, the others done
    assert failed["status"] == "failed" and "study999.nii.gz" in failed["reason"]
    assert failed["in_p15"] == "0" and (out / "segmentations" / "errors" / "study999.txt").exists()
    _check_outputs(out, expected, "voxels", studies)


def test_acdc_rerun_refused_then_overwrite_reuses_segmentations(
    acdc_run: tuple[Path, Path, Path], predictor: SlicePredictor
) -> None:
    studies, reference, out = acdc_run
    before = {p: (out / "segmentations" / p / "report.json").stat().st_mtime_ns for p in ACDC_PATIENTS}
    with pytest.raises(FileExistsError, match="finished pseudo-label run"):
        pseudo_label_cohort([studies], out, predictor, reference, "voxels", progress=False)
    # a reference in mL cannot be compared with voxel counts: said per study, no set, no failure
    result = pseudo_label_cohort(
        [studies], out, predictor, reference, "ml", overwrite=True, progress=False, figures=False
    )
    assert sorted(result.batch.skipped) == sorted(ACDC_PATIENTS)  # same model: nothing re-segmented
    after = {p: (out / "segmentations" / p / "report.json").stat().st_mtime_ns for p in ACDC_PATIENTS}
    assert after == before
    compared = [c for c in result.studies if c.study != "study999"]
    assert all(c.status == "not comparable" and "no voxel spacing" in c.reason for c in compared)
    assert result.sets == {"p5": [], "p10": [], "p15": []}
    assert not result.ok and "study999" in result.batch.failed  # a failed study is tried again
    assert not list((out / "images").glob("*.nii.gz"))  # the earlier run's pairs are gone with their sets
    # another model's segmentations are never taken for this one's
    (out / "summary.json").unlink()
    other = SlicePredictor(predictor.networks, crop_size=160)
    with pytest.raises(FileExistsError, match="another model"):
        pseudo_label_cohort([studies], out, other, reference, "voxels", progress=False)


def test_sunnybrook_sets_match_expert_volumes(
    sunnybrook_dir: Path, predictor: SlicePredictor, tmp_path: Path
) -> None:
    """Two Sunnybrook DICOM studies, expert volumes in mL, matched through an id map."""
    dicom = sorted(SUNNYBROOK)
    truth = {
        d: independent_sunnybrook_volumes(sunnybrook_dir / "dicoms" / d, sunnybrook_dir / "contourfiles" / c)
        for d, c in SUNNYBROOK.items()
    }
    ids = {d: int(c.rsplit("-", 1)[1]) for d, c in SUNNYBROOK.items()}  # SC-HF-I-1 -> 1
    reference = tmp_path / "sunnybrook_ml.csv"
    reference.write_text(
        "Id,Systole,Diastole\n" + "".join(f"{ids[d]},{truth[d]['esv']},{truth[d]['edv']}\n" for d in dicom)
    )
    id_map = tmp_path / "ids.csv"
    id_map.write_text("study,Id\n" + "".join(f"{d},{ids[d]}\n" for d in dicom))
    out = tmp_path / "out"
    result = pseudo_label_cohort(
        [sunnybrook_dir / "dicoms"], out, predictor, reference, id_map=id_map, progress=False, figures=False
    )
    assert result.ok
    expected: dict[str, set[str]] = {}
    for d in dicom:
        ds = pydicom.dcmread(next((sunnybrook_dir / "dicoms" / d).glob("*.dcm")), stop_before_pixels=True)
        voxel_ml = float(ds.PixelSpacing[0]) * float(ds.PixelSpacing[1]) * truth[d]["slice_spacing"] / 1000
        seg = _xyz_to_tzyx(out / "segmentations" / d / "labels.nii.gz")
        lv = (seg == 1).sum(axis=(1, 2, 3))
        ed, es = int(np.argmax(lv)), int(np.argmin(lv))
        e_edv = (lv[ed] * voxel_ml - truth[d]["edv"]) / truth[d]["edv"]
        e_esv = (lv[es] * voxel_ml - truth[d]["esv"]) / truth[d]["esv"]
        (row,) = [c for c in result.studies if c.study == d]
        assert row.reference_id == ids[d] and (row.ed_phase, row.es_phase) == (ed, es)
        assert row.edv_rel_error == pytest.approx(e_edv, abs=1e-4)
        assert row.esv_rel_error == pytest.approx(e_esv, abs=1e-4)
        expected[d] = _expected_sets(e_edv, e_esv)
    _check_outputs(out, expected, "mL")
    summary = json.loads((out / "summary.json").read_text())
    assert "study,Id table" in summary["matching_rule"]


# --- bad input, refused before anything is segmented -------------------------------------------------


@pytest.fixture()
def tiny_studies(tmp_path: Path) -> Path:
    studies = tmp_path / "studies"
    for name in ("patient004", "patient009"):
        write_nifti(studies / f"{name}.nii.gz", np.zeros((2, 3, 8, 8), np.float32))
    return studies


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_missing_reference_ids_are_refused(
    tiny_studies: Path, predictor: SlicePredictor, tmp_path: Path
) -> None:
    ref = _csv(tmp_path / "ref.csv", "Id,Systole,Diastole\n4,50,120\n")
    with pytest.raises(ValueError, match=r"no row for 1 study\(ies\): patient009 -> Id 9"):
        pseudo_label_cohort([tiny_studies], tmp_path / "out", predictor, ref, progress=False)
    assert not (tmp_path / "out" / "segmentations").exists()
    id_map = _csv(tmp_path / "ids.csv", "study,Id\npatient004,4\n")
    with pytest.raises(ValueError, match="'patient009' is not in the id map"):
        pseudo_label_cohort([tiny_studies], tmp_path / "out", predictor, ref, id_map=id_map, progress=False)
    inside = tiny_studies / "out"
    with pytest.raises(ValueError, match="lies inside the input"):
        pseudo_label_cohort([tiny_studies], inside, predictor, ref, progress=False)


def test_bad_reference_tables_are_refused(tmp_path: Path) -> None:
    no_columns = _csv(tmp_path / "a.csv", "Id,EDV,ESV\n1,120,50\n")
    with pytest.raises(DsbFormatError, match="Id,Systole,Diastole"):
        read_reference_volumes(no_columns)
    negative = _csv(tmp_path / "b.csv", "Id,Systole,Diastole\n1,50,120\n2,-5,100\n")
    with pytest.raises(DsbFormatError, match=re.escape("Id 2 has Systole = -5.0")):
        read_reference_volumes(negative)
    zero = _csv(tmp_path / "c.csv", "Id,Systole,Diastole\n1,50,0\n")
    with pytest.raises(DsbFormatError, match=re.escape("Id 1 has Diastole = 0.0")):
        read_reference_volumes(zero)
    twice = _csv(tmp_path / "d.csv", "Id,Systole,Diastole\n1,50,120\n1,55,125\n")
    with pytest.raises(DsbFormatError, match="more than once"):
        read_reference_volumes(twice)
    solution = _csv(tmp_path / "e.csv", "Id,Volume\n1_Systole,50\n1_Diastole,120\n")
    assert read_reference_volumes(solution, "voxels") == {1: ReferenceVolumes(1, 120.0, 50.0, "voxels")}


def test_cli_refuses_bad_tables_before_loading_the_model(tiny_studies: Path, tmp_path: Path) -> None:
    bad = _csv(tmp_path / "bad.csv", "Id,EDV,ESV\n4,120,50\n")
    args = ["pseudo-label", str(tiny_studies), "-o", str(tmp_path / "out"), "--reference", str(bad)]
    assert main(args) == 1
    good = _csv(tmp_path / "good.csv", "Id,Systole,Diastole\n4,50,120\n9,40,100\n")
    args[-1] = str(good)
    assert main([*args, "--tolerances", "5,ten"]) == 1
    assert main([*args, "--id-map", str(_csv(tmp_path / "ids.csv", "name,Id\n"))]) == 1
    assert not (tmp_path / "out").exists()


def test_matching_rule_and_set_rule() -> None:
    assert reference_id_from_name("12") == 12 and reference_id_from_name("SCD0000201") == 201
    for ambiguous in ("scan", "p1_scan2"):
        with pytest.raises(ValueError, match="--id-map"):
            reference_id_from_name(ambiguous)
    refs = {i: ReferenceVolumes(i, 100.0, 40.0, "ml") for i in (1, 2)}
    with pytest.raises(ValueError, match="several studies match one reference Id"):
        match_reference_ids(["a1", "b001"], refs)
    with pytest.warns(UserWarning, match="not among the inputs"):
        assert match_reference_ids(["x"], refs, {"x": 2, "y": 1}) == {"x": 2}
    # inclusive bounds, both volumes must agree
    assert confidence_sets(0.05, -0.05) == ("p5", "p10", "p15")
    assert confidence_sets(0.0, 0.1000001) == ("p15",)
    assert confidence_sets(-0.2, 0.0) == ()
    assert parse_tolerances("15,5") == (5.0, 15.0)
    for bad in ("", "5,5", "0", "nan", "x"):
        with pytest.raises(ValueError, match=re.compile("toleran", re.I)):
            parse_tolerances(bad)
