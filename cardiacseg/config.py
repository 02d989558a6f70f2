"""Values as they arrive from configs and command lines."""

from __future__ import annotations

__all__ = ["as_bool"]


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
