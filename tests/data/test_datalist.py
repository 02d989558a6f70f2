from __future__ import annotations

import itertools
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


def test_subject_subsets_are_nested_for_every_size_and_input_order() -> None:
    ids = [f"patient{i:03d}" for i in range(1, 15)]
    for seed in (0, 1, 7):
        subsets = [set(subset_subjects(ids, n, seed)) for n in (1, 3, 7, 14)]
        assert [len(s) for s in subsets] == [1, 3, 7, 14]
        assert all(a <= b for a, b in itertools.pairwise(subsets))
        # the shuffle starts from the sorted ids: the order given does not change the choice
        assert set(subset_subjects(list(reversed(ids)), 3, seed)) == subsets[1]
    # another seed draws another subset (independent expectation: 3 of 14 subjects, 364 possibilities)
    assert len({tuple(subset_subjects(ids, 3, s)) for s in range(10)}) > 1


def _stack(tmp_path: Path, name: str, label: np.ndarray) -> dict[str, str]:
    from cardiacseg.io import write_nifti

    image = np.random.default_rng(0).random(label.shape).astype(np.float32)
    write_nifti(tmp_path / f"{name}.nii.gz", image)
    write_nifti(tmp_path / f"{name}_gt.nii.gz", label)
    return {"image": f"{name}.nii.gz", "label": f"{name}_gt.nii.gz", "patient": name}


def test_annotated_slices_only_become_items(tmp_path: Path) -> None:
    import json

    from cardiacseg.data.datalist import datalist_slice_items

    label = np.zeros((5, 12, 10), np.uint8)
    label[1, 3:6, 3:6] = 1  # LV on slices 1 and 3; slices 0, 2, 4 were not contoured
    label[3, 4:8, 2:5] = 2
    entry = _stack(tmp_path, "a", label) | {"phase": "ED", "annotated_slices": [1, 3]}
    (tmp_path / "d.json").write_text(json.dumps({"training": [entry]}))
    items = datalist_slice_items(tmp_path / "d.json", "training")
    assert [d["slice"] for d in items] == [1, 3]
    assert items[0]["label"].shape == (1, 10, 12)  # (1, X, Y)
    np.testing.assert_array_equal(items[1]["label"][0], label[3].T)
    assert items[0]["phase"] == "ED" and items[0]["patient"] == "a"
    # centre of the labels of the used slices: x 2..5, y 3..7
    assert items[0]["centre"] == (3.5, 5.0)
    # "slices" (an image subset) intersects with the annotated slices
    (tmp_path / "d2.json").write_text(json.dumps({"training": [entry | {"slices": [0, 3]}]}))
    assert [d["slice"] for d in datalist_slice_items(tmp_path / "d2.json")] == [3]
    (tmp_path / "d3.json").write_text(json.dumps({"training": [entry | {"annotated_slices": [7]}]}))
    with pytest.raises(ValueError, match=r"a_gt.nii.gz: annotated_slices \[7\] outside"):
        datalist_slice_items(tmp_path / "d3.json")


def test_labels_of_unlabelled_structures_are_refused_or_dropped(tmp_path: Path) -> None:
    import json

    from cardiacseg.data.datalist import IGNORE_VALUE, datalist_slice_items

    label = np.zeros((2, 8, 8), np.uint8)
    label[0, 1:3, 1:3] = 1  # ACDC RV
    label[0, 4:6, 4:6] = 3  # ACDC LV
    label[1, 0, 0] = IGNORE_VALUE  # a pixel without annotation passes through
    (tmp_path / "d.json").write_text(json.dumps({"training": [_stack(tmp_path, "b", label)]}))
    with pytest.raises(ValueError, match=r"b_gt.nii.gz: holds RV"):
        datalist_slice_items(tmp_path / "d.json", "training", "acdc", labelled_classes=(1, 2))
    entries = tmp_path / "d.json"
    items = datalist_slice_items(entries, "training", "acdc", (1, 2), drop_unlabelled=True)
    first = items[0]["label"][0].T
    assert set(np.unique(first).tolist()) == {0, 1}  # ACDC LV (3) -> internal 1; RV dropped to 0
    assert first[4, 4] == 1 and first[1, 1] == 0
    assert items[1]["label"][0].T[0, 0] == IGNORE_VALUE


def test_context_slices_stack_the_neighbouring_slices_as_channels(acdc_dir: Path) -> None:
    from cardiacseg.io.ssl4mis import read_ssl4mis_study

    flat = ssl4mis_slice_items(acdc_dir, ["patient001"], phases=("ES",))
    deep = ssl4mis_slice_items(acdc_dir, ["patient001"], phases=("ES",), context_slices=1)
    study = read_ssl4mis_study(acdc_dir, "patient001")
    n = study.n_slices
    assert len(deep) == len(flat) == n
    for z, (a, b) in enumerate(zip(flat, deep, strict=True)):
        assert b["image"].shape == (3, *a["image"].shape[1:])
        np.testing.assert_array_equal(b["label"], a["label"])
        for channel, source in enumerate((max(z - 1, 0), z, min(z + 1, n - 1))):  # ends repeat
            np.testing.assert_array_equal(b["image"][channel], study.image[1, source].T)
    with pytest.raises(ValueError, match="context_slices"):
        ssl4mis_slice_items(acdc_dir, ["patient001"], context_slices=-1)
