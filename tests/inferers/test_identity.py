"""Model identity: weight hashes against hashlib/sha256sum, bundle metadata, ensembles, the hash cache."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from cardiacseg import __version__, provenance
from cardiacseg.demo import shipped_bundle_path, shipped_model_path
from cardiacseg.inferers import SlicePredictor
from cardiacseg.inferers.identity import describe_predictor
from cardiacseg.networks import get_network
from cardiacseg.provenance import file_sha256


def test_sha256_equals_hashlib_and_sha256sum(tmp_path: Path) -> None:
    f = tmp_path / "weights.bin"
    f.write_bytes(bytes(range(256)) * 9000 + b"tail")  # > 2 chunks of 1 MiB, not a multiple of one
    expected = hashlib.sha256(f.read_bytes()).hexdigest()
    assert file_sha256(f) == expected
    if shutil.which("sha256sum"):
        out = subprocess.run(["sha256sum", str(f)], capture_output=True, text=True, check=True).stdout
        assert out.split()[0] == expected


def test_each_file_is_hashed_once_until_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = hashlib.sha256

    def counting() -> hashlib._Hash:
        calls.append(1)
        return real()

    monkeypatch.setattr(provenance.hashlib, "sha256", counting)
    f = tmp_path / "a.pt"
    f.write_bytes(b"one")
    first = file_sha256(f)
    for _ in range(5):  # e.g. one describe per study of a batch
        assert file_sha256(f) == first
    assert len(calls) == 1
    f.write_bytes(b"changed")  # new size (and mtime): hashed again
    assert file_sha256(f) == real(b"changed").hexdigest() and len(calls) == 2


@pytest.fixture(scope="module")
def shipped() -> SlicePredictor:
    return SlicePredictor.from_bundle(shipped_bundle_path())


def test_shipped_bundle_predictor_names_bundle_and_weights(shipped: SlicePredictor) -> None:
    meta = json.loads((shipped_bundle_path() / "configs" / "metadata.json").read_text())
    ident = describe_predictor(shipped, slice_range="all")
    assert (ident.bundle_name, ident.bundle_version) == (meta["name"], meta["version"])
    assert ident.package_version == __version__
    sha = hashlib.sha256(shipped_model_path().read_bytes()).hexdigest()
    assert [(w.name, w.sha256) for w in ident.weights] == [("model.pt", sha)]
    inference = json.loads((shipped_bundle_path() / "configs" / "inference.json").read_text())
    assert ident.tta == inference["tta"] and ident.crop_size == inference["crop_size"]
    assert ident.crop_fallback_size == inference["crop_fallback_size"]
    steps = json.loads((shipped_bundle_path() / "configs" / "postprocessing.json").read_text())
    assert set(ident.postprocessing) == set(steps["steps"])
    d = json.loads(json.dumps(ident.to_dict()))  # JSON round trip
    assert d["bundle"] == {"name": meta["name"], "version": meta["version"]}
    assert d["weights"] == [{"file": "model.pt", "sha256": sha}] and d["networks"] == ["UNet"]
    summary = ident.summary()
    assert "\n" not in summary and sha[:12] in summary and meta["version"] in summary
    assert f"TTA {inference['tta']}" in summary


def test_ensemble_lists_both_files(tmp_path: Path) -> None:
    files = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        f = tmp_path / f"member{seed}.pt"
        torch.save(get_network("unet", 2, 1, 4).state_dict(), f)
        files.append(f)
    predictor = SlicePredictor.from_checkpoint(files, tta="flip_rot90", crop_size=128)
    ident = describe_predictor(predictor, slice_range="segmentation rule")
    assert [w.name for w in ident.weights] == ["member1.pt", "member2.pt"]
    assert [w.sha256 for w in ident.weights] == [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    assert ident.weights[0].sha256 != ident.weights[1].sha256
    assert ident.networks == ("UNet", "UNet") and ident.bundle_name is None
    assert (ident.tta, ident.crop_size, ident.slice_range) == ("flip_rot90", 128, "segmentation rule")
    assert ident.to_dict()["bundle"] is None
    assert all(w.sha256[:12] in ident.summary() for w in ident.weights)
