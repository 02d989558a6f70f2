"""End-to-end jobs combining the layers before them: segment a batch of studies, evaluate against references.

One evaluation path: :mod:`cardiacseg.workflows.evaluate` compares label maps (``cardiacseg evaluate``,
the demo); :mod:`cardiacseg.workflows.bundle_evaluation` predicts labelled studies with a model and
scores them with that same comparison (the bundle's ``evaluate.json``).

The last layer of the data path (``io -> transforms -> networks -> engines -> inferers/postprocess ->
clinical -> workflows -> CLI``): nothing below imports it. What counts as one study is decided in
:mod:`cardiacseg.io.discover`, for every job.
"""

from __future__ import annotations

from cardiacseg.workflows.bundle_evaluation import choose_postprocessing, write_evaluation
from cardiacseg.workflows.evaluate import (
    Comparison,
    compare_cohort,
    compare_label_maps,
    compare_labels,
    compare_study,
    find_label_sets,
    read_label_set,
)
from cardiacseg.workflows.segment import STUDY_OUTPUTS, BatchResult, segment_batch, segment_study

__all__ = [
    "STUDY_OUTPUTS",
    "BatchResult",
    "Comparison",
    "choose_postprocessing",
    "compare_cohort",
    "compare_label_maps",
    "compare_labels",
    "compare_study",
    "find_label_sets",
    "read_label_set",
    "segment_batch",
    "segment_study",
    "write_evaluation",
]
