"""Where a result came from, with the standard library only: weight-file hashes and bundle metadata.

One implementation for :mod:`cardiacseg.inferers.identity` (the model identity written into every report)
and for ``cardiacseg --version`` (which must start at once: nothing here imports torch, MONAI or NumPy).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["bundle_metadata", "bundle_weight_files", "file_sha256", "version_text"]

#: Bytes read per chunk while hashing (bounded memory for any file size).
_CHUNK_BYTES = 1 << 20

#: ``(resolved path, mtime_ns, size) -> sha256 hex``: each file is hashed once per process, and again only
#: when it changes on disk (segmenting 1000 studies with one predictor hashes its weights once).
_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks, cached per process by path, mtime and size.

    Args:
        path: the file.

    Returns:
        The lower-case hex digest (64 characters), as ``sha256sum`` prints it.

    Raises:
        FileNotFoundError: the file does not exist.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile(delete=False) as f:
        ...     _ = f.write(b"abc")
        >>> file_sha256(f.name)[:12]
        'ba7816bf8f01'

    """
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_mtime_ns, st.st_size)
    cached = _SHA256_CACHE.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with p.open("rb") as fh:
        while chunk := fh.read(_CHUNK_BYTES):
            digest.update(chunk)
    _SHA256_CACHE[key] = value = digest.hexdigest()
    return value


def bundle_metadata(bundle_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the bundle's ``configs/metadata.json`` (MONAI bundle metadata: ``name``, ``version``, ...).

    Args:
        bundle_dir: the bundle folder.

    Returns:
        The parsed metadata, or ``{}`` when the bundle has no ``configs/metadata.json``.

    Raises:
        ValueError: the file is not valid JSON or not a JSON object (the message names the file).

    Example:
        >>> from cardiacseg.demo import shipped_bundle_path
        >>> bundle_metadata(shipped_bundle_path())["name"]
        'Cardiac cine short-axis segmentation'

    """
    path = Path(bundle_dir) / "configs" / "metadata.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def bundle_weight_files(bundle_dir: str | os.PathLike[str]) -> list[Path]:
    """Weight files a bundle's predictor loads: ``ensemble`` of ``configs/inference.json``, else the model.

    The same rule as :meth:`~cardiacseg.inferers.SlicePredictor.from_bundle` without its overrides
    (``--weights`` replaces these files; the model identity of a run then lists the files really loaded).

    Args:
        bundle_dir: the bundle folder.

    Returns:
        The paths (``models/model.pt`` when ``inference.json`` lists no ensemble); they may not exist.

    Example:
        >>> from cardiacseg.demo import shipped_bundle_path
        >>> [p.name for p in bundle_weight_files(shipped_bundle_path())]
        ['model.pt']

    """
    root = Path(bundle_dir)
    files: list[str] = ["models/model.pt"]
    cfg = root / "configs" / "inference.json"
    if cfg.is_file():
        ensemble = json.loads(cfg.read_text(encoding="utf-8")).get("ensemble")
        if isinstance(ensemble, list) and ensemble and all(isinstance(e, str) for e in ensemble):
            files = ensemble
    return [root / f for f in files]


def version_text(package_version: str, bundle_dir: str | os.PathLike[str] | None) -> str:
    """Compose what ``cardiacseg --version`` prints: the package, the bundle and its weights' SHA-256.

    Args:
        package_version: ``cardiacseg.__version__``.
        bundle_dir: the shipped bundle folder, or ``None`` when this installation has none.

    Returns:
        Lines ``cardiacseg <version>``, ``bundle: <name> <version> (<folder>)`` and one
        ``weights: <file> sha256 <hex>`` per weight file (``missing`` when absent).

    Example:
        >>> print(version_text("0.1.0", None))
        cardiacseg 0.1.0
        bundle: none shipped with this installation

    """
    lines = [f"cardiacseg {package_version}"]
    if bundle_dir is None:
        return "\n".join([*lines, "bundle: none shipped with this installation"])
    meta = bundle_metadata(bundle_dir)
    lines.append(f"bundle: {meta.get('name', '?')} {meta.get('version', '?')} ({bundle_dir})")
    for f in bundle_weight_files(bundle_dir):
        rel = f.relative_to(bundle_dir).as_posix()
        lines.append(f"weights: {rel} sha256 {file_sha256(f)}" if f.is_file() else f"weights: {rel} missing")
    return "\n".join(lines)
