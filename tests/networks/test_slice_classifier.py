"""Slice-range classifier: shapes, training modes, the segmentation-encoder transfer and 2.5D inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cardiacseg.networks import get_network, make_backbone
from cardiacseg.networks.nets.slice_classifier import SLICE_CLASSIFIER_BACKBONES, SliceClassifier

SEG_WEIGHTS = Path(__file__).resolve().parents[2] / "cardiacseg" / "cardiac_cine_seg" / "models" / "model.pt"

#: penultimate feature sizes (the slice-range paper's Supplementary Table S2 values for VGG16/ResNet50)
FEATURES = {
    "vgg16": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "densenet121": 1024,
    "mobilenet_v2": 1280,
    "unet_encoder": 512,
}


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("backbone", SLICE_CLASSIFIER_BACKBONES)
def test_output_and_feature_shapes(backbone: str, in_channels: int) -> None:
    net = get_network("slice_classifier", 2, in_channels, 3, backbone=backbone).eval()
    x = torch.rand(2, in_channels, 64, 64)
    with torch.no_grad():
        assert net(x).shape == (2, 3)
        assert net.features(x).shape == (2, FEATURES[backbone])  # type: ignore[operator]


@pytest.mark.parametrize("backbone", SLICE_CLASSIFIER_BACKBONES)
def test_modes_freeze_exactly_backbone_or_all_but_last_stage(backbone: str) -> None:
    net = SliceClassifier(2, 1, 3, backbone=backbone, mode="feature_extraction")
    names = {n for n, _ in net.named_parameters()}
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    backbone_params = {n for n in names if n.startswith("backbone.")}
    assert trainable == names - backbone_params
    assert trainable == {n for n in names if n.startswith("head.")}

    net.set_mode("last_block")
    last = tuple(f"backbone.{b}." for b in net.backbone.last_block)  # type: ignore[union-attr]
    in_last = {n for n in backbone_params if n.startswith(last)}
    assert in_last and in_last != backbone_params
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == in_last | {n for n in names if n.startswith("head.")}

    net.set_mode("finetune")
    assert all(p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="mode must be"):
        net.set_mode("depth2")  # type: ignore[arg-type]


def test_unet_encoder_stages_follow_monai_unet_structure() -> None:
    net = SliceClassifier(2, 1, 3, backbone="unet_encoder")
    enc = net.backbone
    assert enc.source_prefixes == (  # type: ignore[union-attr]
        "model.0.",
        "model.1.submodule.0.",
        "model.1.submodule.1.submodule.0.",
        "model.1.submodule.1.submodule.1.submodule.0.",
        "model.1.submodule.1.submodule.1.submodule.1.submodule.",
    )
    assert enc.last_block == ("stages.4",)  # type: ignore[union-attr]
    # every encoder stage equals the segmentation U-Net's module at that path (same parameter names/shapes)
    seg = get_network("unet", 2, 1, 4)
    for i, p in enumerate(enc.source_prefixes):  # type: ignore[union-attr, arg-type]
        mine = {k: v.shape for k, v in enc.stages[i].state_dict().items()}  # type: ignore[index, union-attr]
        theirs = {k: v.shape for k, v in seg.get_submodule(p.rstrip(".")).state_dict().items()}
        assert mine == theirs
    x = torch.rand(1, 1, 64, 64)
    assert [f.shape[1:] for f in enc.features_list(x)] == [  # type: ignore[operator]
        (32, 32, 32),
        (64, 16, 16),
        (128, 8, 8),
        (256, 4, 4),
        (512, 4, 4),
    ]


@pytest.mark.skipif(not SEG_WEIGHTS.is_file(), reason="shipped segmentation weights absent")
def test_unet_encoder_loads_the_segmentation_checkpoint() -> None:
    file = torch.load(SEG_WEIGHTS, map_location="cpu", weights_only=True)  # read independently
    net = get_network(
        "slice_classifier",
        2,
        1,
        3,
        backbone="unet_encoder",
        pretrained=SEG_WEIGHTS,
        mode="feature_extraction",
    )
    own = net.state_dict()
    pairs = {
        "model.0.conv.unit0.conv.weight": "backbone.stages.0.conv.unit0.conv.weight",
        "model.1.submodule.0.residual.weight": "backbone.stages.1.residual.weight",
        "model.1.submodule.1.submodule.0.conv.unit1.adn.N.running_var": (
            "backbone.stages.2.conv.unit1.adn.N.running_var"
        ),
        "model.1.submodule.1.submodule.1.submodule.1.submodule.conv.unit1.conv.weight": (
            "backbone.stages.4.conv.unit1.conv.weight"
        ),
    }
    for src, dst in pairs.items():
        assert torch.equal(own[dst], file[src].float()), dst
    report = net.load_report  # type: ignore[union-attr]
    assert report is not None and not report.missing and not report.adapted
    n_encoder = sum(1 for k in own if k.startswith("backbone."))
    assert len(report.loaded) == n_encoder
    # only decoder / output keys skipped
    assert report.skipped and all(".2." in k or k.startswith("model.2.") for k in report.skipped)


@pytest.mark.skipif(not SEG_WEIGHTS.is_file(), reason="shipped segmentation weights absent")
def test_25d_unet_encoder_on_three_copies_equals_2d_on_the_slice() -> None:
    net2d = SliceClassifier(2, 1, 3, backbone="unet_encoder", pretrained=SEG_WEIGHTS).eval()
    net25 = SliceClassifier(2, 3, 3, backbone="unet_encoder", pretrained=SEG_WEIGHTS).eval()
    w1 = net2d.state_dict()["backbone.stages.0.residual.weight"]
    w3 = net25.state_dict()["backbone.stages.0.residual.weight"]
    assert w3.shape[1] == 3
    torch.testing.assert_close(w3, w1.repeat(1, 3, 1, 1) / 3)
    assert net25.load_report is not None and len(net25.load_report.adapted) == 2
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        a, b = net2d.features(x), net25.features(x.repeat(1, 3, 1, 1))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert float(a.abs().mean()) > 0


def test_25d_imagenet_rgb_kernels_on_three_copies_equal_summed_1_channel() -> None:
    torch.manual_seed(0)
    sd = make_backbone("resnet34", 3).state_dict()
    sd = {
        k: torch.randn_like(v) * 0.05 if v.is_floating_point() and "running_var" not in k else v
        for k, v in sd.items()
    }
    net1 = SliceClassifier(2, 1, 3, backbone="resnet34", pretrained=sd).eval()
    net3 = SliceClassifier(2, 3, 3, backbone="resnet34", pretrained=sd).eval()
    assert net1.load_report is not None and "backbone.conv1.weight" in net1.load_report.adapted
    assert net3.load_report is not None and not net3.load_report.adapted  # RGB kernels loaded unchanged
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            net1.features(x), net3.features(x.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-4
        )


def test_frozen_batch_norm_keeps_running_statistics_in_training() -> None:
    net = SliceClassifier(2, 1, 3, backbone="unet_encoder", mode="feature_extraction").train()
    before = {k: v.clone() for k, v in net.state_dict().items() if "running_mean" in k}
    net(torch.rand(4, 1, 32, 32) * 5)
    after = net.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    net.set_mode("last_block")
    net(torch.rand(4, 1, 32, 32) * 5)
    after = net.state_dict()
    changed = {k for k, v in before.items() if not torch.equal(v, after[k])}
    assert changed and all(k.startswith("backbone.stages.4.") for k in changed)
    assert net.training and net.head.training
