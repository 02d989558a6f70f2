"""Body surface area, indexed volumes and reference ranges: hand-computed values, DICOM/ACDC/CSV sources."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cardiacseg.clinical.indices import compute_cardiac_indices
from cardiacseg.clinical.reference_ranges import (
    SHIPPED_REFERENCE_RANGES,
    assess_reference_ranges,
    body_surface_area_m2,
    indexed_indices,
    load_reference_ranges,
)
from cardiacseg.enums import CurationKind
from cardiacseg.io.patients import read_patient_table
from cardiacseg.io.study import PatientInfo


def test_bsa_formulas_against_hand_computed_values() -> None:
    # Mosteller: sqrt(180 * 80 / 3600) = sqrt(4) = 2 exactly
    assert body_surface_area_m2(180.0, 80.0) == 2.0
    # Du Bois for 170 cm, 70 kg: 0.007184 * 6.0836 * 41.409 = 1.810 m² (by hand, 4 digits)
    assert body_surface_area_m2(170.0, 70.0, "du_bois") == pytest.approx(1.810, abs=0.001)
    with pytest.raises(ValueError, match="positive"):
        body_surface_area_m2(0.0, 70.0)
    with pytest.raises(ValueError, match="unknown BSA formula"):
        body_surface_area_m2(170.0, 70.0, "haycock")  # type: ignore[arg-type]


def _phantom_indices(edv_ml: float, esv_ml: float, myo_ml: float) -> object:
    """Indices of a phantom with whole-mL voxels: EDV/ESV/MYO as voxel counts of 1 mL each."""
    ed = np.zeros((1, 20, 20), np.uint8)
    es = np.zeros((1, 20, 20), np.uint8)
    ed.reshape(-1)[: int(edv_ml)] = 1
    ed.reshape(-1)[int(edv_ml) : int(edv_ml + myo_ml)] = 2
    es.reshape(-1)[: int(esv_ml)] = 1
    return compute_cardiac_indices({0: ed, 1: es}, spacing_mm=(10.0, 10.0, 10.0), ed_phase=0, es_phase=1)


def test_indexed_values_and_status_against_the_shipped_ranges() -> None:
    idx = _phantom_indices(edv_ml=170, esv_ml=100, myo_ml=100)  # EF 41.2 %, mass 105 g
    assert idx.lv_edv_ml == 170.0 and idx.lv_mass_g == pytest.approx(105.0)
    indexed = indexed_indices(idx, 2.0)
    assert indexed["lv_edv_ml_per_m2"] == 85.0 and indexed["lv_mass_g_per_m2"] == 52.5
    assert idx.rv_edv_ml is None and indexed["rv_edv_ml_per_m2"] is None  # no RV: unavailable, not 0
    out = assess_reference_ranges(idx, PatientInfo(180.0, 80.0, "M", 50.0, source="test"))
    assert out["body_size"]["bsa_m2"] == 2.0 and out["body_size"]["bsa_formula"].startswith("Mosteller")
    rows = {r["key"]: r for r in out["reference_ranges"]["rows"]}
    # men, Kawel-Boehm 2015: EF 67 ± 5 -> 57.2..76.8; ESV 54 ± 14 -> 26.6..81.4;
    # EDV/BSA 81 ± 12 -> 57.5..104.5
    assert (rows["lv_ef_percent"]["lower"], rows["lv_ef_percent"]["upper"]) == (57.2, 76.8)
    assert rows["lv_ef_percent"]["status"] == "below"
    assert rows["lv_esv_ml"]["status"] == "above"
    assert rows["lv_edv_ml_per_m2"]["status"] == "within"
    assert rows["rv_ef_percent"]["status"] == "not assessed"  # no shipped RV EF range
    assert "Kawel-Boehm" in out["reference_ranges"]["source"]
    # women: ESV 44 ± 11 -> 22.4..65.6; EDV 132 ± 23 -> 86.9..177.1, so 170 mL is within
    women = {
        r["key"]: r for r in assess_reference_ranges(idx, PatientInfo(sex="F"))["reference_ranges"]["rows"]
    }
    assert (women["lv_esv_ml"]["lower"], women["lv_esv_ml"]["upper"]) == (22.4, 65.6)
    assert women["lv_edv_ml"]["status"] == "within"  # 170 <= 177.1
    assert women["lv_edv_ml_per_m2"]["status"] == "not assessed"
    assert "no BSA" in women["lv_edv_ml_per_m2"]["reason"]


def test_unknown_sex_uses_both_ranges_and_children_are_not_assessed() -> None:
    idx = _phantom_indices(edv_ml=200, esv_ml=60, myo_ml=100)
    rows = {r["key"]: r for r in assess_reference_ranges(idx, None)["reference_ranges"]["rows"]}
    # EDV: men 107.1..212.9, women 86.9..177.1 -> union 86.9..212.9: 200 mL is within
    assert (rows["lv_edv_ml"]["lower"], rows["lv_edv_ml"]["upper"]) == (86.9, 212.9)
    assert rows["lv_edv_ml"]["status"] == "within" and "sex unknown" in rows["lv_edv_ml"]["reason"]
    child = assess_reference_ranges(idx, PatientInfo(150.0, 40.0, "F", 12.0))["reference_ranges"]["rows"]
    assert {r["status"] for r in child} == {"not assessed"}


def test_a_laboratory_table_from_json(tmp_path: Path) -> None:
    table = {
        "name": "lab X",
        "sources": {"x": {"citation": "Lab X normal values 2026", "url": "", "note": ""}},
        "ranges": [
            {"key": "rv_ef_percent", "sex": "M", "lower": 45.0, "upper": 70.0, "source": "x"},
            {"key": "lv_ef_percent", "sex": "M", "mean": 60.0, "sd": 5.0, "source": "x"},
        ],
    }
    path = tmp_path / "ranges.json"
    path.write_text(json.dumps(table))
    loaded = load_reference_ranges(path)
    lv = loaded.lookup("lv_ef_percent", "M")
    assert lv is not None and (lv.lower, lv.upper) == (50.2, 69.8)
    assert load_reference_ranges(path).to_dict()["ranges"][0]["upper"] == 70.0
    # the shipped table survives a JSON round trip
    shipped = tmp_path / "shipped.json"
    shipped.write_text(json.dumps(SHIPPED_REFERENCE_RANGES.to_dict()))
    assert load_reference_ranges(shipped).ranges == SHIPPED_REFERENCE_RANGES.ranges
    for bad, message in (
        ({"key": "lv_edv", "sex": "M", "lower": 1, "upper": 2, "source": "x"}, "unknown index"),
        ({"key": "lv_edv_ml", "sex": "X", "lower": 1, "upper": 2, "source": "x"}, "sex must be"),
        ({"key": "lv_edv_ml", "sex": "M", "lower": 3, "upper": 2, "source": "x"}, "lower 3.0 > upper"),
        ({"key": "lv_edv_ml", "sex": "M", "lower": 1, "upper": 2, "source": "y"}, "not described"),
        ({"key": "lv_edv_ml", "sex": "M", "source": "x"}, "needs numeric"),
    ):
        path.write_text(json.dumps({**table, "ranges": [bad]}))
        with pytest.raises(ValueError, match=message) as err:
            load_reference_ranges(path)
        assert str(path) in str(err.value)


def test_patient_table_csv(tmp_path: Path) -> None:
    path = tmp_path / "patients.csv"
    path.write_text("study,height_cm,weight_kg,sex,age_years\nA,172,70.5,f,40\nB,,,,\n")
    table = read_patient_table(path)
    assert table["A"] == PatientInfo(172.0, 70.5, "F", 40.0, source="given by the user (patients.csv)")
    assert not table["B"].known
    for text, message in (
        ("height_cm\n170\n", "needs a 'study' column"),
        ("study,bmi\nA,20\n", "unknown column"),
        ("study,height_cm\nA,170\nA,171\n", "appears twice"),
        ("study,height_cm\nA,-3\n", "patients.csv:2: height_cm must be a positive"),
        ("study,sex\nA,O\n", "sex must be"),
    ):
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_patient_table(path)


def test_acdc_info_cfg_height_and_weight(tmp_path: Path) -> None:
    from cardiacseg.io.acdc import read_acdc_patient, write_acdc_patient
    from cardiacseg.io.study import CineStudy

    study = CineStudy(
        image=np.zeros((2, 2, 8, 8), np.float32), spacing_mm=(10.0, 1.5, 1.5), ed_phase=0, es_phase=1
    )
    folder = write_acdc_patient(tmp_path / "patient001", study, group="NOR", height_cm=184.0, weight_kg=95.0)
    back = read_acdc_patient(folder)
    assert back.patient == PatientInfo(184.0, 95.0, source="ACDC Info.cfg")


@pytest.mark.realdata
def test_dicom_patient_module_reaches_the_report(sunnybrook_dir: Path, tmp_path: Path) -> None:
    """PatientSize in metres, PatientWeight, PatientSex and PatientAge written into a copy of the real
    Sunnybrook study are read, indexed and assessed; a height written in cm is ignored with a warning."""
    from cardiacseg.io import read_dicom_cine

    src = sunnybrook_dir / "dicoms" / "SCD0000101"
    dst = tmp_path / "SCD0000101"
    shutil.copytree(src, dst)
    for f in dst.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.PatientSize, ds.PatientWeight, ds.PatientSex, ds.PatientAge = "1.72", "68", "F", "054Y"
        ds.save_as(f)
    study = read_dicom_cine(dst)
    assert study.patient == PatientInfo(172.0, 68.0, "F", 54.0, source="DICOM Patient module")
    bsa = math.sqrt(172.0 * 68.0 / 3600.0)
    out = assess_reference_ranges(_phantom_indices(150, 60, 90), study.patient)
    assert out["body_size"]["bsa_m2"] == pytest.approx(bsa, abs=1e-4)
    # a user's value wins over the file's, the others stay
    merged = study.patient.updated(PatientInfo(weight_kg=70.0, source="given by the user"))
    assert (merged.height_cm, merged.weight_kg, merged.sex) == (172.0, 70.0, "F")
    for f in dst.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.PatientSize = "172"  # cm written where DICOM wants metres
        ds.save_as(f)
    study = read_dicom_cine(dst)
    assert study.patient is not None and study.patient.height_cm is None and study.patient.weight_kg == 68.0
    (issue,) = study.curation.of_kind(CurationKind.PATIENT_DATA)
    assert "PatientSize 172" in issue.message and issue.severity == "warning"


def test_cli_body_size_options_describe_one_study(tmp_path: Path) -> None:
    from cardiacseg.cli import main

    with pytest.raises(SystemExit, match="one study"):
        main(["segment", "a", "b", "-o", str(tmp_path), "--height-cm", "170"])
    with pytest.raises(SystemExit, match="--patient-info or"):
        main(["segment", "a", "-o", str(tmp_path), "--weight-kg", "70", "--patient-info", "p.csv"])
    with pytest.raises(SystemExit, match="height_cm must be a positive"):
        main(["segment", "a", "-o", str(tmp_path), "--height-cm", "-170"])


def test_implausible_body_sizes_are_refused(tmp_path: Path) -> None:
    from cardiacseg.cli import main

    path = tmp_path / "patients.csv"
    path.write_text("study,height_cm,weight_kg\nA,1.78,82\n")  # a height in metres
    with pytest.raises(
        ValueError, match=r"patients.csv:2: height 1.78 cm is outside 40-250 cm \(a height in metres"
    ):
        read_patient_table(path)
    path.write_text("study,height_cm,weight_kg,age_years\nA,178,820,40\n")  # grams?
    with pytest.raises(ValueError, match="weight 820 kg is outside 2-400 kg"):
        read_patient_table(path)
    with pytest.raises(SystemExit, match="age 250 years is outside"):
        main(["segment", "a", "-o", str(tmp_path), "--age-years", "250"])


def test_unknown_sex_with_a_one_sex_range_is_not_assessed(tmp_path: Path) -> None:
    table = {
        "name": "lab",
        "sources": {"x": {"citation": "Lab", "url": "", "note": ""}},
        "ranges": [{"key": "lv_ef_percent", "sex": "M", "lower": 55.0, "upper": 73.0, "source": "x"}],
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(table))
    idx = _phantom_indices(edv_ml=200, esv_ml=150, myo_ml=100)  # EF 25 %
    rows = {
        r["key"]: r
        for r in assess_reference_ranges(idx, None, load_reference_ranges(path))["reference_ranges"]["rows"]
    }
    assert rows["lv_ef_percent"]["status"] == "not assessed"
    assert "one sex only" in rows["lv_ef_percent"]["reason"]
    male = {
        r["key"]: r
        for r in assess_reference_ranges(idx, PatientInfo(sex="M"), load_reference_ranges(path))[
            "reference_ranges"
        ]["rows"]
    }
    assert male["lv_ef_percent"]["status"] == "below"


@pytest.mark.realdata
def test_one_patient_for_a_folder_of_studies_is_refused_and_skips_warn(
    sunnybrook_dir: Path, tmp_path: Path
) -> None:
    from cardiacseg.workflows.segment import segment_batch

    with pytest.raises(ValueError, match="body size given for one study, but the inputs hold 2 studies"):
        segment_batch([sunnybrook_dir / "dicoms"], tmp_path / "out", None, patient=PatientInfo(170.0, 70.0))  # type: ignore[arg-type]
    # a finished study (report.json present) is skipped, and a request with another weight says so
    done = tmp_path / "out" / "SCD0000101"
    done.mkdir(parents=True)
    (done / "report.json").write_text(
        json.dumps({"indices": {}, "body_size": {"height_cm": 170.0, "weight_kg": 82.0}})
    )
    with pytest.warns(UserWarning, match="finished earlier with other weight_kg"):
        result = segment_batch(
            [sunnybrook_dir / "dicoms" / "SCD0000101"],
            tmp_path / "out",
            None,
            progress=False,
            patient=PatientInfo(170.0, 60.0),  # type: ignore[arg-type]
        )
    assert result.skipped == ["SCD0000101"]
