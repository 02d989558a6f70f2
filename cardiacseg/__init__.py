"""cardiacseg: typed, MONAI-based segmentation and clinical indices for cardiac cine MRI.

The short curated API::

    from cardiacseg import CineStudy, read_study, compute_cardiac_indices

    study = read_study("path/to/dicom_folder")
    indices = compute_cardiac_indices(study)

Internal label convention everywhere: 0 background, 1 LV blood pool, 2 myocardium, 3 RV blood pool.
"""

from __future__ import annotations

__version__ = "0.1.0"

from cardiacseg import clinical, data, io
from cardiacseg.clinical.indices import CardiacIndices, compute_cardiac_indices
from cardiacseg.enums import CardiacLabel, Phase
from cardiacseg.io.discover import read_study
from cardiacseg.io.study import CineStudy

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
