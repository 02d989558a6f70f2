"""The lean MONAI import (cardiacseg._lean_import): same results as a normal import, packages usable after.

Every check runs in a fresh interpreter (``subprocess``): what is in ``sys.modules`` decides what the lean
import can hide, and the test session has long imported MONAI. Two processes do the inference-path work
once each, one after ``import_monai_lean()`` and one after a normal ``import monai``; the tests compare
their numbers (the normal process is the reference). The import times are printed as a ratio, never
asserted (speed is measured by benchmarks/startup.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.io import test_transfer_syntaxes as transfer

REPO = Path(__file__).resolve().parents[1]
INFERENCE_JSON = REPO / "cardiacseg" / "cardiac_cine_seg" / "configs" / "inference.json"

#: The inference-path work done in both processes; ``LEAN`` decides how MONAI is imported. Writes
#: ``result.json`` and the arrays (``.npy``) to ``OUT``.
WORK = """
import json, os, sys, time
from pathlib import Path
OUT = Path(sys.argv[1])
LEAN = sys.argv[2] == "lean"
result = {}
t0 = time.perf_counter()
if LEAN:
    from cardiacseg._lean_import import HIDDEN_PACKAGES, import_monai_lean
    report = import_monai_lean()
    result["report"] = {
        "lean": report.lean, "reason": report.reason, "hidden": list(report.hidden),
        "blocked": report.blocked, "cached_by": list(report.cached_by), "purged": list(report.purged),
    }
    result["hidden_in_sys_modules"] = sorted(
        m for m in sys.modules if m.partition(".")[0] in HIDDEN_PACKAGES
    )
else:
    import monai, monai.bundle
    from cardiacseg._lean_import import import_monai_lean
    noop = import_monai_lean()  # monai is imported: must do nothing
    result["noop"] = {"lean": noop.lean, "reason": noop.reason, "blocked": noop.blocked}
result["import_s"] = time.perf_counter() - t0
result["sys_modules"] = sorted(m for m in sys.modules if "." not in m)

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import Spacing

parser = ConfigParser()
parser.read_config(INFERENCE_JSON)
torch.manual_seed(0)
net = parser.get_parsed_content("network_def")
result["network_class"] = f"{type(net).__module__}.{type(net).__qualname__}"
result["n_parameters"] = sum(p.numel() for p in net.parameters())
net.eval()
x = torch.linspace(-2.0, 2.0, 2 * 96 * 80).reshape(2, 1, 96, 80)
with torch.no_grad():
    np.save(OUT / "logits.npy", net(x).numpy())

image = np.arange(1 * 21 * 17, dtype=np.float32).reshape(1, 21, 17) % 13.0
affine = torch.tensor([[0.8, 0, 0, 3.0], [0, 1.3, 0, -2.0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
spaced = Spacing(pixdim=(1.5, 1.5), mode="bilinear")(MetaTensor(torch.as_tensor(image), affine=affine))
np.save(OUT / "spaced.npy", spaced.numpy())
np.save(OUT / "spaced_affine.npy", spaced.affine.numpy())

if LEAN:  # the hidden packages import normally afterwards: cardiacseg's own figures
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([0, 1, 2], [0, 1, 0])
    fig.savefig(OUT / "figure.png")
    import ignite.engine, mlflow, pandas, sklearn, sympy
    result["imported_after"] = [m.__name__ for m in (ignite.engine, mlflow, pandas, sklearn, sympy)]

(OUT / "result.json").write_text(json.dumps(result))
"""


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; fail with its stderr when it fails."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _work(folder: Path, mode: str) -> dict[str, Any]:
    folder.mkdir()
    code = f"INFERENCE_JSON = {str(INFERENCE_JSON)!r}\n" + WORK
    _run(code, str(folder), mode, env={"CARDIACSEG_FULL_IMPORTS": ""})
    result: dict[str, Any] = json.loads((folder / "result.json").read_text())
    result["dir"] = folder
    return result


@pytest.fixture(scope="module")
def lean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _work(tmp_path_factory.mktemp("lean_import") / "lean", "lean")


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _work(tmp_path_factory.mktemp("lean_import") / "full", "full")


def test_lean_import_hides_and_leaves_nothing_behind(lean: dict[str, Any], full: dict[str, Any]) -> None:
    report = lean["report"]
    assert report["lean"], report["reason"]
    # these are installed in the dev environment and a normal import of MONAI brings them in
    for package in ("ignite", "mlflow", "matplotlib", "pandas", "sklearn"):
        assert package in full["sys_modules"], package
        assert package in report["hidden"], package
        assert package not in lean["sys_modules"], package
    assert {module.partition(".")[0] for module, _ in report["blocked"]} >= {"ignite", "mlflow", "matplotlib"}
    # (b) nothing of a hidden package half-imported; no orphaned leftovers
    assert lean["hidden_in_sys_modules"] == []
    assert report["purged"] == []
    # (a) no library outside MONAI tried a hidden package and stayed imported (it could cache "missing")
    assert report["cached_by"] == []
    print(
        f"\nimport: lean {lean['import_s']:.2f} s, full {full['import_s']:.2f} s, ratio full/lean "
        f"{full['import_s'] / lean['import_s']:.2f} (not asserted)"
    )


def test_shipped_bundle_network_instantiates_the_same(lean: dict[str, Any], full: dict[str, Any]) -> None:
    assert lean["network_class"] == full["network_class"]
    assert lean["n_parameters"] == full["n_parameters"] > 0
    logits_lean, logits_full = np.load(lean["dir"] / "logits.npy"), np.load(full["dir"] / "logits.npy")
    assert logits_lean.shape == (2, 4, 96, 80)
    np.testing.assert_array_equal(logits_lean, logits_full)


def test_spacing_on_a_metatensor_is_unchanged(lean: dict[str, Any], full: dict[str, Any]) -> None:
    spaced_lean, spaced_full = np.load(lean["dir"] / "spaced.npy"), np.load(full["dir"] / "spaced.npy")
    # 21 x 0.8 mm and 17 x 1.3 mm at 1.5 mm, the corner voxel centres kept: round((n - 1) * s / 1.5) + 1
    assert spaced_full.shape == (1, 12, 15)
    assert spaced_full.std() > 1.0  # really resampled content, not an empty grid
    np.testing.assert_array_equal(spaced_lean, spaced_full)
    np.testing.assert_array_equal(
        np.load(lean["dir"] / "spaced_affine.npy"), np.load(full["dir"] / "spaced_affine.npy")
    )


def test_hidden_packages_import_afterwards(lean: dict[str, Any]) -> None:
    png = lean["dir"] / "figure.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(png) as image:
        assert image.size == (100, 50)  # 2 x 1 inches at 50 dpi
    assert lean["imported_after"] == ["ignite.engine", "mlflow", "pandas", "sklearn", "sympy"]


def test_noop_when_monai_is_already_imported(full: dict[str, Any]) -> None:
    assert full["noop"] == {"lean": False, "reason": "monai already imported", "blocked": []}
    assert "mlflow" in full["sys_modules"]


def test_disabled_by_the_environment_variable() -> None:
    code = textwrap.dedent(
        """
        import sys
        from cardiacseg._lean_import import import_monai_lean
        report = import_monai_lean()
        assert not report.lean and report.reason == "disabled by CARDIACSEG_FULL_IMPORTS", report
        assert "monai" not in sys.modules and "torch" not in sys.modules  # nothing imported
        print("ok")
        """
    )
    assert _run(code, env={"CARDIACSEG_FULL_IMPORTS": "1"}).stdout.strip() == "ok"


def test_falls_back_to_the_full_import_when_monai_cannot_be_imported_lean() -> None:
    code = textwrap.dedent(
        """
        import sys
        from cardiacseg._lean_import import import_monai_lean
        report = import_monai_lean(frozenset({"monai"}))
        assert not report.lean and report.reason.startswith("lean import failed"), report
        from monai.transforms import Spacing
        print("ok")
        """
    )
    assert _run(code, env={"CARDIACSEG_FULL_IMPORTS": ""}).stdout.strip() == "ok"


def test_the_check_flags_a_library_that_may_cache_a_hidden_package() -> None:
    """Negative control of ``cached_by``: tifffile (imported by MONAI) probes imagecodecs at import."""
    code = textwrap.dedent(
        """
        from cardiacseg._lean_import import import_monai_lean
        report = import_monai_lean(frozenset({"imagecodecs"}))
        assert report.lean and ("imagecodecs", "tifffile.tifffile") in report.blocked, report
        print(",".join(report.cached_by))
        """
    )
    assert _run(code, env={"CARDIACSEG_FULL_IMPORTS": ""}).stdout.strip() == "tifffile.tifffile"


#: compressed syntaxes decoded after the lean import: JPEG Lossless (GDCM) and JPEG 2000 (GDCM, pylibjpeg)
COMPRESSED = ("JPEGLosslessSV1", "JPEG2000Lossless")


def test_pydicom_decodes_compressed_dicom_after_the_lean_import(sunnybrook_dir: Path, tmp_path: Path) -> None:
    original = sunnybrook_dir / "dicoms" / transfer.STUDY
    if not original.is_dir():
        pytest.skip(f"real data not available: {original} is missing")
    names = transfer.SUBSET[:2]
    args = []
    for keyword in COMPRESSED:
        syntax = next(s for s in transfer.SYNTAXES if s.ts.keyword == keyword)
        folder = tmp_path / keyword
        folder.mkdir()
        for name in names:  # truth: the original uncompressed file decoded in this process
            syntax.write(transfer._anonymised(original / name), folder / name)
            np.save(folder / f"{name}.npy", transfer._truth(original, name))
        args.append(f"{folder}={','.join(syntax.plugins)}")
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from cardiacseg._lean_import import import_monai_lean
        report = import_monai_lean()
        assert report.lean and not report.cached_by, report
        import numpy as np
        import pydicom
        from pydicom.pixels.decoders.base import get_decoder
        from pydicom.pixels.utils import pixel_array
        for arg in sys.argv[1:]:
            folder, plugins = Path(arg.split("=")[0]), arg.split("=")[1].split(",")
            names = sorted(p.name for p in folder.glob("*.dcm"))
            ts = pydicom.dcmread(folder / names[0], stop_before_pixels=True).file_meta.TransferSyntaxUID
            assert ts.is_compressed, ts
            missing = set(plugins) - set(get_decoder(ts).available_plugins)
            assert not missing, (ts.name, missing)
            for name in names:
                truth = np.load(folder / f"{name}.npy")
                assert np.array_equal(pydicom.dcmread(folder / name).pixel_array, truth), name
                for plugin in plugins:
                    decoded = pixel_array(folder / name, decoding_plugin=plugin)
                    assert np.array_equal(decoded, truth), (plugin, name)
            print(ts.name, len(names), "files", plugins)
        """
    )
    proc = _run(code, *args, env={"CARDIACSEG_FULL_IMPORTS": ""})
    assert len(proc.stdout.strip().splitlines()) == len(COMPRESSED), proc.stdout
