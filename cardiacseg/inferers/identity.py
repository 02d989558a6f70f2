"""Model identity: which package, bundle, weights and settings produced a result (written into every report).

A report that says only ``"model": "UNet"`` cannot be traced to a fine-tuned model or an ensemble; a
:class:`ModelIdentity` names the weights by their SHA-256 and records every setting that changes the
numbers. Hashing and metadata reading live in :mod:`cardiacseg.provenance` (standard library only, shared
with ``cardiacseg --version``); each weight file is hashed once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cardiacseg import __version__
from cardiacseg.provenance import bundle_metadata, file_sha256

if TYPE_CHECKING:
    from cardiacseg.inferers.predictor import SlicePredictor

__all__ = ["ModelIdentity", "WeightsFile", "describe_predictor"]


@dataclass(frozen=True)
class WeightsFile:
    """One weight file of a model.

    Attributes:
        name: the file name (no folder: the folder is machine-specific, the hash identifies the file).
        sha256: lower-case hex SHA-256 of the file's bytes (as ``sha256sum`` prints it).

    Example:
        >>> WeightsFile("model.pt", "ab" * 32).short
        'abababababab'

    """

    name: str
    sha256: str

    @property
    def short(self) -> str:
        """The first 12 hex digits of the SHA-256 (as in the PNG footer)."""
        return self.sha256[:12]


@dataclass(frozen=True)
class ModelIdentity:
    """What produced a segmentation: package, bundle, weights (by SHA-256), networks and settings.

    Attributes:
        package_version: ``cardiacseg.__version__``.
        bundle_name: ``name`` of the bundle's ``configs/metadata.json`` (``None``: not from a bundle).
        bundle_version: ``version`` of the same file (``None``: not from a bundle).
        weights: the weight files loaded, in ensemble order (empty when the networks were passed in).
        networks: class name of each network (one per ensemble member).
        tta: test-time augmentation mode (``"none"``, ``"flip"``, ``"flip_rot90"``).
        precision: network arithmetic actually used (``"fp32"`` or ``"bf16"``).
        crop_size: heart crop side in pixels at the target spacing.
        crop_fallback_size: larger crop used when the heart reaches the crop border (``None``: never).
        zscore_region: where the per-slice z-score statistics are taken (``"crop"`` or ``"slice"``).
        target_spacing_mm: in-plane spacing the images are resampled to, in mm (``None``: none).
        postprocessing: post-processing step names, in the order applied.
        slice_range: the rule deciding which slices count in LV volumes (set by the workflow).

    Example:
        >>> ident = ModelIdentity("0.1.0", "Cardiac cine", "0.2.1", (WeightsFile("model.pt", "0" * 64),),
        ...                       ("UNet",), "flip", "fp32", 160, 192, "crop", 1.5, ("lcc_volume",), "all")
        >>> ident.summary()
        'cardiacseg 0.1.0 | bundle Cardiac cine 0.2.1 | weights model.pt 000000000000 | TTA flip'

    """

    package_version: str
    bundle_name: str | None
    bundle_version: str | None
    weights: tuple[WeightsFile, ...]
    networks: tuple[str, ...]
    tta: str
    precision: str
    crop_size: int
    crop_fallback_size: int | None
    zscore_region: str
    target_spacing_mm: float | None
    postprocessing: tuple[str, ...]
    slice_range: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``report.json`` → ``model``).

        Returns:
            ``{"package_version", "bundle": {"name", "version"} or None, "weights": [{"file", "sha256"}],
            "networks", "tta", "precision", "crop_size", "crop_fallback_size", "zscore_region",
            "target_spacing_mm", "postprocessing", "slice_range", "summary"}``.

        """
        bundle = (
            None
            if self.bundle_name is None and self.bundle_version is None
            else {"name": self.bundle_name, "version": self.bundle_version}
        )
        return {
            "package_version": self.package_version,
            "bundle": bundle,
            "weights": [{"file": w.name, "sha256": w.sha256} for w in self.weights],
            "networks": list(self.networks),
            "tta": self.tta,
            "precision": self.precision,
            "crop_size": self.crop_size,
            "crop_fallback_size": self.crop_fallback_size,
            "zscore_region": self.zscore_region,
            "target_spacing_mm": self.target_spacing_mm,
            "postprocessing": list(self.postprocessing),
            "slice_range": self.slice_range,
            "summary": self.summary(),
        }

    def summary(self) -> str:
        """One line naming the model: package, bundle, each weight file with 12 hex of its SHA-256, TTA.

        Returns:
            E.g. ``cardiacseg 0.1.0 | bundle Cardiac cine short-axis segmentation 0.2.1 | weights
            model.pt 3f2a... | TTA flip`` (on one line; used as the PNG footer and the CSV ``# model:``).

        """
        parts = [f"cardiacseg {self.package_version}"]
        if self.bundle_name is not None or self.bundle_version is not None:
            parts.append(f"bundle {self.bundle_name or '?'} {self.bundle_version or '?'}")
        if self.weights:
            parts.append("weights " + ", ".join(f"{w.name} {w.short}" for w in self.weights))
        else:
            parts.append("weights not from files (" + "+".join(self.networks) + ")")
        parts.append(f"TTA {self.tta}")
        return " | ".join(parts)


def describe_predictor(predictor: SlicePredictor, slice_range: str = "all") -> ModelIdentity:
    """Describe a predictor: its bundle, weight-file hashes, networks and settings.

    Weight files are hashed with :func:`~cardiacseg.provenance.file_sha256` (cached per process by path,
    modification time and size: describing the same predictor for every study of a batch hashes once).

    Args:
        predictor: the predictor (``weights_files`` and ``bundle_dir`` are set by
            :meth:`~cardiacseg.inferers.SlicePredictor.from_checkpoint` and ``from_bundle``).
        slice_range: the rule deciding which slices count in LV volumes, in words (the workflow's choice).

    Returns:
        The :class:`ModelIdentity`.

    Raises:
        FileNotFoundError: a weight file the predictor was loaded from no longer exists.
        ValueError: the bundle's ``configs/metadata.json`` is not valid JSON.

    Example:
        >>> from cardiacseg.demo import shipped_bundle_path
        >>> from cardiacseg.inferers import SlicePredictor
        >>> ident = describe_predictor(SlicePredictor.from_bundle(shipped_bundle_path()))  # doctest: +SKIP
        >>> ident.bundle_version, ident.weights[0].name  # doctest: +SKIP
        ('0.2.1', 'model.pt')

    """
    bundle_dir: Path | None = getattr(predictor, "bundle_dir", None)
    meta = bundle_metadata(bundle_dir) if bundle_dir is not None else {}
    name, version = meta.get("name"), meta.get("version")
    files: list[Path] = list(getattr(predictor, "weights_files", []) or [])
    post = predictor.postprocess
    return ModelIdentity(
        package_version=__version__,
        bundle_name=None if name is None else str(name),
        bundle_version=None if version is None else str(version),
        weights=tuple(WeightsFile(Path(f).name, file_sha256(f)) for f in files),
        networks=tuple(type(n).__name__ for n in predictor.networks),
        tta=predictor.tta,
        precision=predictor.precision,
        crop_size=int(predictor.crop_size),
        crop_fallback_size=None
        if predictor.crop_fallback_size is None
        else int(predictor.crop_fallback_size),
        zscore_region=predictor.zscore_region,
        target_spacing_mm=None if predictor.target_spacing_mm is None else float(predictor.target_spacing_mm),
        postprocessing=() if post is None else tuple(post.steps),
        slice_range=slice_range,
    )
