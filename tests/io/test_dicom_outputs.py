"""DICOM SEG and SR written by `segment --dicom-seg/--dicom-sr`, read back independently (issue 18).

Truth: the labels.nii.gz that segment writes (voxel for voxel on the source grid, each SEG frame placed by
the SOP Instance UID it references, read from the source files with pydicom) and report.json's numbers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

pytest.importorskip("highdicom")

from cardiacseg.io.dicom_seg import segment_frames
from cardiacseg.io.dicom_sr import read_dicom_sr_measurements
from cardiacseg.io.discover import read_study

INDICES = ("lv_edv_ml", "lv_esv_ml", "lv_sv_ml", "lv_ef_percent", "lv_mass_g", "rv_edv_ml", "rv_esv_ml")
INDICES += ("rv_sv_ml", "rv_ef_percent")


@pytest.fixture(scope="module")
def predictor() -> object:
    from cardiacseg.demo import shipped_bundle_path
    from cardiacseg.inferers import SlicePredictor

    return SlicePredictor.from_bundle(shipped_bundle_path(), tta="none")


def _dciodvfy_errors(path: Path) -> list[str]:
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    lines = (out.stdout + out.stderr).splitlines()
    # the source study's own UIDs have leading zeros in a component (invalid, inherited by reference)
    return [
        line
        for line in lines
        if line.startswith("Error")
        and "Leading zeroes" not in line
        and "invalid data values for Value Representations" not in line
    ]


@pytest.mark.parametrize(
    "study_id",
    ["SCD0000101", pytest.param("SCD0000201", marks=pytest.mark.slow)],  # the second: `make test-slow`
)
def test_seg_and_sr_round_trip_on_sunnybrook(
    study_id: str, sunnybrook_dir: Path, tmp_path: Path, predictor: object
) -> None:
    from cardiacseg.workflows.segment import segment_study

    dicom_dir = sunnybrook_dir / "dicoms" / study_id
    report = segment_study(dicom_dir, tmp_path / study_id, predictor, figures=False, dicom_sr=True)  # type: ignore[arg-type]
    out = tmp_path / study_id
    study = read_study(dicom_dir)
    labels = np.transpose(np.asarray(nib.load(str(out / "labels.nii.gz")).dataobj), (3, 2, 1, 0))
    record = report["dicom_outputs"]
    assert sorted(int(t) for t in record["seg_files"]) == list(range(study.n_phases))
    series = set()
    for t_key, rel in record["seg_files"].items():
        t = int(t_key)
        seg_file = out / rel
        seg = pydicom.dcmread(seg_file)
        series.add(seg.SeriesInstanceUID)
        assert (
            seg.Modality == "SEG"
            and seg.StudyInstanceUID == pydicom.dcmread(study.source_files[t][0]).StudyInstanceUID
        )
        assert [s.SegmentLabel for s in seg.SegmentSequence] == [
            "LV blood pool",
            "LV myocardium",
            "RV blood pool",
        ]
        codes = [s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in seg.SegmentSequence]
        assert codes == ["87612001", "49848007", "87612001"]  # SNOMED CT blood, LV myocardium, blood
        uids = [
            str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in study.source_files[t]
        ]
        referenced = {
            str(ref.ReferencedSOPInstanceUID)
            for fr in seg.PerFrameFunctionalGroupsSequence
            for ref in fr.DerivationImageSequence[0].SourceImageSequence
        }
        assert referenced <= set(uids)
        assert np.array_equal(segment_frames(seg_file, uids), labels[t]), f"phase {t}"
    assert len(series) == 1
    ed, es = report["indices"]["ed_phase"], report["indices"]["es_phase"]
    assert record["seg_files"][str(ed)].endswith("_ED.dcm") and record["seg_files"][str(es)].endswith(
        "_ES.dcm"
    )
    sr_values = read_dicom_sr_measurements(out / record["sr_file"])
    written = json.loads((out / "report.json").read_text())
    for key in INDICES:
        assert sr_values[key] == pytest.approx(written["indices"][key], rel=1e-9), key
    sr = pydicom.dcmread(out / record["sr_file"])
    evidence = {
        str(i.ReferencedSOPInstanceUID)
        for s in sr.CurrentRequestedProcedureEvidenceSequence
        for r in s.ReferencedSeriesSequence
        for i in r.ReferencedSOPSequence
    }
    assert {
        str(pydicom.dcmread(out / record["seg_files"][str(p)]).SOPInstanceUID) for p in (ed, es)
    } <= evidence
    if shutil.which("dciodvfy"):
        for f in (out / record["seg_files"][str(ed)], out / record["sr_file"]):
            assert _dciodvfy_errors(f) == [], f
    # RV ESV is measured at the RV's own end-systole: its group references that phase's SEG
    rv_es = report["indices"]["rv_es_phase"]
    if rv_es != es:
        assert record["seg_files"][str(rv_es)].endswith("_RVES.dcm")
    uid = {t: str(pydicom.dcmread(out / record["seg_files"][str(t)]).SOPInstanceUID) for t in (es, rv_es)}
    rv_group = _group_of(sr.ContentSequence, "RVESV")
    assert rv_group is not None
    refs = _referenced_uids(rv_group)
    assert uid[rv_es] in refs and (rv_es == es or uid[es] not in refs)
    assert f"cardiac phase {rv_es}" in _texts(rv_group)
    # a later run with --overwrite removes these DICOM objects: they would contradict its report
    segment_study(dicom_dir, out, predictor, figures=False, overwrite=True)  # type: ignore[arg-type]
    assert not (out / "dicom_sr.dcm").exists() and not (out / "dicom_seg").exists()


def _group_of(items: object, code: str) -> pydicom.Dataset | None:
    """The content item whose direct children hold the NUM measurement ``code``."""
    for item in items:  # type: ignore[attr-defined]
        children = item.get("ContentSequence", [])
        if any(
            c.get("ValueType") == "NUM" and c.ConceptNameCodeSequence[0].CodeValue == code for c in children
        ):
            return item  # type: ignore[no-any-return]
        found = _group_of(children, code)
        if found is not None:
            return found
    return None


def _referenced_uids(item: pydicom.Dataset) -> set[str]:
    out = {str(r.ReferencedSOPInstanceUID) for r in item.get("ReferencedSOPSequence", [])}
    for child in item.get("ContentSequence", []):
        out |= _referenced_uids(child)
    return out


def _texts(item: pydicom.Dataset) -> str:
    own = str(item.get("TextValue", ""))
    return own + " ".join(_texts(c) for c in item.get("ContentSequence", []))


def test_nifti_input_is_refused_before_any_work(tmp_path: Path, predictor: object, acdc_dir: Path) -> None:
    from cardiacseg.io.nifti import write_nifti
    from cardiacseg.io.ssl4mis import read_ssl4mis_study
    from cardiacseg.workflows.segment import segment_study

    st = read_ssl4mis_study(acdc_dir, "patient004")
    f = write_nifti(tmp_path / "p4.nii.gz", st.image[0])
    with pytest.raises(ValueError, match=r"--dicom-seg needs a study read from DICOM"):
        segment_study(f, tmp_path / "out", predictor, dicom_seg=True)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()
