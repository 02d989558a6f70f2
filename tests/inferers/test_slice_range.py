"""Slice-range predictor: monotone ordering (against brute force), the shared input, a stub network."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cardiacseg.data.slice_range import slice_context
from cardiacseg.inferers.slice_range import SliceRangeClassifier, monotone_slice_labels
from cardiacseg.io.study import CineStudy
from cardiacseg.networks import get_network
from cardiacseg.transforms import SliceZScore
from cardiacseg.transforms.slice_input import context_indices, slice_classifier_input


def _brute_force(lp: np.ndarray, direction: int) -> tuple[list[int], float]:
    best: tuple[list[int], float] = ([], -np.inf)
    for labels in itertools.product(range(3), repeat=lp.shape[0]):
        seq = labels if direction == 1 else labels[::-1]
        if all(a <= b for a, b in itertools.pairwise(seq)):
            score = float(sum(lp[z, c] for z, c in enumerate(labels)))
            if score > best[1]:
                best = (list(labels), score)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_monotone_labels_equal_brute_force_in_each_direction(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lp = np.log(rng.dirichlet([0.7, 0.7, 0.7], size=6))
    for d in (1, -1):
        labels, used, score = monotone_slice_labels(lp, d)
        ref, ref_score = _brute_force(lp, d)
        assert used == d and labels.tolist() == ref and score == pytest.approx(ref_score)
    labels, used, score = monotone_slice_labels(lp)
    assert score == pytest.approx(max(_brute_force(lp, 1)[1], _brute_force(lp, -1)[1]))
    assert labels.tolist() == _brute_force(lp, used)[0]


def test_monotone_labels_on_constructed_stacks() -> None:
    # base first (OBS at slice 0), one IN slice predicted OAP with little confidence
    p = np.array([[0.1, 0.2, 0.7], [0.1, 0.8, 0.1], [0.5, 0.45, 0.05], [0.1, 0.8, 0.1], [0.9, 0.05, 0.05]])
    labels, used, _ = monotone_slice_labels(np.log(p))
    assert used == -1 and labels.tolist() == [2, 1, 1, 1, 0]
    # told the wrong direction, the best ordered labelling must give up one end
    labels, used, _ = monotone_slice_labels(np.log(p), apex_to_base=1)
    assert used == 1 and all(a <= b for a, b in itertools.pairwise(labels.tolist()))
    assert monotone_slice_labels(np.log([[0.2, 0.7, 0.1]]))[0].tolist() == [1]
    with pytest.raises(ValueError, match="apex_to_base"):
        monotone_slice_labels(np.log(p), apex_to_base=0)


@pytest.mark.parametrize("direction", [1, -1])
def test_context_indices_equal_the_training_items_rule(direction: int) -> None:
    stack = np.arange(5)
    idx = context_indices(5, 2, direction)
    for z in range(5):
        assert idx[z].tolist() == slice_context(stack, z, 2, direction).tolist()


def _disc_study(radii: list[float], n_phases: int = 2, size: int = 48) -> CineStudy:
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2)
    stack = np.stack([(r < rad).astype(np.float32) * 100 + 10 for rad in radii])
    image = np.repeat(stack[None], n_phases, axis=0)  # no temporal variance: the image centre is used
    image[:, :, 0, 0] += np.arange(len(radii))[None, :]  # slices differ; percentile clip keeps the disc
    return CineStudy(image=image, spacing_mm=(8.0, 1.5, 1.5))


def test_input_crop_and_zscore_per_slice() -> None:
    study = _disc_study([4, 8, 12])
    txyz = np.transpose(study.image, (0, 3, 2, 1))
    x, centre = slice_classifier_input(txyz, [1], crop_size=32, context=1, apex_to_base=-1)
    assert x.shape == (1, 3, 3, 32, 32) and centre == pytest.approx((23.5, 23.5))
    raw, _ = slice_classifier_input(txyz, [1], crop_size=32, context=0, normalize=False)
    np.testing.assert_array_equal(raw[0, :, 0].numpy(), txyz[1, 8:40, 8:40].transpose(2, 0, 1))
    ref = SliceZScore()(raw[0, :, 0].numpy())  # each slice z-scored on its own
    np.testing.assert_allclose(x[0, :, 1].numpy(), ref, atol=1e-5)
    # 2.5D channels, slice 0 basal: channel 0 is the apical neighbour (slice 1)
    np.testing.assert_array_equal(x[0, 0, 0].numpy(), x[0, 1, 1].numpy())
    np.testing.assert_array_equal(x[0, 0, 2].numpy(), x[0, 0, 1].numpy())  # edge repeats


class _DiscSizeNet(nn.Module):
    """Class from the disc area fraction of the middle channel: small OAP, mid IN, large OBS (one-hot x 4)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frac = (x[:, x.shape[1] // 2] > 0).float().mean((-1, -2))
        cls = (frac > 0.1).long() + (frac > 0.3).long()
        return torch.nn.functional.one_hot(cls, 3).float() * 4


@pytest.mark.parametrize("context", [0, 1])
def test_predictor_orders_a_stub_networks_classes(context: int) -> None:
    # apex (small discs) at slice 0 ... base (large) at the end; slice 3 looks OAP-sized inside IN
    radii = [3, 3, 9, 9, 3, 9, 9, 16, 16]
    study = _disc_study(radii)
    clf = SliceRangeClassifier(_DiscSizeNet(2 * context + 1), crop_size=40, batch_size=4)
    assert clf.context == context
    pred = clf.predict_study(study)
    for t in (0, 1):
        assert pred[t].argmax.tolist() == [0, 0, 1, 1, 0, 1, 1, 2, 2]
        assert pred[t].classes.tolist() == [0, 0, 1, 1, 1, 1, 1, 2, 2]
        assert pred[t].apex_to_base == 1
        np.testing.assert_allclose(pred[t].probabilities.sum(1), 1.0, rtol=1e-6)
    raw = SliceRangeClassifier(_DiscSizeNet(1), crop_size=40, enforce_order=False).predict(study, [1])
    assert list(raw) == [1] and raw[1].tolist() == [0, 0, 1, 1, 0, 1, 1, 2, 2]
    flipped = CineStudy(image=study.image[:, ::-1].copy(), spacing_mm=study.spacing_mm)
    back = SliceRangeClassifier(_DiscSizeNet(2 * context + 1), crop_size=40).predict_study(flipped, [0])[0]
    assert back.classes.tolist() == [2, 2, 1, 1, 1, 1, 1, 0, 0] and back.apex_to_base == -1


def test_from_checkpoint_and_bundle(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = get_network("slice_classifier", 2, 3, 3, backbone="unet_encoder")
    (tmp_path / "models").mkdir()
    (tmp_path / "configs").mkdir()
    torch.save(net.state_dict(), tmp_path / "models" / "model.pt")
    study = _disc_study([3, 6, 9, 12])
    clf = SliceRangeClassifier.from_checkpoint(
        tmp_path / "models" / "model.pt", backbone="unet_encoder", context=1, crop_size=32, apex_to_base=-1
    )
    probs = clf.predict_probabilities(study, [0])[0]
    assert probs.shape == (4, 3) and clf.weights_file is not None
    net.eval()
    x, _ = slice_classifier_input(np.transpose(study.image, (0, 3, 2, 1)), [0], 32, 1, apex_to_base=-1)
    with torch.no_grad():
        ref = torch.softmax(net(x[0]), 1).numpy()
    np.testing.assert_allclose(probs, ref, rtol=1e-4, atol=1e-5)
    config = {
        "backbone": "unet_encoder",
        "context": 1,
        "crop_size": 32,
        "apex_to_base": -1,
        "predictor": {
            "_target_": "cardiacseg.inferers.slice_range.SliceRangeClassifier.from_checkpoint",
            "weights": "$@bundle_root + '/models/model.pt'",
            "backbone": "@backbone",
            "context": "@context",
            "crop_size": "@crop_size",
            "apex_to_base": "@apex_to_base",
        },
    }
    (tmp_path / "configs" / "inference.json").write_text(json.dumps(config))
    bundled = SliceRangeClassifier.from_bundle(tmp_path)
    np.testing.assert_allclose(bundled.predict_probabilities(study, [0])[0], probs, rtol=1e-5, atol=1e-6)
    assert bundled.bundle_dir == tmp_path
    with pytest.raises(TypeError, match="unknown override"):
        SliceRangeClassifier.from_bundle(tmp_path, tta="flip")


@pytest.mark.parametrize("context", [0, 1])
def test_input_equals_training_items_on_acdc(acdc_dir: Path, context: int) -> None:
    """The predictor's input is the training item's image followed by SliceZScore (real ACDC)."""
    from cardiacseg.data.slice_range import slice_range_items
    from cardiacseg.io.ssl4mis import read_ssl4mis_study

    pid = "patient001"
    items = slice_range_items(acdc_dir, [pid], phases=("ED",), crop_size=128, context=context)
    study = read_ssl4mis_study(acdc_dir, pid)
    assert study.ed_phase is not None
    d = items[0]["apex_to_base"]
    x, centre = slice_classifier_input(
        np.transpose(study.image, (0, 3, 2, 1)), [study.ed_phase], 128, context, apex_to_base=d
    )
    assert centre == pytest.approx(items[0]["centre"])
    for it in items:
        np.testing.assert_allclose(
            x[0, it["slice"]].numpy(), SliceZScore()(it["image"]), atol=1e-5, err_msg=f"slice {it['slice']}"
        )
