"""Figures of a slice-range classifier's evaluation: confusion matrix, t-SNE of features, Grad-CAM overlays.

The slice-range paper's Figures 4-6 (``../shared/papers/slice-range.txt``): confusion matrices of test
predictions, t-SNE of the penultimate features coloured by class, Grad-CAM (Selvaraju et al.) maps per
(truth, prediction) pair. Grad-CAM is MONAI's :class:`monai.visualize.GradCAM`; t-SNE is scikit-learn's
:class:`sklearn.manifold.TSNE` (an optional dependency, imported only by :func:`plot_tsne`). matplotlib is
imported inside each function (Agg backend). PNGs are written atomically; an existing file is refused
unless ``overwrite``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from cardiacseg.enums import SliceRange
from cardiacseg.typing import PathLike
from cardiacseg.utils.atomic import atomic_write

__all__ = ["default_target_layer", "grad_cam_maps", "plot_confusion_matrix", "plot_grad_cam", "plot_tsne"]

_CLASSES = tuple(c.name for c in SliceRange)
_COLOURS = ("tab:blue", "tab:green", "tab:red", "tab:orange", "tab:purple")
_PNG = {"compress_level": 1}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: PathLike, overwrite: bool) -> Path:
    plt = _pyplot()
    try:
        return atomic_write(
            path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", pil_kwargs=_PNG), overwrite=overwrite
        )
    finally:
        plt.close(fig)


def plot_confusion_matrix(
    matrix: npt.ArrayLike,
    path: PathLike,
    class_names: Sequence[str] = _CLASSES,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a confusion matrix (truth in rows, prediction in columns) with counts and row percentages.

    Args:
        matrix: ``(K, K)`` counts, e.g. :func:`cardiacseg.metrics.classification.confusion_matrix`.
        path: output PNG.
        class_names: ``K`` names.
        title: figure title.
        overwrite: replace an existing file.

    Returns:
        The written path.

    Raises:
        ValueError: not a square matrix of ``len(class_names)``.
        FileExistsError: the file exists and ``overwrite`` is False.

    Example:
        >>> plot_confusion_matrix([[5, 1, 0], [2, 30, 1], [0, 3, 6]], "confusion.png")  # doctest: +SKIP

    """
    m = np.asarray(matrix, dtype=np.int64)
    k = len(class_names)
    if m.shape != (k, k):
        raise ValueError(f"expected a ({k}, {k}) matrix for classes {list(class_names)}, got {m.shape}")
    plt = _pyplot()
    rows = m.sum(1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros(m.shape, float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.2 * k + 1.6, 1.2 * k + 1.2))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(
                j, i, f"{m[i, j]}\n{100 * frac[i, j]:.0f}%", ha="center", va="center",
                color="white" if frac[i, j] > 0.5 else "black", fontsize=9,
            )  # fmt: skip
    ax.set_xticks(range(k), class_names)
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("truth")
    ax.set_title(title or f"n = {int(m.sum())}", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the truth row")
    fig.tight_layout()
    return _save(fig, path, overwrite)


def plot_tsne(
    features: npt.ArrayLike | torch.Tensor,
    labels: npt.ArrayLike,
    path: PathLike,
    class_names: Sequence[str] = _CLASSES,
    perplexity: float = 30.0,
    seed: int = 0,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a 2D t-SNE embedding of penultimate features, coloured by class (the paper's Figure 5).

    Args:
        features: ``(N, F)``, e.g. ``SliceClassifier.features(x)`` over a test set.
        labels: ``(N,)`` classes (truth) for the colours.
        path: output PNG.
        class_names: names of the classes.
        perplexity: t-SNE perplexity (lowered to ``(N - 1) / 3`` for small ``N``).
        seed: t-SNE random state.
        title: figure title.
        overwrite: replace an existing file.

    Returns:
        The written path.

    Raises:
        ImportError: scikit-learn is not installed (it is not a cardiacseg dependency).
        ValueError: shapes that do not fit, or fewer than 3 samples.
        FileExistsError: the file exists and ``overwrite`` is False.

    Example:
        >>> plot_tsne(net.features(x).detach(), y, "tsne.png")  # doctest: +SKIP

    """
    try:
        from sklearn.manifold import TSNE  # type: ignore[import-untyped]
    except ImportError as err:
        raise ImportError(
            "plot_tsne needs scikit-learn (not a cardiacseg dependency): pip install scikit-learn"
        ) from err
    f = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    y = np.asarray(labels).astype(np.int64)
    if f.ndim != 2 or y.shape != (f.shape[0],):
        raise ValueError(f"features must be (N, F) and labels (N,), got {f.shape} and {y.shape}")
    if f.shape[0] < 3:
        raise ValueError(f"t-SNE needs at least 3 samples, got {f.shape[0]}")
    perp = float(min(perplexity, (f.shape[0] - 1) / 3))
    emb = TSNE(2, perplexity=perp, random_state=seed, init="pca").fit_transform(f.astype(np.float32))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for c, name in enumerate(class_names):
        sel = y == c
        if sel.any():
            ax.scatter(
                emb[sel, 0], emb[sel, 1], s=8, alpha=0.7, color=_COLOURS[c % len(_COLOURS)], label=name
            )
    ax.legend(loc="best", fontsize=8, markerscale=2)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"t-SNE of {f.shape[1]} features, n = {f.shape[0]}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path, overwrite)


def default_target_layer(net: nn.Module) -> str:
    """Grad-CAM target layer of a slice classifier: its backbone's last stage.

    Args:
        net: a :class:`~cardiacseg.networks.nets.slice_classifier.SliceClassifier`.

    Returns:
        A module name for :class:`monai.visualize.GradCAM` (e.g. ``"backbone.layer4"``,
        ``"backbone.stages.4"``).

    Raises:
        ValueError: the network has no ``backbone.last_block``.

    Example:
        >>> from cardiacseg.networks import get_network
        >>> default_target_layer(get_network("slice_classifier", 2, 1, 3, backbone="unet_encoder"))
        'backbone.stages.4'

    """
    last = getattr(getattr(net, "backbone", None), "last_block", None)
    if not last:
        raise ValueError(f"{type(net).__name__} has no backbone.last_block; name a target layer")
    return f"backbone.{last[-1]}"


def grad_cam_maps(
    net: nn.Module, images: torch.Tensor, target_layer: str | None = None, class_idx: int | None = None
) -> npt.NDArray[np.float32]:
    """Grad-CAM maps with MONAI's :class:`~monai.visualize.GradCAM`, upsampled to the input and in ``[0, 1]``.

    Works with frozen parameters (the input is made to require gradients) and restores the network's
    train/eval state.

    Args:
        net: classifier ``(B, C, H, W) -> (B, K)``.
        images: ``(N, C, H, W)``.
        target_layer: module name (default: :func:`default_target_layer`).
        class_idx: class to explain (default: each image's predicted class).

    Returns:
        ``(N, H, W)`` float32 maps.

    Example:
        >>> maps = grad_cam_maps(net, x)  # doctest: +SKIP

    """
    from monai.visualize import GradCAM

    layer = target_layer or default_target_layer(net)
    was_training = net.training
    net.eval()
    try:
        cam = GradCAM(nn_module=net, target_layers=layer)
        x = images.detach().clone().float().requires_grad_(True)
        maps = cam(x=x, class_idx=class_idx)
    finally:
        net.train(was_training)
    return np.asarray(maps.detach().cpu().numpy()[:, 0], dtype=np.float32)


def plot_grad_cam(
    net: nn.Module,
    images: torch.Tensor,
    path: PathLike,
    truth: Sequence[int] | None = None,
    target_layer: str | None = None,
    class_names: Sequence[str] = _CLASSES,
    alpha: float = 0.45,
    overwrite: bool = False,
) -> Path:
    """Write Grad-CAM overlays of a few slices, titled (truth, prediction) as in the paper's Figure 6.

    Each panel shows the input's middle channel (the slice itself for 2.5D) in grey, as stored
    (``image[c].T``: rows y, columns x), with the map of the predicted class in ``jet`` on top.

    Args:
        net: the classifier.
        images: ``(N, C, H, W)`` network inputs (``N`` small: one panel each).
        path: output PNG.
        truth: true classes for the titles.
        target_layer: Grad-CAM layer (default: :func:`default_target_layer`).
        class_names: names of the classes.
        alpha: overlay opacity.
        overwrite: replace an existing file.

    Returns:
        The written path.

    Raises:
        ValueError: ``images`` not 4D or ``truth`` of another length.
        FileExistsError: the file exists and ``overwrite`` is False.

    Example:
        >>> plot_grad_cam(net, x[:8], "gradcam.png", truth=y[:8])  # doctest: +SKIP

    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if truth is not None and len(truth) != images.shape[0]:
        raise ValueError(f"{len(truth)} truth classes for {images.shape[0]} images")
    maps = grad_cam_maps(net, images, target_layer)
    with torch.no_grad():
        was_training = net.training
        net.eval()
        pred = net(images.float()).argmax(1).tolist()
        net.train(was_training)
    n = images.shape[0]
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    mid = images.shape[1] // 2
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i, mid].detach().cpu().numpy().T, cmap="gray")
        ax.imshow(maps[i].T, cmap="jet", alpha=alpha, vmin=0, vmax=1)
        p = class_names[pred[i]]
        ax.set_title(f"({class_names[truth[i]]}, {p})" if truth is not None else p, fontsize=9)
    fig.suptitle(
        "Grad-CAM (truth, prediction)" if truth is not None else "Grad-CAM (prediction)", fontsize=10
    )
    fig.tight_layout()
    return _save(fig, path, overwrite)
