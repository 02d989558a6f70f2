"""Values as they arrive from configs and command lines."""

from __future__ import annotations

__all__ = ["as_bool", "check_device"]


def as_bool(value: bool | int | str) -> bool:
    """Read a switch given as a bool or as a command-line word.

    ``python -m monai.bundle run ... --flag false`` passes the *string* ``"false"`` (Python Fire keeps
    lower-case words as strings), which is truthy; this reads it as ``False``.

    Args:
        value: a bool, 0/1, or one of true/false, yes/no, on/off, 1/0 (any case).

    Returns:
        The boolean.

    Raises:
        ValueError: any other string.

    Example:
        >>> as_bool("false"), as_bool("True"), as_bool(0)
        (False, True, False)

    """
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "yes", "on", "1"):
            return True
        if word in ("false", "no", "off", "0", ""):
            return False
        raise ValueError(f"not a boolean switch: {value!r} (use true/false)")
    return bool(value)


def check_device(device: str) -> str:
    """Check that a torch device name can be used on this machine before any model is loaded.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns:
        ``device`` unchanged.

    Raises:
        ValueError: an unknown device name, CUDA asked for on a CPU-only torch build or on a machine
            without a visible GPU (or an index beyond the GPUs present), or MPS where it is unavailable;
            the message says what to do.

    Example:
        >>> check_device("cpu")
        'cpu'
        >>> check_device("gpu")
        Traceback (most recent call last):
        ...
        ValueError: --device gpu: unknown device; use cpu, cuda, cuda:N or mps

    """
    import torch

    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return device
    if kind == "cuda" and (not index or index.isdigit()):
        if torch.version.cuda is None:
            raise ValueError(
                f"--device {device}: this torch {torch.__version__} is a CPU-only build, so CUDA is not "
                "available; use --device cpu, or install a CUDA build of torch (pip install torch "
                "--index-url https://download.pytorch.org/whl/cu<version>) on a machine with an NVIDIA GPU"
            )
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(
                f"--device {device}: no CUDA GPU is visible (torch {torch.__version__}, CUDA "
                f"{torch.version.cuda}); check the driver and CUDA_VISIBLE_DEVICES, or use --device cpu"
            )
        if index and int(index) >= n:
            raise ValueError(f"--device {device}: only {n} CUDA GPU(s) are visible (cuda:0..cuda:{n - 1})")
        return device
    if kind == "mps" and not index:
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {device}: Apple MPS is not available here; use --device cpu")
        return device
    raise ValueError(f"--device {device}: unknown device; use cpu, cuda, cuda:N or mps")
