"""Every common DICOM transfer syntax reads bit-exactly (issue 14, item 6).

Real Sunnybrook images (SCD0000101: signed 16-bit MONOCHROME2, Explicit VR Little Endian) are re-encoded
in a temporary folder in each transfer syntax and read back with :func:`read_dicom_cine`. The truth is
pydicom's decode of the *original* uncompressed file, never the reader's own output. Each compressed
stream is written by an encoder other than the decoder the reader uses: libjpeg-turbo (through imagecodecs)
writes the JPEG Lossless streams and CharLS 2.4 (imagecodecs) the JPEG-LS streams that GDCM decodes,
OpenJPH (imagecodecs) the HTJ2K stream that OpenJPEG decodes, this file builds the RLE segments from
imagecodecs' PackBits, and OpenJPEG (pydicom ``compress``) writes the JPEG 2000 stream that GDCM decodes.
The byte streams are checked to really be what their UID says (SOF3 and the predictor for JPEG Lossless,
SOF55 and NEAR for JPEG-LS, the HT capability marker for HTJ2K, the byte order and VR encoding of the data
set for the native syntaxes).
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.filewriter import dcmwrite
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import pixel_array

from cardiacseg.cli import main
from cardiacseg.io import DicomReadError, read_dicom_cine

STUDY = "SCD0000101"
PHASES = 20
#: a few images: 3 slice positions x 3 phases (file N.dcm holds InstanceNumber N = (slice-1)*20 + phase)
SUBSET = tuple(f"{(s - 1) * PHASES + p}.dcm" for s in (5, 6, 7) for p in (1, 2, 3))

Writer = Callable[[Dataset, Path], None]


# --- writers: one per transfer syntax ------------------------------------------------------------------


def _anonymised(src: Path) -> Dataset:
    ds = pydicom.dcmread(src)
    ds.PatientName = "Anonymous"
    for keyword in ("PatientBirthDate", "OtherPatientIDs", "InstitutionName", "ReferringPhysicianName"):
        if keyword in ds:
            delattr(ds, keyword)
    for tag in [tag for tag in ds.keys() if tag.is_private]:  # keys only: no value conversion (fast)
        del ds[tag]
    return ds


def _write_native(ts: uid.UID) -> Writer:
    def write(ds: Dataset, path: Path) -> None:
        if ts == uid.ExplicitVRBigEndian:
            # pydicom encodes the header in the new byte order but leaves OW bytes alone (dcmwrite docs)
            arr = ds.pixel_array
            ds.PixelData = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
        ds.file_meta.TransferSyntaxUID = ts
        dcmwrite(path, ds, enforce_file_format=True)

    return write


def _write_encapsulated(ds: Dataset, path: Path, ts: uid.UID, fragment: bytes) -> None:
    ds.PixelData = encapsulate([fragment])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = ts
    dcmwrite(path, ds, enforce_file_format=True)


def _imagecodecs() -> ModuleType:
    module: ModuleType = pytest.importorskip(
        "imagecodecs",
        minversion="2026.1.1",
        reason="the test encoders need imagecodecs>=2026.1.1 (dev extra)",
    )
    return module


def _write_jpeg_lossless(ts: uid.UID, predictor: int) -> Writer:
    def write(ds: Dataset, path: Path) -> None:
        arr = ds.pixel_array
        bits = int(ds.BitsStored)
        # JPEG codes samples as unsigned: signed pixels go in as their two's complement bit pattern
        raw = (arr.astype(np.int64) & ((1 << bits) - 1)).astype(np.uint16)
        fragment = _imagecodecs().jpeg8_encode(raw, lossless=True, predictor=predictor, bitspersample=bits)
        assert _jpeg_lossless_process(fragment) == (0xC3, predictor)  # SOF3, predictor in SOS Ss
        _write_encapsulated(ds, path, ts, fragment)

    return write


def _write_htj2k(ds: Dataset, path: Path) -> None:
    fragment = _imagecodecs().htj2k_encode(ds.pixel_array, reversible=True)
    assert fragment[:4] == b"\xff\x4f\xff\x51"  # a raw codestream (SOC, SIZ), not a JPH file
    assert b"\xff\x50" in fragment[: fragment.find(b"\xff\x90")]  # CAP marker in the main header: HT
    _write_encapsulated(ds, path, uid.HTJ2KLossless, fragment)


def _write_jpegls(ts: uid.UID, near: int) -> Writer:
    def write(ds: Dataset, path: Path) -> None:
        bits = int(ds.BitsStored)
        raw = (ds.pixel_array.astype(np.int64) & ((1 << bits) - 1)).astype(np.uint16)
        fragment = _imagecodecs().jpegls_encode(raw, level=near)
        assert _jpegls_near(fragment) == near
        _write_encapsulated(ds, path, ts, fragment)

    return write


def _write_rle(ds: Dataset, path: Path) -> None:
    """RLE Lossless by hand (PS3.5 Annex G): one PackBits segment per byte plane, most significant first."""
    packbits_encode = _imagecodecs().packbits_encode
    arr = ds.pixel_array
    planes = arr.astype(arr.dtype.newbyteorder(">")).view(np.uint8).reshape(*arr.shape, arr.itemsize)
    segments = []
    for k in range(arr.itemsize):
        segment = b"".join(packbits_encode(row.tobytes()) for row in planes[..., k])  # rows not merged
        segments.append(segment + b"\x00" * (len(segment) % 2))
    offsets = np.cumsum([64] + [len(seg) for seg in segments[:-1]]).tolist()
    header = struct.pack("<16I", len(segments), *offsets, *([0] * (15 - len(segments))))
    _write_encapsulated(ds, path, uid.RLELossless, header + b"".join(segments))


def _write_j2k(ds: Dataset, path: Path) -> None:
    ds.compress(uid.JPEG2000Lossless)  # OpenJPEG (pylibjpeg-openjpeg) encodes; GDCM decodes first
    fragment = next(generate_frames(ds.PixelData, number_of_frames=1))
    assert fragment[:4] == b"\xff\x4f\xff\x51"  # a raw codestream (SOC, SIZ), not a JP2 file
    dcmwrite(path, ds, enforce_file_format=True)


def _jpeg_lossless_process(stream: bytes) -> tuple[int, int]:
    """(SOF marker, predictor Ss of the first scan) of a JPEG stream."""
    assert stream[:2] == b"\xff\xd8"
    pos, sof = 2, 0
    while pos < len(stream):
        marker = stream[pos + 1]
        (length,) = struct.unpack(">H", stream[pos + 2 : pos + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            sof = marker
        if marker == 0xDA:
            n_components = stream[pos + 4]
            return sof, stream[pos + 5 + 2 * n_components]
        pos += 2 + length
    raise AssertionError("no SOS marker")


def _jpegls_near(stream: bytes) -> int:
    """NEAR of the first scan of a JPEG-LS stream (0 is lossless)."""
    assert stream[:2] == b"\xff\xd8" and b"\xff\xf7" in stream  # SOI, SOF55
    sos = stream.index(b"\xff\xda")
    n_components = stream[sos + 4]
    return stream[sos + 5 + 2 * n_components]


# --- the syntaxes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Syntax:
    ts: uid.UID
    write: Writer
    #: decoding plugins the declared dependencies must make available (pydicom 3 plugin names)
    plugins: tuple[str, ...] = field(default=())
    #: largest allowed |error|; 0 is bit-exact (only the near-lossless JPEG-LS test allows NEAR=2)
    max_error: int = 0

    @property
    def id(self) -> str:
        return f"{self.ts}-{self.ts.keyword}"


SYNTAXES = [
    Syntax(uid.ExplicitVRLittleEndian, _write_native(uid.ExplicitVRLittleEndian)),
    Syntax(uid.ImplicitVRLittleEndian, _write_native(uid.ImplicitVRLittleEndian)),
    Syntax(uid.DeflatedExplicitVRLittleEndian, _write_native(uid.DeflatedExplicitVRLittleEndian)),
    Syntax(uid.ExplicitVRBigEndian, _write_native(uid.ExplicitVRBigEndian)),
    Syntax(uid.RLELossless, _write_rle, ("pydicom",)),
    Syntax(uid.JPEGLossless, _write_jpeg_lossless(uid.JPEGLossless, predictor=6), ("gdcm",)),
    Syntax(uid.JPEGLosslessSV1, _write_jpeg_lossless(uid.JPEGLosslessSV1, predictor=1), ("gdcm",)),
    Syntax(uid.JPEGLSLossless, _write_jpegls(uid.JPEGLSLossless, near=0), ("gdcm",)),
    Syntax(uid.JPEGLSNearLossless, _write_jpegls(uid.JPEGLSNearLossless, near=2), ("gdcm",), max_error=2),
    Syntax(uid.JPEG2000Lossless, _write_j2k, ("gdcm", "pylibjpeg")),
    Syntax(uid.HTJ2KLossless, _write_htj2k, ("pylibjpeg",)),
]
COMPRESSED = [s for s in SYNTAXES if s.ts.is_compressed]
SV1 = next(s for s in SYNTAXES if s.ts == uid.JPEGLosslessSV1)


@pytest.mark.parametrize("syntax", COMPRESSED, ids=lambda s: s.id)
def test_declared_dependencies_provide_the_decoders(syntax: Syntax) -> None:
    available = set(get_decoder(syntax.ts).available_plugins)
    missing = set(syntax.plugins) - available
    assert not missing, f"{syntax.ts.name}: plugins {sorted(missing)} missing; available {sorted(available)}"


# --- helpers on real data --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def original_dir(sunnybrook_dir: Path) -> Path:
    folder = sunnybrook_dir / "dicoms" / STUDY
    if not folder.is_dir():
        pytest.skip(f"real data not available: {folder} is missing")
    return folder


@functools.cache
def _truth(original_dir: Path, name: str) -> npt.NDArray[np.int64]:
    """Pixel values of the original, uncompressed file as decoded by pydicom (no rescale in these files)."""
    ds = pydicom.dcmread(original_dir / name)
    assert ds.file_meta.TransferSyntaxUID == uid.ExplicitVRLittleEndian
    assert "RescaleSlope" not in ds and "RescaleIntercept" not in ds  # so stored values are the image
    truth = np.asarray(ds.pixel_array, dtype=np.int64)
    truth.flags.writeable = False
    return truth


def _encode_folder(original_dir: Path, dst: Path, syntax: Syntax, names: tuple[str, ...]) -> Path:
    dst.mkdir()
    for name in names:
        syntax.write(_anonymised(original_dir / name), dst / name)
    return dst


def _assert_written_as(path: Path, ts: uid.UID) -> None:
    """The file's bytes use the syntax: checked on the raw bytes, not only on the declared UID."""
    data = path.read_bytes()
    assert data[128:132] == b"DICM"
    meta_end = 144 + struct.unpack("<I", data[140:144])[0]  # (0002,0000) group length
    meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
    assert meta.TransferSyntaxUID == ts
    body = data[meta_end:]
    if ts == uid.DeflatedExplicitVRLittleEndian:
        body = zlib.decompress(body, -zlib.MAX_WBITS)
    if ts == uid.ExplicitVRBigEndian:
        assert body[:6] == b"\x00\x08\x00\x05CS" or body[:6] == b"\x00\x08\x00\x08CS"
    elif ts == uid.ImplicitVRLittleEndian:
        assert body[:2] == b"\x08\x00" and body[4:6] not in (b"CS", b"UI")  # no VR after the tag
    else:
        assert body[:2] == b"\x08\x00" and body[4:6] in (b"CS", b"UI")


# --- reading ----------------------------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize("syntax", SYNTAXES, ids=lambda s: s.id)
def test_read_dicom_cine_bit_exact(syntax: Syntax, original_dir: Path, tmp_path: Path) -> None:
    folder = _encode_folder(original_dir, tmp_path / "study", syntax, SUBSET)
    for name in SUBSET:
        _assert_written_as(folder / name, syntax.ts)

    study = read_dicom_cine(folder)

    assert study.image.shape == (3, 3, 256, 256)
    assert study.source_files is not None
    for t in range(3):
        for z in range(3):
            name = Path(study.source_files[t][z]).name
            got = study.image[t, z].astype(np.float64)
            error = np.abs(got - _truth(original_dir, name))
            assert error.max() <= syntax.max_error, f"{name}: max |error| {error.max()}"
            if syntax.max_error == 0:
                assert np.array_equal(got, _truth(original_dir, name)), name
            else:
                # lossy decoding is still deterministic: a second JPEG-LS decoder (CharLS 2.4) agrees exactly
                fragment = next(generate_frames(pydicom.dcmread(folder / name).PixelData, number_of_frames=1))
                other = _imagecodecs().jpegls_decode(fragment).astype(np.uint16).view(np.int16)
                assert np.array_equal(got, other.astype(np.float64)), name

    # every plugin the dependencies provide decodes the same values, not only the one tried first
    for plugin in syntax.plugins:
        for name in SUBSET[:2]:
            decoded = pixel_array(folder / name, decoding_plugin=plugin).astype(np.int64)
            error = np.abs(decoded - _truth(original_dir, name))
            assert error.max() <= syntax.max_error, f"{plugin} on {name}: max |error| {error.max()}"


@pytest.mark.realdata
def test_whole_study_jpeg_lossless_sv1(original_dir: Path, tmp_path: Path) -> None:
    names = tuple(sorted(p.name for p in original_dir.glob("*.dcm")))
    assert len(names) == 240
    folder = _encode_folder(original_dir, tmp_path / "study", SV1, names)

    study = read_dicom_cine(folder)
    reference = read_dicom_cine(original_dir)

    assert study.image.shape == (20, 12, 256, 256)
    assert study.source_files is not None
    for t in range(study.n_phases):
        for z in range(study.n_slices):
            name = Path(study.source_files[t][z]).name
            assert np.array_equal(study.image[t, z], _truth(original_dir, name)), name
    # the geometry and timing do not depend on the pixel encoding
    assert study.spacing_mm == reference.spacing_mm
    assert study.affine is not None and reference.affine is not None
    np.testing.assert_array_equal(study.affine, reference.affine)
    assert study.phase_times_ms == reference.phase_times_ms


# --- corrupt streams ----------------------------------------------------------------------------------


def _truncate_pixel_data(path: Path) -> None:
    """Keep the file well formed but cut the compressed frame in half (as an interrupted transfer would)."""
    ds = pydicom.dcmread(path)
    fragment = next(generate_frames(ds.PixelData, number_of_frames=1))
    half = fragment[: len(fragment) // 2]
    ds.PixelData = encapsulate([half + b"\x00" * (len(half) % 2)])
    dcmwrite(path, ds, enforce_file_format=True)


@pytest.mark.realdata
@pytest.mark.parametrize("syntax", COMPRESSED, ids=lambda s: s.id)
def test_truncated_stream_names_the_file(syntax: Syntax, original_dir: Path, tmp_path: Path) -> None:
    folder = _encode_folder(original_dir, tmp_path / "study", syntax, SUBSET)
    bad = folder / SUBSET[4]
    _truncate_pixel_data(bad)

    with pytest.raises(DicomReadError, match="decod") as info:
        read_dicom_cine(folder)
    assert str(bad) in str(info.value)


@pytest.mark.realdata
def test_cli_reports_a_corrupt_jpeg_lossless_file_without_traceback(
    original_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _encode_folder(original_dir, tmp_path / "study", SV1, SUBSET)
    bad = folder / SUBSET[0]
    _truncate_pixel_data(bad)

    assert main(["info", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert str(bad) in err and "decod" in err
