"""The shipped bundle as generic MONAI tooling sees it (issue 15).

* ``metadata.json`` passes ``python -m monai.bundle verify_metadata`` offline against the local schema
  written from MONAI's bundle specification (``cardiacseg/schemas/bundle_metadata.json``);
* ``network_def`` passes ``verify_net_in_out`` (the metadata's input/output shapes and channels);
* ``inference.json`` defines every required property of MONAI's ``infer`` workflow, and its
  ``evaluator`` (LoadImaged -> :class:`CineSliceInferer` -> post-processing -> SaveImaged) segments a real
  NIfTI short-axis stack as ``cardiacseg`` itself does, scored against the expert contours;
* :meth:`SlicePredictor.from_bundle` builds what ``inference.json``'s ``predictor`` says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow

from cardiacseg.inferers import SlicePredictor
from cardiacseg.inferers.cine_inferer import CineSliceInferer
from cardiacseg.io.study import CineStudy
from cardiacseg.metrics import dice_score

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "cardiacseg" / "cardiac_cine_seg"
SCHEMA = REPO / "cardiacseg" / "schemas" / "bundle_metadata.json"
META = BUNDLE / "configs" / "metadata.json"
INFERENCE = BUNDLE / "configs" / "inference.json"


def _monai_bundle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args], capture_output=True, text=True, timeout=600, cwd=REPO
    )


def test_metadata_passes_verify_metadata_offline(tmp_path: Path) -> None:
    pytest.importorskip("jsonschema", reason="jsonschema (test extra) is needed by verify_metadata")
    ok = _monai_bundle("verify_metadata", "--meta_file", str(META), "--filepath", str(SCHEMA))
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "metadata is verified with no error" in ok.stdout + ok.stderr
    # the schema is not a rubber stamp: a tensor specifier without its modality fails
    meta = json.loads(META.read_text())
    del meta["network_data_format"]["outputs"]["pred"]["modality"]
    broken = tmp_path / "metadata.json"
    broken.write_text(json.dumps(meta))
    bad = _monai_bundle("verify_metadata", "--meta_file", str(broken), "--filepath", str(SCHEMA))
    assert bad.returncode != 0
    assert "'modality' is a required property" in bad.stdout + bad.stderr


def test_network_passes_verify_net_in_out() -> None:
    ok = _monai_bundle(
        "verify_net_in_out",
        "network_def",
        "--meta_file",
        str(META),
        "--config_file",
        str(INFERENCE),
        "--bundle_root",
        str(BUNDLE),
        "--device",
        "cpu",
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "data shape of network is verified with no error" in ok.stdout + ok.stderr


def test_inference_config_has_monai_infer_properties() -> None:
    wf = ConfigWorkflow(
        config_file=str(INFERENCE), meta_file=str(META), workflow_type="infer", bundle_root=str(BUNDLE)
    )
    wf.initialize()
    assert wf.check_properties() == []
    assert isinstance(wf.parser.get_parsed_content("inferer"), CineSliceInferer)
    parser = wf.parser
    # the predictor used by `run` and the inferer used by generic tools read the same settings
    predictor = parser.get_parsed_content("predictor")
    inferer = parser.get_parsed_content("inferer")
    for key, value in inferer.settings.items():
        assert getattr(predictor, key) == value, key


def test_from_bundle_builds_the_configured_predictor() -> None:
    config = json.loads(INFERENCE.read_text())
    steps = json.loads((BUNDLE / "configs" / "postprocessing.json").read_text())["steps"]
    p = SlicePredictor.from_bundle(BUNDLE)
    for key in ("tta", "crop_size", "crop_fallback_size", "precision", "zscore_region", "target_spacing_mm"):
        assert getattr(p, key) == config[key], key
    assert p.postprocess is not None and list(p.postprocess.steps) == steps
    assert [w.resolve() for w in p.weights_files] == [(BUNDLE / "models" / "model.pt").resolve()]
    assert p.bundle_dir == BUNDLE
    state = torch.load(BUNDLE / "models" / "model.pt", map_location="cpu", weights_only=True)
    first = next(iter(state))
    assert torch.equal(p.network.state_dict()[first].half(), state[first])
    q = SlicePredictor.from_bundle(BUNDLE, tta="none", crop_size=128, weights=[p.weights_files[0]] * 2)
    assert (q.tta, q.crop_size, len(q.networks)) == ("none", 128, 2)
    with pytest.raises(TypeError, match="unknown override 'colour'"):
        SlicePredictor.from_bundle(BUNDLE, colour="red")
    with pytest.raises(FileNotFoundError, match=r"no configs/inference\.json"):
        SlicePredictor.from_bundle(BUNDLE / "configs")


def test_bundle_evaluator_segments_a_real_nifti_stack_like_cardiacseg(
    sunnybrook_dir: Path, tmp_path: Path
) -> None:
    """`run_images` on the ED stack of Sunnybrook SC-HF-I-1 written as NIfTI: the labels equal
    SlicePredictor.predict on the same study, and the LV matches the expert contours."""
    from cardiacseg.io.nifti import write_nifti
    from cardiacseg.io.sunnybrook import read_sunnybrook_study

    study = read_sunnybrook_study(
        sunnybrook_dir / "dicoms" / "SCD0000101", sunnybrook_dir / "contourfiles" / "SC-HF-I-1"
    )
    assert study.ed_phase is not None
    ed = study.ed_phase
    images = tmp_path / "images"
    images.mkdir()
    write_nifti(images / "scd101_ed.nii.gz", study.image[ed], affine=study.affine)
    out = tmp_path / "out"
    parser = ConfigParser()
    parser.read_config(str(INFERENCE))
    parser.read_meta(str(META))
    parser["bundle_root"] = str(BUNDLE)
    parser["dataset_dir"] = str(images)
    parser["output_dir"] = str(out)
    parser["device"] = "cpu"
    for expr in parser.get_parsed_content("run_images"):
        del expr
    written = sorted(out.glob("*.nii*"))
    assert len(written) == 1, written
    seg = np.asarray(nib.load(written[0]).dataobj)  # (X, Y, Z) as saved by MONAI
    labels = np.transpose(seg.squeeze(), (2, 1, 0))  # (Z, Y, X)
    predictor = SlicePredictor.from_bundle(BUNDLE, device="cpu")
    one_phase = CineStudy(image=study.image[ed : ed + 1], spacing_mm=study.spacing_mm, affine=study.affine)
    expected = predictor.predict(one_phase)[0]
    assert labels.shape == expected.shape
    assert np.mean(labels == expected) > 0.9999  # same pipeline; float rounding of the NIfTI round trip
    # a whole cine study also uses the motion of all phases to find the heart: nearly the same labels
    assert np.mean(labels == predictor.predict(study, [ed])[ed]) > 0.99
    reference = study.labels[ed]
    annotated = list(study.annotated_slices.get(ed, range(reference.shape[0])))
    lv_dice = dice_score(labels[annotated] == 1, reference[annotated] == 1)
    assert lv_dice > 0.9, lv_dice
