"""End-to-end jobs combining the layers before them: segment a batch of studies, evaluate against references.

The last layer of the data path (``io -> transforms -> networks -> engines -> inferers/postprocess ->
clinical -> workflows -> CLI``): nothing below imports it. What counts as one study is decided in
:mod:`cardiacseg.io.discover`, for every job.
"""

from __future__ import annotations

from cardiacseg.workflows.evaluate import compare_cohort, compare_labels, find_label_sets, read_label_set
from cardiacseg.workflows.segment import STUDY_OUTPUTS, BatchResult, segment_batch, segment_study

__all__ = [
    "STUDY_OUTPUTS",
    "BatchResult",
    "compare_cohort",
    "compare_labels",
    "find_label_sets",
    "read_label_set",
    "segment_batch",
    "segment_study",
]
