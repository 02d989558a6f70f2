"""Malformed SSL4MIS HDF5 files end in an Ssl4misFormatError naming the file (found by tests/fuzz)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from cardiacseg.io import Ssl4misFormatError, read_ssl4mis_frame, read_ssl4mis_study
from cardiacseg.io.limits import InputTooLargeError

IMAGE = np.linspace(0, 1, 2 * 8 * 6, dtype=np.float32).reshape(2, 8, 6)
LABEL = (np.arange(2 * 8 * 6) % 4).astype(np.uint8).reshape(2, 8, 6)  # ACDC 0..3


def _write(path: Path, fill: Callable[[h5py.File], None]) -> Path:
    with h5py.File(path, "w") as h:
        fill(h)
    return path


def _study(tmp_path: Path, frame01: Callable[[h5py.File], None]) -> Path:
    def good(h: h5py.File) -> None:
        h["image"], h["label"] = IMAGE, LABEL

    _write(tmp_path / "patient001_frame01.h5", frame01)
    _write(tmp_path / "patient001_frame02.h5", good)
    return tmp_path / "patient001_frame01.h5"


def test_well_formed_synthetic_file_reads(tmp_path: Path) -> None:
    _study(tmp_path, lambda h: h.update({"image": IMAGE, "label": LABEL}))
    image, label = read_ssl4mis_frame(tmp_path, "patient001", 1)
    np.testing.assert_array_equal(image, IMAGE)
    # ACDC 1 RV, 2 MYO, 3 LV -> internal 1 LV, 2 MYO, 3 RV
    np.testing.assert_array_equal(label, np.choose(LABEL, [0, 3, 2, 1]).astype(np.uint8))
    assert read_ssl4mis_study(tmp_path, "patient001").image.shape == (2, 2, 8, 6)


def _group_image(h: h5py.File) -> None:
    h.create_group("image")
    h["label"] = LABEL


def _huge(h: h5py.File) -> None:  # declared, never written: reading it would allocate 1.5 PiB
    h.create_dataset("image", shape=(100000, 65535, 65535), dtype="f4", chunks=(1, 256, 256))
    h["label"] = LABEL


CASES: dict[str, tuple[Callable[[h5py.File], None], str]] = {
    "image is a group": (_group_image, "not a dataset"),
    "no label": (lambda h: h.update({"image": IMAGE}), "'label' is missing"),
    "4D image": (lambda h: h.update({"image": IMAGE[None], "label": LABEL[None]}), r"shape \(1, 2, 8, 6\)"),
    "empty stack": (
        lambda h: h.update({"image": IMAGE[:0], "label": LABEL[:0]}),
        r"shape \(0, 8, 6\)",
    ),
    "string image": (lambda h: h.update({"image": np.array([b"abc"] * 3), "label": LABEL}), "shape"),
    "compound image": (
        lambda h: h.update({"image": np.zeros((2, 8, 6), [("a", "f4"), ("b", "i2")]), "label": LABEL}),
        "dtype",
    ),
    "complex image": (lambda h: h.update({"image": IMAGE.astype(np.complex64), "label": LABEL}), "dtype"),
    "label transposed": (lambda h: h.update({"image": IMAGE, "label": LABEL.transpose(0, 2, 1)}), "differ"),
    "NaN image": (lambda h: h.update({"image": np.where(IMAGE > 0.5, np.nan, IMAGE), "label": LABEL}), "NaN"),
    "labels 0..255": (lambda h: h.update({"image": IMAGE, "label": LABEL * 85}), "outside 0..3"),
    "negative labels": (
        lambda h: h.update({"image": IMAGE, "label": -LABEL.astype(np.int8)}),
        "outside 0..3",
    ),
    "fractional labels": (
        lambda h: h.update({"image": IMAGE, "label": LABEL.astype(np.float32) / 2}),
        "non-integer",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_file_is_refused_naming_it(tmp_path: Path, name: str) -> None:
    fill, why = CASES[name]
    f = _study(tmp_path, fill)
    with pytest.raises(Ssl4misFormatError, match=why) as err:
        read_ssl4mis_frame(tmp_path, "patient001", 1)
    assert str(f) in str(err.value)


def test_huge_declared_dataset_is_refused_before_reading(tmp_path: Path) -> None:
    f = _study(tmp_path, _huge)
    with pytest.raises(InputTooLargeError, match="GiB") as err:
        read_ssl4mis_frame(tmp_path, "patient001", 1)
    assert str(f) in str(err.value)


def test_ed_es_shape_mismatch_names_the_folder(tmp_path: Path) -> None:
    _study(tmp_path, lambda h: h.update({"image": IMAGE[:1], "label": LABEL[:1]}))
    with pytest.raises(Ssl4misFormatError, match="differ in shape") as err:
        read_ssl4mis_study(tmp_path, "patient001")
    assert str(tmp_path) in str(err.value)
