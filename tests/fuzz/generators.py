"""Seeded malformed inputs built from the shared real data: DICOM folders, NIfTI files, SSL4MIS HDF5 folders.

Every case is a pure function of ``(run seed, case index)``: :func:`make_cases` lays out which mutation
kind each index gets (round-robin over all kinds, so any prefix of ``len(all kinds)`` cases covers every
kind, and the first N cases of a run are the same whatever the run's length) and :func:`build_case`
materialises one case under a scratch folder, returning the path a user would pass to ``cardiacseg info``
and a one-line description of the mutation. Nothing is written into the repository or the shared data.

DICOM edits work on the raw bytes of the Sunnybrook files (explicit VR little endian, every element of
defined length), so a corrupted value is written exactly as given, without pydicom re-encoding or
validating it.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ALL_KINDS",
    "FAMILIES",
    "BuiltCase",
    "FuzzCase",
    "Sources",
    "build_case",
    "make_cases",
]

FAMILIES = ("dicom", "nifti", "hdf5")
#: probability that a case is also segmented (when it reads OK); seeded per case
SEGMENT_FRACTION = 0.08
#: probability that a DICOM case starts from the whole study (240 files) instead of a few slices/phases
WHOLE_STUDY_FRACTION = 0.04
STUDY_ID = "SCD0000101"
N_SLICES, N_PHASES = 12, 20


@dataclass(frozen=True)
class FuzzCase:
    """One fuzz case: a mutation kind of a family and the seed that fixes all its random choices."""

    index: int
    family: str
    kind: str
    seed: int
    segment: bool

    @property
    def case_id(self) -> str:
        return f"c{self.index:04d}_{self.family}"

    def rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.index])


@dataclass
class BuiltCase:
    """What :func:`build_case` made: the path to read, the mutation described, and HDF5 reader arguments."""

    path: Path
    mutation: str
    h5: tuple[Path, str, int] | None = None  # (root, patient, frame) for read_ssl4mis_frame


class Sources:
    """The shared data the cases are derived from (read once, cached)."""

    def __init__(self, shared_data: Path) -> None:
        self.shared = Path(shared_data)
        self.dicom_dir = self.shared / "sunnybrook" / "dicoms" / STUDY_ID
        self.acdc_dir = self.shared / "acdc_ssl4mis" / "data"

    def missing(self) -> list[Path]:
        return [p for p in (self.dicom_dir, self.acdc_dir) if not p.is_dir()]

    def dicom_file(self, slice_1: int, phase_1: int) -> Path:
        """File of 1-based slice and phase (Sunnybrook: ``N.dcm`` with N = (slice-1)*20 + phase)."""
        return self.dicom_dir / f"{(slice_1 - 1) * N_PHASES + phase_1}.dcm"

    @cached_property
    def cine(self) -> tuple[np.ndarray, np.ndarray]:
        """The study as read by ``read_dicom_cine``: ``(T, Z, Y, X)`` int16 image and its affine."""
        from cardiacseg.io import read_dicom_cine

        study = read_dicom_cine(self.dicom_dir)
        assert study.affine is not None
        return np.asarray(study.image).astype(np.int16), np.asarray(study.affine, dtype=np.float64)

    @cached_property
    def acdc_stacks(self) -> list[str]:
        """Patients stored as whole stacks (``patientNNN_frame01.h5``)."""
        return sorted(p.name[: -len("_frame01.h5")] for p in self.acdc_dir.glob("patient*_frame01.h5"))

    @cached_property
    def acdc_sliced(self) -> list[str]:
        """Patients stored one slice per file."""
        return sorted({p.name.split("_")[0] for p in self.acdc_dir.glob("patient*_frame01_slice_1.h5")})

    def acdc_image(self, patient: str) -> np.ndarray:
        import h5py

        with h5py.File(self.acdc_dir / f"{patient}_frame01.h5", "r") as h:
            return np.asarray(h["image"][()], dtype=np.float32)


# ----------------------------------------------------------------------------------------------------------
# raw DICOM element editing (explicit VR little endian, defined lengths: the Sunnybrook files)

_LONG_VRS = {b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"OD", b"OL", b"UC", b"UR", b"OV", b"SV", b"UV"}

#: keyword -> (tag, VR)
TAGS: dict[str, tuple[int, bytes]] = {
    "TransferSyntaxUID": (0x00020010, b"UI"),
    "SOPClassUID": (0x00080016, b"UI"),
    "Modality": (0x00080060, b"CS"),
    "PatientID": (0x00100020, b"LO"),
    "SliceThickness": (0x00180050, b"DS"),
    "SpacingBetweenSlices": (0x00180088, b"DS"),
    "TriggerTime": (0x00181060, b"DS"),
    "CardiacNumberOfImages": (0x00181090, b"IS"),
    "StudyInstanceUID": (0x0020000D, b"UI"),
    "SeriesInstanceUID": (0x0020000E, b"UI"),
    "SeriesNumber": (0x00200011, b"IS"),
    "InstanceNumber": (0x00200013, b"IS"),
    "ImagePositionPatient": (0x00200032, b"DS"),
    "ImageOrientationPatient": (0x00200037, b"DS"),
    "SliceLocation": (0x00201041, b"DS"),
    "NominalCardiacTriggerDelayTime": (0x00209153, b"FD"),
    "SamplesPerPixel": (0x00280002, b"US"),
    "PhotometricInterpretation": (0x00280004, b"CS"),
    "NumberOfFrames": (0x00280008, b"IS"),
    "Rows": (0x00280010, b"US"),
    "Columns": (0x00280011, b"US"),
    "PixelSpacing": (0x00280030, b"DS"),
    "BitsAllocated": (0x00280100, b"US"),
    "BitsStored": (0x00280101, b"US"),
    "HighBit": (0x00280102, b"US"),
    "PixelRepresentation": (0x00280103, b"US"),
    "PixelData": (0x7FE00010, b"OW"),
}


def _elements(buf: bytes) -> list[tuple[int, int, int, int]]:
    """Top-level elements after the preamble: ``(tag, start, value_start, end)``."""
    out = []
    off = 132
    while off + 8 <= len(buf):
        group, elem = struct.unpack_from("<HH", buf, off)
        vr = buf[off + 4 : off + 6]
        if vr in _LONG_VRS:
            length, head = struct.unpack_from("<I", buf, off + 8)[0], 12
        else:
            length, head = struct.unpack_from("<H", buf, off + 6)[0], 8
        if length == 0xFFFFFFFF:
            raise ValueError("undefined length element: not a file this editor handles")
        out.append(((group << 16) | elem, off, off + head, off + head + length))
        off += head + length
    return out


def _encode(vr: bytes, value: Any) -> bytes:
    if isinstance(value, bytes):
        raw = value
    elif vr == b"US":
        raw = b"".join(struct.pack("<H", int(v) & 0xFFFF) for v in np.atleast_1d(value))
    elif vr == b"FD":
        raw = b"".join(struct.pack("<d", float(v)) for v in np.atleast_1d(value))
    else:  # text VRs: DS, IS, CS, UI, LO ...; lists joined with backslashes
        items = value if isinstance(value, list | tuple) else [value]
        raw = "\\".join(str(v) for v in items).encode("latin-1")
    if len(raw) % 2:
        raw += b"\x00" if vr == b"UI" else b" "
    return raw


def set_element(path: Path, keyword: str, value: Any) -> None:
    """Set (or insert), or with ``value=None`` remove, a top-level element in place, as raw bytes.

    Group lengths other than the file meta's (0002,0000) are left stale, as many real files have them.
    """
    tag, vr = TAGS[keyword]
    buf = bytearray(path.read_bytes())
    elems = _elements(bytes(buf))
    found = [e for e in elems if e[0] == tag]
    if value is None:
        new = b""
    else:
        raw = _encode(vr, value)
        if vr in _LONG_VRS:
            new = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr + b"\x00\x00" + struct.pack("<I", len(raw))
        else:
            new = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr + struct.pack("<H", len(raw) & 0xFFFF)
        new += raw
    if found:
        _, start, _, end = found[0]
    else:
        if value is None:
            return
        after = [e for e in elems if e[0] > tag]
        start = end = after[0][1] if after else len(buf)
    delta = len(new) - (end - start)
    buf[start:end] = new
    if tag >> 16 == 0x0002:  # keep the file meta group length right: readers use it to find the data set
        meta_len = [e for e in elems if e[0] == 0x00020000]
        if meta_len:
            vs = meta_len[0][2]
            struct.pack_into("<I", buf, vs, struct.unpack_from("<I", buf, vs)[0] + delta)
    path.write_bytes(bytes(buf))


def pixel_offset(path: Path) -> int:
    """Byte offset where the pixel data values start."""
    for tag, _, value_start, _ in _elements(path.read_bytes()):
        if tag == 0x7FE00010:
            return value_start
    raise ValueError(f"{path}: no PixelData")


# ----------------------------------------------------------------------------------------------------------
# building context


@dataclass
class _Ctx:
    case: FuzzCase
    rng: np.random.Generator
    work: Path
    src: Sources
    path: Path = field(init=False)
    base: str = ""
    h5: tuple[Path, str, int] | None = None

    def __post_init__(self) -> None:
        self.path = self.work / f"{self.case.case_id}_in"

    def folder(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path

    def copy_study(self, whole: bool | None = None) -> list[Path]:
        """Copy a few slices x phases (or, seeded, the whole study) into the case folder."""
        if whole is None:
            whole = bool(self.rng.random() < WHOLE_STUDY_FRACTION)
        if whole:
            slices, phases = list(range(1, N_SLICES + 1)), list(range(1, N_PHASES + 1))
        else:
            n_s, n_p = int(self.rng.integers(2, 4)), int(self.rng.integers(2, 4))
            slices = sorted(int(s) for s in self.rng.choice(np.arange(1, N_SLICES + 1), n_s, replace=False))
            phases = sorted(int(p) for p in self.rng.choice(np.arange(1, N_PHASES + 1), n_p, replace=False))
        folder = self.folder()
        files = []
        for s in slices:
            for p in phases:
                f = self.src.dicom_file(s, p)
                dst = folder / f.name
                shutil.copyfile(f, dst)
                os.chmod(dst, 0o644)
                files.append(dst)
        self.base = "whole study" if whole else f"slices {slices} x phases {phases}"
        return files

    def some(self, files: list[Path], p_all: float = 0.5) -> tuple[list[Path], str]:
        """All files (seeded coin) or one of them; and a description."""
        if self.rng.random() < p_all:
            return files, "all files"
        f = files[int(self.rng.integers(len(files)))]
        return [f], f.name

    def choice(self, options: list[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]


Builder = Callable[[_Ctx], str]


def _flip(path: Path, rng: np.random.Generator, lo: int, hi: int, n: int) -> list[int]:
    buf = bytearray(path.read_bytes())
    hi = min(hi, len(buf))
    where = sorted(int(i) for i in rng.integers(lo, hi, n))
    for i in where:
        buf[i] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(buf))
    return where


# ----------------------------------------------------------------------------------------------------------
# DICOM kinds


def _d_control(c: _Ctx) -> str:
    c.copy_study()
    return "unaltered copy"


def _d_truncate(c: _Ctx) -> str:
    files = c.copy_study()
    targets, which = c.some(files, 0.3)
    cuts = []
    for f in targets:
        size = f.stat().st_size
        # half the cuts inside the header (incl. the preamble), half in the pixel data
        cut = int(c.rng.integers(0, pixel_offset(f) + 1 if c.rng.random() < 0.5 else size))
        with f.open("r+b") as fh:
            fh.truncate(cut)
        cuts.append(cut)
    return f"truncate {which} at byte {cuts[0] if len(cuts) == 1 else f'{min(cuts)}..{max(cuts)}'}"


def _d_flip_header(c: _Ctx) -> str:
    files = c.copy_study()
    targets, which = c.some(files, 0.3)
    n = int(c.rng.integers(1, 9))
    where: list[int] = []
    for f in targets:
        where = _flip(f, c.rng, 0, pixel_offset(f), n)
    return f"flip {n} header bytes in {which} (e.g. offsets {where})"


def _d_flip_pixels(c: _Ctx) -> str:
    files = c.copy_study()
    targets, which = c.some(files, 0.3)
    n = int(c.rng.integers(1, 65))
    for f in targets:
        _flip(f, c.rng, pixel_offset(f), f.stat().st_size, n)
    return f"flip {n} pixel-data bytes in {which}"


def _d_remove(keyword: str) -> Builder:
    def build(c: _Ctx) -> str:
        files = c.copy_study()
        targets, which = c.some(files)
        for f in targets:
            set_element(f, keyword, None)
        return f"remove {keyword} from {which}"

    return build


#: corrupt values per tag (raw: written exactly as given)
_BAD: dict[str, list[Any]] = {
    "Rows": [0, 1, 255, 257, 65535],
    "Columns": [0, 1, 255, 257, 65535],
    "PixelSpacing": [
        ["0", "0"],
        ["-1.3", "-1.3"],
        ["nan", "nan"],
        ["inf", "1.3"],
        ["1.3"],
        "abc",
        ["1e9", "1e9"],
    ],
    "ImagePositionPatient": [
        ["nan", "nan", "nan"],
        ["1", "2"],
        "abc",
        ["1e300", "0", "0"],
        ["inf", "0", "0"],
    ],
    "ImageOrientationPatient": [
        ["1", "0", "0", "1", "0", "0"],
        ["0", "0", "0", "0", "0", "0"],
        ["2", "0", "0", "0", "2", "0"],
        ["nan", "0", "0", "0", "1", "0"],
        ["1", "0", "0", "0", "1"],
        ["0.9", "0.1", "0", "0.1", "0.9", "0"],
    ],
    "BitsAllocated": [0, 1, 7, 8, 12, 32, 64, 65535],
    "BitsStored": [0, 1, 17, 32, 65535],
    "HighBit": [0, 16, 65535],
    "PixelRepresentation": [2, 65535],
    "PhotometricInterpretation": ["RGB", "PALETTE COLOR", "YBR_FULL", "", "MONOCHROME1", "XYZ"],
    "SamplesPerPixel": [0, 2, 3, 4, 65535],
    "TransferSyntaxUID": [
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.5",
        "1.2.3.4",
        "",
    ],
    "NumberOfFrames": ["0", "2", "1000", "-1", "x", "99999999"],
    "TriggerTime": ["nan", "-1", "abc", "0", "1e12", "inf"],
    "InstanceNumber": ["1", "-5", "x", "99999999999", ""],
    "SeriesInstanceUID": ["", "1.2.3", "x" * 64],
    "StudyInstanceUID": ["", "1.2.3"],
    "PatientID": ["", "OTHER"],
    "SliceThickness": ["0", "-10", "nan", "abc"],
    "SpacingBetweenSlices": ["0", "-10", "nan", "abc"],
    "SliceLocation": ["nan", "abc", "0"],
    "NominalCardiacTriggerDelayTime": [float("nan"), -1.0, float("inf"), 1e300],
    "CardiacNumberOfImages": ["0", "-1", "x", "100000"],
    "SOPClassUID": ["1.2.840.10008.5.1.4.1.1.7", "", "1.2.840.10008.5.1.4.1.1.4.1"],
    "Modality": ["CT", "", "SR"],
}


def _d_corrupt(keyword: str) -> Builder:
    def build(c: _Ctx) -> str:
        files = c.copy_study()
        targets, which = c.some(files)
        value = c.choice(_BAD[keyword])
        for f in targets:
            if keyword == "SeriesInstanceUID" and value == "1.2.3" and len(targets) > 1:
                set_element(f, keyword, f"1.2.3.{f.stem}")  # every file its own series
            else:
                set_element(f, keyword, value)
        return f"set {keyword}={value!r} in {which}"

    return build


def _ipp(path: Path) -> list[float]:
    buf = path.read_bytes()
    for tag, _, vs, end in _elements(buf):
        if tag == TAGS["ImagePositionPatient"][0]:
            return [float(v) for v in buf[vs:end].decode().strip("\x00 ").split("\\")]
    raise ValueError(path)


def _d_geometry(c: _Ctx) -> str:
    files = c.copy_study()
    kind = c.choice(
        [
            "spacing zero",
            "spacing negative",
            "spacing nan",
            "orientation colinear",
            "orientation non-orthonormal",
            "orientation one slice rotated",
            "all slices at one position",
            "positions nan on one slice",
            "slice spacing uneven",
            "pixel spacing differs per slice",
        ]
    )
    if kind == "spacing zero":
        for f in files:
            set_element(f, "PixelSpacing", ["0", "0"])
    elif kind == "spacing negative":
        for f in files:
            set_element(f, "PixelSpacing", ["-1.367188", "-1.367188"])
    elif kind == "spacing nan":
        for f in files:
            set_element(f, "PixelSpacing", ["nan", "nan"])
    elif kind == "orientation colinear":
        for f in files:
            set_element(f, "ImageOrientationPatient", ["-0.104592", "0.346381", "-0.932245"] * 2)
    elif kind == "orientation non-orthonormal":
        for f in files:
            set_element(f, "ImageOrientationPatient", ["1", "0", "0", "0.7", "0.7", "0"])
    elif kind == "orientation one slice rotated":  # every phase of the first slice position
        first = _ipp(files[0])
        for f in files:
            if _ipp(f) == first:
                set_element(f, "ImageOrientationPatient", ["1", "0", "0", "0", "1", "0"])
    elif kind == "all slices at one position":
        pos = _ipp(files[0])
        for f in files:
            set_element(f, "ImagePositionPatient", [repr(v) for v in pos])
    elif kind == "positions nan on one slice":
        first = _ipp(files[0])
        for f in files:
            if _ipp(f) == first:
                set_element(f, "ImagePositionPatient", ["nan", "nan", "nan"])
    elif kind == "slice spacing uneven":
        for f in files:
            x, y, z = _ipp(f)
            jitter = float(c.rng.uniform(-4, 4))
            set_element(f, "ImagePositionPatient", [f"{x + jitter:.4f}", f"{y:.4f}", f"{z:.4f}"])
    else:  # pixel spacing differs per slice
        for f in files:
            s = f"{float(c.rng.uniform(0.8, 2.0)):.4f}"
            set_element(f, "PixelSpacing", [s, s])
    return kind


def _d_huge(c: _Ctx) -> str:
    files = c.copy_study(whole=False)
    kind = c.choice(["all files", "one file", "one file, frames only"])
    frames = c.choice(["1000", "100000", "2147483647"])
    targets = files if kind == "all files" else files[:1]
    for f in targets:
        if kind != "one file, frames only":
            set_element(f, "Rows", 65535)
            set_element(f, "Columns", 65535)
        set_element(f, "NumberOfFrames", frames)
    return f"declared size > 10 GB ({kind}): Rows=Columns=65535, NumberOfFrames={frames}"


def _png_bytes(c: _Ctx) -> bytes:
    import pydicom
    from PIL import Image

    arr = pydicom.dcmread(c.src.dicom_file(6, 1)).pixel_array.astype(np.float32)
    img = Image.fromarray((255 * arr / max(float(arr.max()), 1.0)).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _d_odd(c: _Ctx) -> str:
    kind = c.choice(
        [
            "empty folder",
            "only zero-byte .dcm files",
            "a zero-byte .dcm beside the study",
            "directory symlink loop beside the study",
            "file symlink loop beside the study",
            "dangling symlink beside the study",
            "FIFO named x.dcm beside the study",
            "directory named x.dcm beside the study",
            "chmod 000 file (root reads it anyway)",
            "PNG named .dcm beside the study",
            "only a PNG named .dcm",
            "only a text file named .dcm",
            "text file named .dcm beside the study",
            "study nested 6 folders deep",
            "a single .dcm file given as the path",
            "path does not exist",
            "the same file twice under two names",
            "two patients in one folder",
        ]
    )
    folder = c.folder()
    if kind == "empty folder":
        pass
    elif kind == "only zero-byte .dcm files":
        for i in range(1, 5):
            (folder / f"{i}.dcm").write_bytes(b"")
    elif kind == "only a PNG named .dcm":
        (folder / "1.dcm").write_bytes(_png_bytes(c))
    elif kind == "only a text file named .dcm":
        (folder / "1.dcm").write_text("this is not DICOM\n" * 10)
    elif kind == "study nested 6 folders deep":
        deep = folder / "a" / "b" / "c" / "d" / "e" / "f"
        deep.mkdir(parents=True)
        for f in c.copy_study():
            f.rename(deep / f.name)
    elif kind == "a single .dcm file given as the path":
        files = c.copy_study(whole=False)
        c.path = files[0]
    elif kind == "path does not exist":
        c.path = folder / "missing"
    elif kind == "two patients in one folder":
        files = c.copy_study(whole=False)
        other = c.src.dicom_dir.parent / "SCD0000201"
        names = sorted(other.glob("*.dcm"), key=lambda p: int(p.stem))[:4]
        for f in names:
            dst = folder / f"other_{f.name}"
            shutil.copyfile(f, dst)
            os.chmod(dst, 0o644)
    else:
        files = c.copy_study()
        if kind == "a zero-byte .dcm beside the study":
            (folder / "9999.dcm").write_bytes(b"")
        elif kind == "directory symlink loop beside the study":
            (folder / "loop").symlink_to(".", target_is_directory=True)
        elif kind == "file symlink loop beside the study":
            (folder / "a.dcm").symlink_to("b.dcm")
            (folder / "b.dcm").symlink_to("a.dcm")
        elif kind == "dangling symlink beside the study":
            (folder / "gone.dcm").symlink_to("does_not_exist.dcm")
        elif kind == "FIFO named x.dcm beside the study":
            os.mkfifo(folder / "x.dcm")
        elif kind == "directory named x.dcm beside the study":
            (folder / "x.dcm").mkdir()
        elif kind.startswith("chmod 000"):
            os.chmod(files[0], 0)
        elif kind == "PNG named .dcm beside the study":
            (folder / "9999.dcm").write_bytes(_png_bytes(c))
        elif kind == "text file named .dcm beside the study":
            (folder / "9999.dcm").write_text("this is not DICOM\n" * 10)
        elif kind == "the same file twice under two names":
            shutil.copyfile(files[0], folder / f"copy_of_{files[0].name}")
    return kind


DICOM_KINDS: dict[str, Builder] = {
    "control": _d_control,
    "truncate": _d_truncate,
    "flip_header": _d_flip_header,
    "flip_pixels": _d_flip_pixels,
    "geometry": _d_geometry,
    "huge_declared": _d_huge,
    "odd_folder": _d_odd,
}
_REMOVE = [
    "Rows",
    "Columns",
    "PixelSpacing",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "BitsAllocated",
    "BitsStored",
    "PhotometricInterpretation",
    "SamplesPerPixel",
    "TransferSyntaxUID",
    "TriggerTime",
    "InstanceNumber",
    "SeriesInstanceUID",
    "PixelData",
    "PixelRepresentation",
    "SOPClassUID",
]
for _kw in _REMOVE:
    DICOM_KINDS[f"remove:{_kw}"] = _d_remove(_kw)
for _kw in _BAD:
    DICOM_KINDS[f"corrupt:{_kw}"] = _d_corrupt(_kw)
# the open-ended mutations get more cases than one tag's removal
DICOM_WEIGHTS = {
    "truncate": 4,
    "flip_header": 4,
    "flip_pixels": 2,
    "geometry": 4,
    "huge_declared": 2,
    "odd_folder": 5,
}


# ----------------------------------------------------------------------------------------------------------
# NIfTI kinds


def _nifti_base(c: _Ctx) -> tuple[np.ndarray, np.ndarray, str]:
    """A small real 4D ``(X, Y, Z, T)`` array (Sunnybrook) or 3D ACDC stack, with its affine."""
    if c.rng.random() < 0.75:
        image, affine = c.src.cine
        n_z, n_t = int(c.rng.integers(2, 5)), int(c.rng.integers(2, 5))
        z0 = int(c.rng.integers(0, image.shape[1] - n_z + 1))
        ts = sorted(int(t) for t in c.rng.choice(image.shape[0], n_t, replace=False))
        sub = image[ts][:, z0 : z0 + n_z]  # (T, Z, Y, X)
        aff = affine.copy()
        aff[:3, 3] += aff[:3, 2] * z0
        c.base = f"Sunnybrook {STUDY_ID} slices {z0}..{z0 + n_z - 1} phases {ts}"
        return np.ascontiguousarray(np.transpose(sub, (3, 2, 1, 0))), aff, "sunnybrook"
    patient = c.choice(c.src.acdc_stacks)
    img = c.src.acdc_image(patient)  # (Z, H, W) in [0, 1]
    c.base = f"ACDC {patient} frame01"
    return np.ascontiguousarray(np.transpose(img, (2, 1, 0))), np.diag([1.5, 1.5, 10.0, 1.0]), "acdc"


def _save_nifti(c: _Ctx, data: np.ndarray, affine: np.ndarray, gz: bool | None = None, **hdr: Any) -> Path:
    import nibabel as nib

    if gz is None:
        gz = bool(c.rng.random() < 0.7)
    c.folder()
    path = c.path / (f"{c.case.case_id}.nii.gz" if gz else f"{c.case.case_id}.nii")
    img = nib.Nifti1Image(data, affine, dtype=data.dtype)
    img.header.set_xyzt_units("mm", "msec")
    for key, value in hdr.items():
        img.header[key] = value
    nib.save(img, str(path))
    c.path = path
    return path


def _n_control(c: _Ctx) -> str:
    data, aff, _ = _nifti_base(c)
    _save_nifti(c, data, aff)
    return "unaltered (written by nibabel)"


def _n_truncate(c: _Ctx) -> str:
    data, aff, _ = _nifti_base(c)
    p = _save_nifti(c, data, aff)
    size = p.stat().st_size
    cut = int(c.rng.integers(0, size))
    with p.open("r+b") as fh:
        fh.truncate(cut)
    return f"truncated {p.name} at byte {cut} of {size}"


def _n_flip(c: _Ctx) -> str:
    data, aff, _ = _nifti_base(c)
    gz = bool(c.rng.random() < 0.5)
    p = _save_nifti(c, data, aff, gz=gz)
    n = int(c.rng.integers(1, 9))
    hi = 348 if not gz else p.stat().st_size
    where = _flip(p, c.rng, 0, hi, n)
    return f"flip {n} bytes of {'the 348-byte header' if not gz else 'the gzip stream'} at {where}"


def _n_dims(c: _Ctx) -> str:
    data, aff, _ = _nifti_base(c)
    vol = data if data.ndim == 3 else data[..., 0]
    kind = c.choice(
        ["1D", "2D", "3D", "5D (X,Y,Z,T,2)", "5D (X,Y,Z,1,T)", "6D", "4D with T=1", "3D with Z=1"]
    )
    if kind == "1D":
        out = vol[:, 0, 0]
    elif kind == "2D":
        out = vol[:, :, 0]
    elif kind == "3D":
        out = vol
    elif kind == "5D (X,Y,Z,T,2)":
        four = data if data.ndim == 4 else vol[..., None]
        out = np.stack([four, four], axis=-1)
    elif kind == "5D (X,Y,Z,1,T)":
        four = data if data.ndim == 4 else vol[..., None]
        out = four[:, :, :, None, :]
    elif kind == "6D":
        out = vol[:, :, :, None, None, None].repeat(2, axis=5)
    elif kind == "4D with T=1":
        out = vol[..., None]
    else:
        out = vol[:, :, :1]
    _save_nifti(c, np.ascontiguousarray(out), aff)
    return f"{kind} image, shape {out.shape}"


def _n_values(c: _Ctx) -> str:
    data, aff, _ = _nifti_base(c)
    out = data.astype(np.float32)
    kind = c.choice(["some NaN", "all NaN", "some +inf/-inf", "constant 7", "all zero", "huge values 1e38"])
    if kind == "some NaN":
        out.flat[c.rng.integers(0, out.size, max(1, out.size // 100))] = np.nan
    elif kind == "all NaN":
        out[:] = np.nan
    elif kind == "some +inf/-inf":
        idx = c.rng.integers(0, out.size, 20)
        out.flat[idx[:10]] = np.inf
        out.flat[idx[10:]] = -np.inf
    elif kind == "constant 7":
        out[:] = 7
    elif kind == "all zero":
        out[:] = 0
    else:
        out *= 1e38 / max(float(np.nanmax(out)), 1.0)
    _save_nifti(c, out, aff)
    return kind


def _n_dtype(c: _Ctx) -> str:
    import nibabel as nib

    data, aff, _ = _nifti_base(c)
    kind = c.choice(
        [
            "int8",
            "uint8",
            "uint64",
            "int64",
            "int16 big-endian",
            "float64",
            "complex64",
            "bool",
            "RGB",
            "code 1 (binary)",
        ]
    )
    x = data.astype(np.float64)
    x = (x - x.min()) / max(float(x.max() - x.min()), 1e-9)
    if kind == "int8":
        out = (x * 127).astype(np.int8)
    elif kind == "uint8":
        out = (x * 255).astype(np.uint8)
    elif kind == "uint64":
        out = (x * 1000).astype(np.uint64)
    elif kind == "int64":
        out = (x * 1000).astype(np.int64)
    elif kind == "int16 big-endian":
        out = (x * 3000).astype(">i2")
    elif kind == "float64":
        out = x
    elif kind == "complex64":
        out = (x + 1j * x).astype(np.complex64)
    elif kind == "bool":
        out = x > 0.3
    else:
        rgb = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
        v = (x * 255).astype(np.uint8)
        out = np.zeros(x.shape, rgb)
        out["R"], out["G"], out["B"] = v, v, v
    if kind == "code 1 (binary)":  # a datatype code nibabel has no reader for: raw header, uint8 payload
        data_u8 = (x * 255).astype(np.uint8)
        hdr = nib.Nifti1Header()
        hdr.set_data_shape(data_u8.shape)
        hdr.set_data_dtype(np.uint8)
        hdr.set_sform(aff, code=1)
        hdr["datatype"], hdr["bitpix"] = 1, 1
        raw = io.BytesIO()
        hdr.write_to(raw)
        raw.write(b"\x00" * (int(hdr["vox_offset"]) - raw.tell()))
        raw.write(data_u8.tobytes(order="F"))
        c.folder()
        c.path = c.path / f"{c.case.case_id}.nii"
        c.path.write_bytes(raw.getvalue())
        return kind
    if kind == "bool":  # NIfTI has no boolean type: a 0/1 uint8 mask, as tools write one
        out = out.astype(np.uint8)
        kind = "bool mask (stored as uint8 0/1)"
    _save_nifti(c, out, aff)
    return kind


def _n_geometry(c: _Ctx) -> str:
    data, aff, _ = _nifti_base(c)
    kind = c.choice(
        [
            "pixdim zero",
            "pixdim negative",
            "pixdim NaN",
            "singular affine (all zero)",
            "rank-deficient affine",
            "NaN affine",
            "no qform/sform, unit pixdim",
            "pixdim[4] (time) zero",
        ]
    )
    import nibabel as nib

    c.folder()
    gz = bool(c.rng.random() < 0.7)
    path = c.path / (f"{c.case.case_id}.nii.gz" if gz else f"{c.case.case_id}.nii")
    a = aff.copy()
    if kind == "singular affine (all zero)":
        a = np.zeros((4, 4))
        a[3, 3] = 1
    elif kind == "rank-deficient affine":
        a[:3, 2] = a[:3, 0]
    elif kind == "NaN affine":
        a[:3, :3] = np.nan
    img = nib.Nifti1Image(data, aff)
    img.header.set_xyzt_units("mm", "msec")
    if kind.endswith("affine") or kind.endswith("(all zero)"):  # nibabel cannot decompose these: raw sform
        img.header["srow_x"], img.header["srow_y"], img.header["srow_z"] = a[0], a[1], a[2]
        img.header["sform_code"], img.header["qform_code"] = 1, 0
    pix = img.header["pixdim"].copy()
    if kind == "pixdim zero":
        pix[1:4] = 0
        img.header.set_qform(None, code=0)
        img.header.set_sform(None, code=0)
    elif kind == "pixdim negative":
        pix[1:4] = -np.abs(pix[1:4])
        img.header.set_sform(None, code=0)
    elif kind == "pixdim NaN":
        pix[1:4] = np.nan
        img.header.set_sform(None, code=0)
        img.header.set_qform(None, code=0)
    elif kind == "no qform/sform, unit pixdim":
        pix[1:4] = 1
        img.header.set_sform(None, code=0)
        img.header.set_qform(None, code=0)
    elif kind == "pixdim[4] (time) zero":
        pix[4] = 0
    img.header["pixdim"] = pix
    # write header and data without nibabel re-deriving pixdim from the affine
    hdr = img.header
    raw = io.BytesIO()
    hdr.write_to(raw)
    raw.write(b"\x00" * (int(hdr["vox_offset"]) - raw.tell()))
    raw.write(np.asarray(data, dtype=hdr.get_data_dtype()).tobytes(order="F"))
    blob = raw.getvalue()
    path.write_bytes(gzip.compress(blob, mtime=0) if gz else blob)
    c.path = path
    return kind


def _n_axis_mixup(c: _Ctx) -> str:
    image, _ = c.src.cine
    kind = c.choice(["(T,Z,Y,X) saved as is", "(Z,Y,X) 3D saved as is", "(X,Y,T,Z)", "(X,Y,Z*T) 3D"])
    n_t, n_z = int(c.rng.integers(2, 21)), int(c.rng.integers(2, 13))
    sub = image[:n_t, :n_z]
    if kind == "(T,Z,Y,X) saved as is":
        out = sub
    elif kind == "(Z,Y,X) 3D saved as is":
        out = sub[0]
    elif kind == "(X,Y,T,Z)":
        out = np.transpose(sub, (3, 2, 0, 1))
    else:
        out = np.transpose(sub, (3, 2, 1, 0)).reshape(sub.shape[3], sub.shape[2], -1, order="F")
    _save_nifti(c, np.ascontiguousarray(out), np.eye(4))
    c.base = f"Sunnybrook {STUDY_ID} first {n_t} phases x {n_z} slices"
    return f"axis order {kind}, shape {out.shape}, identity affine"


def _n_huge(c: _Ctx) -> str:
    """A tiny file whose header declares an enormous array."""
    import nibabel as nib

    data, aff, _ = _nifti_base(c)
    dims = c.choice(
        [
            [4, 32767, 32767, 1000, 100],
            [3, 32767, 32767, 32767],
            [4, 256, 256, 12, 32767],
            [5, 512, 512, 100, 100, 100],
        ]
    )
    img = nib.Nifti1Image(data[..., :1] if data.ndim == 4 else data, aff)
    hdr = img.header
    raw = io.BytesIO()
    hdr.write_to(raw)
    buf = bytearray(raw.getvalue())
    dim = [*dims, *([1] * (8 - len(dims)))]  # dim[0] is the number of dimensions
    struct.pack_into("<8h", buf, 40, *dim)  # dim[0..7] at byte 40
    buf += b"\x00" * (int(hdr["vox_offset"]) - len(buf))
    buf += data.ravel()[:4096].astype(hdr.get_data_dtype()).tobytes()
    gz = bool(c.rng.random() < 0.5)
    c.folder()
    path = c.path / (f"{c.case.case_id}.nii.gz" if gz else f"{c.case.case_id}.nii")
    path.write_bytes(gzip.compress(bytes(buf), mtime=0) if gz else bytes(buf))
    c.path = path
    return f"header declares dim {dims[1:]} with {len(buf)} bytes of file"


def _n_odd(c: _Ctx) -> str:
    kind = c.choice(
        ["zero-byte .nii.gz", "zero-byte .nii", "text named .nii.gz", "DICOM named .nii", "PNG named .nii.gz"]
    )
    c.folder()
    name = {"zero-byte .nii": "x.nii", "DICOM named .nii": "x.nii"}.get(kind, "x.nii.gz")
    path = c.path / f"{c.case.case_id}_{name}"
    if kind.startswith("zero-byte"):
        path.write_bytes(b"")
    elif kind.startswith("text"):
        path.write_text("not a nifti\n" * 20)
    elif kind.startswith("DICOM"):
        shutil.copyfile(c.src.dicom_file(5, 1), path)
    else:
        path.write_bytes(_png_bytes(c))
    c.path = path
    return kind


NIFTI_KINDS: dict[str, Builder] = {
    "control": _n_control,
    "truncate": _n_truncate,
    "flip_bytes": _n_flip,
    "dims": _n_dims,
    "values": _n_values,
    "dtype": _n_dtype,
    "geometry": _n_geometry,
    "axis_mixup": _n_axis_mixup,
    "huge_declared": _n_huge,
    "odd_file": _n_odd,
}
NIFTI_WEIGHTS = {
    "truncate": 3,
    "flip_bytes": 2,
    "dims": 3,
    "values": 2,
    "dtype": 3,
    "geometry": 3,
    "axis_mixup": 2,
}


# ----------------------------------------------------------------------------------------------------------
# HDF5 (SSL4MIS layout) kinds


def _h5_copy(c: _Ctx, sliced: bool | None = None) -> tuple[str, list[Path]]:
    """Copy one patient's frame01 and frame02 files (a whole-stack or a per-slice patient)."""
    if sliced is None:
        sliced = bool(c.rng.random() < 0.3)
    patient = c.choice(c.src.acdc_sliced if sliced else c.src.acdc_stacks)
    folder = c.folder() / "data"
    folder.mkdir()
    files = []
    for f in sorted(c.src.acdc_dir.glob(f"{patient}_frame0[12]*.h5")):
        dst = folder / f.name
        shutil.copyfile(f, dst)
        os.chmod(dst, 0o644)
        files.append(dst)
    c.base = f"ACDC {patient} ({'one file per slice' if sliced else 'whole stack'})"
    c.h5 = (c.path, patient, 1)
    return patient, files


def _frame01(files: list[Path]) -> list[Path]:
    return [f for f in files if "_frame01" in f.name]


def _h_control(c: _Ctx) -> str:
    _h5_copy(c)
    return "unaltered copy"


def _h_rewrite(c: _Ctx) -> str:
    import h5py

    _, files = _h5_copy(c)
    targets = _frame01(files)
    if len(targets) > 1:
        targets = [targets[int(c.rng.integers(len(targets)))]]
    kind = c.choice(
        [
            "no 'image'",
            "no 'label'",
            "empty file (no datasets)",
            "'image' is a group",
            "image 4D",
            "image 1D",
            "image scalar",
            "label transposed",
            "image string dtype",
            "image complex64",
            "image int16 raw intensities",
            "image bool",
            "image compound dtype",
            "label float 0.5 steps",
            "label values 0..255",
            "label negative int8",
            "image NaN/inf",
            "image empty (0 slices)",
            "huge declared chunked image",
        ]
    )
    for f in targets:
        with h5py.File(f, "r") as h:
            image, label = np.asarray(h["image"][()]), np.asarray(h["label"][()])
        f.unlink()
        with h5py.File(f, "w") as h:
            if kind == "no 'image'":
                h["label"] = label
            elif kind == "no 'label'":
                h["image"] = image
            elif kind == "empty file (no datasets)":
                pass
            elif kind == "'image' is a group":
                h.create_group("image")
                h["label"] = label
            elif kind == "image 4D":
                h["image"], h["label"] = image[None].repeat(2, 0), label[None].repeat(2, 0)
            elif kind == "image 1D":
                h["image"], h["label"] = image.ravel(), label.ravel()
            elif kind == "image scalar":
                h["image"], h["label"] = np.float32(0.5), np.uint8(1)
            elif kind == "label transposed":
                h["image"], h["label"] = image, label.T
            elif kind == "image string dtype":
                h["image"] = np.array(["abc"] * image.shape[0], dtype="S3")
                h["label"] = label
            elif kind == "image complex64":
                h["image"], h["label"] = image.astype(np.complex64), label
            elif kind == "image int16 raw intensities":
                h["image"], h["label"] = (image * 3000).astype(np.int16), label
            elif kind == "image bool":
                h["image"], h["label"] = image > 0.2, label
            elif kind == "image compound dtype":
                comp = np.zeros(image.shape, dtype=[("a", "f4"), ("b", "i2")])
                comp["a"] = image
                h["image"], h["label"] = comp, label
            elif kind == "label float 0.5 steps":
                h["image"], h["label"] = image, label.astype(np.float32) / 2
            elif kind == "label values 0..255":
                h["image"], h["label"] = image, (label.astype(np.int32) * 85).astype(np.uint8)
            elif kind == "label negative int8":
                h["image"], h["label"] = image, -label.astype(np.int8)
            elif kind == "image NaN/inf":
                img = image.copy()
                img.flat[:: max(1, img.size // 50)] = np.nan
                img.flat[1 :: max(1, img.size // 50)] = np.inf
                h["image"], h["label"] = img, label
            elif kind == "image empty (0 slices)":
                h["image"] = np.zeros((0, *image.shape[-2:]), np.float32)
                h["label"] = np.zeros((0, *label.shape[-2:]), np.uint8)
            else:
                h.create_dataset("image", shape=(100000, 65535, 65535), dtype="f4", chunks=(1, 256, 256))
                h["label"] = label
    return f"{targets[0].name}: {kind}"


def _h_bytes(c: _Ctx) -> str:
    _, files = _h5_copy(c)
    targets = _frame01(files)
    f = targets[int(c.rng.integers(len(targets)))]
    kind = c.choice(["truncate", "truncate", "flip bytes", "zero-byte", "text", "DICOM named .h5"])
    size = f.stat().st_size
    if kind == "truncate":
        cut = int(c.rng.integers(0, size))
        with f.open("r+b") as fh:
            fh.truncate(cut)
        return f"{f.name}: truncated at byte {cut} of {size}"
    if kind == "flip bytes":
        n = int(c.rng.integers(1, 17))
        where = _flip(f, c.rng, 0, size, n)
        return f"{f.name}: flip {n} bytes (first at {where[0]})"
    if kind == "zero-byte":
        f.write_bytes(b"")
    elif kind == "text":
        f.write_text("not hdf5\n" * 10)
    else:
        shutil.copyfile(c.src.dicom_file(5, 1), f)
    return f"{f.name}: {kind}"


def _h_layout(c: _Ctx) -> str:
    import h5py

    kind = c.choice(
        [
            "slice 2 missing",
            "slices differ in size",
            "only frame02 present",
            "whole-stack and per-slice files both present",
            "ED and ES stacks differ in shape",
            "empty data folder",
        ]
    )
    if kind == "empty data folder":
        (c.folder() / "data").mkdir()
        c.h5 = (c.path, "patient001", 1)
        return kind
    patient, files = _h5_copy(c, sliced=kind in ("slice 2 missing", "slices differ in size"))
    data = c.path / "data"
    if kind == "slice 2 missing":
        (data / f"{patient}_frame01_slice_2.h5").unlink()
    elif kind == "slices differ in size":
        f = data / f"{patient}_frame01_slice_1.h5"
        with h5py.File(f, "r") as h:
            image, label = np.asarray(h["image"][()]), np.asarray(h["label"][()])
        f.unlink()
        with h5py.File(f, "w") as h:
            h["image"], h["label"] = image[:-7, :-3], label[:-7, :-3]
    elif kind == "only frame02 present":
        for f in _frame01(files):
            f.unlink()
    elif kind == "whole-stack and per-slice files both present":
        f = _frame01(files)[0]
        with h5py.File(f, "r") as h:
            image, label = np.asarray(h["image"][()]), np.asarray(h["label"][()])
        with h5py.File(data / f"{patient}_frame01_slice_1.h5", "w") as h:
            h["image"], h["label"] = image[0], label[0]
    else:
        f = _frame01(files)[0]
        with h5py.File(f, "r") as h:
            image, label = np.asarray(h["image"][()]), np.asarray(h["label"][()])
        f.unlink()
        with h5py.File(f, "w") as h:
            h["image"], h["label"] = image[:-1], label[:-1]
    return kind


HDF5_KINDS: dict[str, Builder] = {
    "control": _h_control,
    "datasets": _h_rewrite,
    "bytes": _h_bytes,
    "layout": _h_layout,
}
HDF5_WEIGHTS = {"datasets": 8, "bytes": 5, "layout": 3}

_FAMILY_KINDS: dict[str, dict[str, Builder]] = {
    "dicom": DICOM_KINDS,
    "nifti": NIFTI_KINDS,
    "hdf5": HDF5_KINDS,
}
_FAMILY_WEIGHTS = {"dicom": DICOM_WEIGHTS, "nifti": NIFTI_WEIGHTS, "hdf5": HDF5_WEIGHTS}


def _slots() -> list[tuple[str, str]]:
    """The round-robin cycle: every kind once first (interleaving families), then the extra weights."""
    per_family = {
        fam: [k for k in kinds] + [k for k, w in _FAMILY_WEIGHTS[fam].items() for _ in range(w - 1)]
        for fam, kinds in _FAMILY_KINDS.items()
    }
    firsts = {fam: list(kinds) for fam, kinds in _FAMILY_KINDS.items()}
    rest = {fam: per_family[fam][len(firsts[fam]) :] for fam in FAMILIES}
    out: list[tuple[str, str]] = []
    for pools in (firsts, rest):
        i = 0
        while any(i < len(pools[f]) for f in FAMILIES):
            for fam in FAMILIES:
                if i < len(pools[fam]):
                    out.append((fam, pools[fam][i]))
            i += 1
    return out


ALL_KINDS: list[tuple[str, str]] = _slots()


def make_cases(n: int, seed: int = 0) -> list[FuzzCase]:
    """The first ``n`` cases of the run with this seed (a prefix of any longer run with the same seed).

    Args:
        n: number of cases.
        seed: run seed.

    Returns:
        Cases in order; case ``i`` has kind ``ALL_KINDS[i % len(ALL_KINDS)]``.
    """
    cases = []
    for i in range(n):
        fam, kind = ALL_KINDS[i % len(ALL_KINDS)]
        seg_rng = np.random.default_rng([seed, i, 1])
        cases.append(FuzzCase(i, fam, kind, seed, bool(seg_rng.random() < SEGMENT_FRACTION)))
    return cases


def build_case(case: FuzzCase, work: Path, src: Sources) -> BuiltCase:
    """Materialise one case under ``work`` (a fresh folder).

    Args:
        case: the case.
        work: scratch folder for this case (the input is created inside it).
        src: the shared data.

    Returns:
        The input path, the mutation described (with the base it was applied to), and HDF5 reader args.
    """
    ctx = _Ctx(case, case.rng(), Path(work), src)
    what = _FAMILY_KINDS[case.family][case.kind](ctx)
    mutation = f"{case.kind}: {what}" + (f" [{ctx.base}]" if ctx.base else "")
    return BuiltCase(ctx.path, mutation, ctx.h5)
