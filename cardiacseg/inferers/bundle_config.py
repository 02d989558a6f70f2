"""Instantiate the ``predictor`` a bundle's ``configs/inference.json`` defines (shared by the predictors)."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from cardiacseg.typing import PathLike

__all__ = ["instantiate_bundle_predictor"]

T = TypeVar("T")


def _plain(value: Any) -> Any:
    """Paths and torch devices as strings (also inside lists), as a config value must be."""
    if isinstance(value, os.PathLike | torch.device):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def instantiate_bundle_predictor(
    bundle_dir: PathLike, cls: type[T], allowed: Collection[str], overrides: Mapping[str, Any]
) -> tuple[T, Path]:
    """Read ``configs/inference.json`` (and ``metadata.json`` as ``_meta_``) with MONAI's ConfigParser.

    ``bundle_root`` is set to ``bundle_dir``, the overrides replace the config's top-level values (paths and
    devices as strings), and the config's ``predictor`` is instantiated exactly as ``python -m
    monai.bundle run`` would.

    Args:
        bundle_dir: the bundle folder.
        cls: the class ``predictor`` must be.
        allowed: the top-level keys that may be overridden.
        overrides: ``{key: value}``.

    Returns:
        ``(predictor, bundle folder)``.

    Raises:
        FileNotFoundError: no ``configs/inference.json``, or missing weights.
        ValueError: what the predictor refuses (weights that do not fit the network, an invalid crop
            side ...), unwrapped from MONAI's ``RuntimeError``.
        TypeError: an override that is not allowed or not in the config, or a ``predictor`` that is not a
            ``cls``.

    Example:
        >>> overrides = {"tta": "none"}
        >>> p, root = instantiate_bundle_predictor("b", SlicePredictor, {"tta"}, overrides)  # doctest: +SKIP

    """
    from monai.bundle import ConfigParser

    root = Path(bundle_dir)
    cfg = root / "configs" / "inference.json"
    if not cfg.is_file():
        raise FileNotFoundError(f"{root}: not a bundle folder (no configs/inference.json)")
    parser = ConfigParser()
    parser.read_config(str(cfg))
    meta = root / "configs" / "metadata.json"
    if meta.is_file():
        parser.read_meta(str(meta))
    parser["bundle_root"] = str(root)
    for key, value in overrides.items():
        if key not in parser.config or key not in allowed:  # type: ignore[operator]
            raise TypeError(f"from_bundle got an unknown override {key!r}; choose from {sorted(allowed)}")
        parser[key] = _plain(value)
    try:
        predictor = parser.get_parsed_content("predictor")
    except RuntimeError as exc:  # MONAI wraps the component's own error ("Failed to instantiate ..."): unwrap
        cause: BaseException | None = exc
        while isinstance(cause, RuntimeError) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, ValueError | FileNotFoundError):
            raise cause from None
        raise
    if not isinstance(predictor, cls):
        raise TypeError(f"{cfg}: 'predictor' is a {type(predictor).__name__}, not a {cls.__name__}")
    return predictor, root
