"""Post-processing of predicted label maps: connected components, RV rules, hole filling, step selection."""

from cardiacseg.postprocess.select import (
    PostprocessingChoice,
    PostProcessor,
    postprocessed_dice,
    select_postprocessing,
)
from cardiacseg.postprocess.steps import (
    STEPS,
    fill_holes,
    keep_largest_component_slice,
    keep_largest_component_volume,
    keep_largest_component_volume_of,
    remove_rv_far_from_lv,
    remove_rv_without_lv,
)

__all__ = [
    "STEPS",
    "PostProcessor",
    "PostprocessingChoice",
    "fill_holes",
    "keep_largest_component_slice",
    "keep_largest_component_volume",
    "keep_largest_component_volume_of",
    "postprocessed_dice",
    "remove_rv_far_from_lv",
    "remove_rv_without_lv",
    "select_postprocessing",
]
