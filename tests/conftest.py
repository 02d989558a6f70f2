"""Shared fixtures: the real data in ../shared/data and an independent Sunnybrook volume computation."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from skimage.draw import polygon

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CARDIACSEG_SHARED_DATA", REPO.parent / "shared" / "data"))
SUNNYBROOK = {"SCD0000101": "SC-HF-I-1", "SCD0000201": "SC-HF-I-2"}


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available: {path} is missing (set CARDIACSEG_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def sunnybrook_dir() -> Path:
    return _need(SHARED_DATA / "sunnybrook")


@pytest.fixture(scope="session")
def acdc_dir() -> Path:
    return _need(SHARED_DATA / "acdc_ssl4mis")


def independent_sunnybrook_volumes(dicom_dir: Path, contour_dir: Path) -> dict[str, float]:
    """EDV/ESV/EF computed without cardiacseg: pydicom headers, scikit-image polygon fill.

    ED is the phase whose images carry epicardial (o) contours. Pixel area from PixelSpacing; slice
    spacing from the distance between ImagePositionPatient of two adjacent slice locations.
    """
    headers = {}
    for f in dicom_dir.iterdir():
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        headers[int(ds.InstanceNumber)] = ds
    # slice spacing from IPP of distinct locations
    ipps = sorted({tuple(float(v) for v in ds.ImagePositionPatient) for ds in headers.values()})
    iop = np.array([float(v) for v in next(iter(headers.values())).ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    proj = np.sort([float(np.dot(p, normal)) for p in ipps])
    slice_spacing = float(np.median(np.diff(proj)))
    areas: dict[str, dict[int, float]] = {"i": {}, "o": {}}
    for f in contour_dir.rglob("*contour-manual.txt"):
        m = re.search(r"IM-\d+-(\d+)-([io])contour", f.name)
        assert m
        n, kind = int(m.group(1)), m.group(2)
        pts = np.loadtxt(f)
        ds = headers[n]
        rr, _ = polygon(pts[:, 1], pts[:, 0], shape=(int(ds.Rows), int(ds.Columns)))
        ps = [float(v) for v in ds.PixelSpacing]
        areas[kind][n] = len(rr) * ps[0] * ps[1]
    # InstanceNumber = (slice - 1) * phases + phase: the ED phase is the one carrying o-contours
    per_phase: dict[int, float] = {}
    cardiac_images = int(next(iter(headers.values())).CardiacNumberOfImages)
    for n, a in areas["i"].items():
        phase = (n - 1) % cardiac_images
        per_phase.setdefault(phase, 0.0)
        per_phase[phase] += a * slice_spacing / 1000.0
    ed_phases = {(n - 1) % cardiac_images for n in areas["o"]}
    assert len(ed_phases) == 1
    ed = ed_phases.pop()
    (es,) = [p for p in per_phase if p != ed]
    edv, esv = per_phase[ed], per_phase[es]
    myo = sum(a - areas["i"].get(n, 0.0) for n, a in areas["o"].items()) * slice_spacing / 1000.0
    return {
        "edv": edv,
        "esv": esv,
        "ef": 100 * (edv - esv) / edv,
        "mass": 1.05 * myo,
        "slice_spacing": slice_spacing,
    }


#: Fixtures that read ../shared/data: a test using any of them is marked ``realdata`` automatically, so
#: ``-m "not realdata"`` really leaves out every test that needs the shared data.
REALDATA_FIXTURES = frozenset({"shared_data", "sunnybrook_dir", "acdc_dir"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        real_variant = callspec is not None and callspec.params.get("acdc_slice") == "acdc"  # see transforms
        if real_variant or REALDATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.realdata)
