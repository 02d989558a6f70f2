"""cardiacseg: typed, MONAI-based segmentation and clinical indices for cardiac cine MRI.

The short curated API::

    from cardiacseg import CineStudy, read_study, compute_cardiac_indices

    study = read_study("path/to/dicom_folder")
    indices = compute_cardiac_indices(study)

Internal label convention everywhere: 0 background, 1 LV blood pool, 2 myocardium, 3 RV blood pool.

``import cardiacseg`` imports nothing heavy (no torch, MONAI or NumPy): the names below are loaded on
first use (PEP 562), so ``cardiacseg --help`` starts at once (benchmarks/startup.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from cardiacseg import clinical, data, io
    from cardiacseg.clinical.indices import CardiacIndices, compute_cardiac_indices
    from cardiacseg.enums import CardiacLabel, Phase
    from cardiacseg.io.discover import read_study
    from cardiacseg.io.study import CineStudy

#: public name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "CardiacIndices": ("cardiacseg.clinical.indices", "CardiacIndices"),
    "CardiacLabel": ("cardiacseg.enums", "CardiacLabel"),
    "CineStudy": ("cardiacseg.io.study", "CineStudy"),
    "Phase": ("cardiacseg.enums", "Phase"),
    "clinical": ("cardiacseg.clinical", None),
    "compute_cardiac_indices": ("cardiacseg.clinical.indices", "compute_cardiac_indices"),
    "data": ("cardiacseg.data", None),
    "io": ("cardiacseg.io", None),
    "read_study": ("cardiacseg.io.discover", "read_study"),
}

__all__ = [
    "CardiacIndices",
    "CardiacLabel",
    "CineStudy",
    "Phase",
    "__version__",
    "clinical",
    "compute_cardiac_indices",
    "data",
    "io",
    "read_study",
]


def __getattr__(name: str) -> Any:
    """Import a curated name on first access (PEP 562)."""
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'cardiacseg' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
