from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardiacseg.data.datalist import (
    acdc_group,
    kfold_patients,
    random_image_subset,
    split_patients,
    ssl4mis_slice_items,
    subset_subjects,
)
from cardiacseg.io import list_ssl4mis_patients


def test_kfold_is_a_partition_and_stratified() -> None:
    ids = [f"patient{i:03d}" for i in range(1, 101)]
    folds = kfold_patients(ids, 5, seed=3, stratify=acdc_group)
    vals = [set(v) for _, v in folds]
    assert set().union(*vals) == set(ids) and sum(len(v) for v in vals) == 100
    for train, val in folds:
        assert not set(train) & set(val)
        assert {acdc_group(p) for p in val} == {"DCM", "HCM", "MINF", "NOR", "RV"}
        assert all(sum(acdc_group(p) == g for p in val) == 4 for g in ("DCM", "NOR"))


def test_subsets_are_nested_and_sized() -> None:
    items = [{"i": i} for i in range(50)]
    small, large = random_image_subset(items, 10, seed=2), random_image_subset(items, 30, seed=2)
    assert [d["i"] for d in small] == [d["i"] for d in large[:10]]
    assert len(subset_subjects([str(i) for i in range(20)], 7)) == 7
    with pytest.raises(ValueError):
        subset_subjects(["a"], 2)


@pytest.mark.realdata
def test_acdc_split_has_no_patient_in_both(acdc_dir: Path) -> None:
    patients = list_ssl4mis_patients(acdc_dir)
    train, val = split_patients(patients, 0.2, seed=0)
    assert not set(train) & set(val) and len(train) + len(val) == 75
    items = ssl4mis_slice_items(acdc_dir, val[:2])
    assert {d["patient"] for d in items} == set(val[:2])
    for d in items[:3]:
        assert d["image"].shape == d["label"].shape and d["image"].shape[0] == 1
        # the centre lies inside the labelled region's bounding box of that patient
        fg = np.concatenate([e["label"][0] for e in items if e["patient"] == d["patient"]], axis=1) > 0
        assert fg.any()
