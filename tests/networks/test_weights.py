"""Loading torchvision-format ImageNet weights from a local file, partial loads, reports and errors.

The reference key layouts below are written from torchvision's model definitions (torchvision itself
cannot be imported here): names, order-independent, with the shape of every tensor.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cardiacseg.networks import (
    WeightLoadError,
    count_parameters,
    get_network,
    load_partial,
    load_torchvision_backbone,
    make_backbone,
)


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.weight": (c,),
        f"{prefix}.bias": (c,),
        f"{prefix}.running_mean": (c,),
        f"{prefix}.running_var": (c,),
        f"{prefix}.num_batches_tracked": (),
    }


def torchvision_resnet_layout(depth: int) -> dict[str, tuple[int, ...]]:
    bottleneck = depth == 50
    exp = 4 if bottleneck else 1
    keys: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    inplanes = 64
    for li, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True), 1):
        for b in range(blocks):
            p = f"layer{li}.{b}"
            if bottleneck:
                keys[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
                keys.update(_bn(f"{p}.bn1", planes))
                keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                keys.update(_bn(f"{p}.bn2", planes))
                keys[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
                keys.update(_bn(f"{p}.bn3", planes * 4))
            else:
                keys[f"{p}.conv1.weight"] = (planes, inplanes, 3, 3)
                keys.update(_bn(f"{p}.bn1", planes))
                keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                keys.update(_bn(f"{p}.bn2", planes))
            if b == 0 and (li > 1 or inplanes != planes * exp):
                keys[f"{p}.downsample.0.weight"] = (planes * exp, inplanes, 1, 1)
                keys.update(_bn(f"{p}.downsample.1", planes * exp))
            inplanes = planes * exp
    keys["fc.weight"] = (1000, 512 * exp)
    keys["fc.bias"] = (1000,)
    return keys


def torchvision_vgg16_layout() -> dict[str, tuple[int, ...]]:
    convs = [
        (0, 3, 64),
        (2, 64, 64),
        (5, 64, 128),
        (7, 128, 128),
        (10, 128, 256),
        (12, 256, 256),
        (14, 256, 256),
        (17, 256, 512),
        (19, 512, 512),
        (21, 512, 512),
        (24, 512, 512),
        (26, 512, 512),
        (28, 512, 512),
    ]
    keys: dict[str, tuple[int, ...]] = {}
    for i, cin, cout in convs:
        keys[f"features.{i}.weight"] = (cout, cin, 3, 3)
        keys[f"features.{i}.bias"] = (cout,)
    for i, (cin, cout) in zip((0, 3, 6), ((25088, 4096), (4096, 4096), (4096, 1000)), strict=True):
        keys[f"classifier.{i}.weight"] = (cout, cin)
        keys[f"classifier.{i}.bias"] = (cout,)
    return keys


def torchvision_densenet121_layout() -> dict[str, tuple[int, ...]]:
    keys: dict[str, tuple[int, ...]] = {"features.conv0.weight": (64, 3, 7, 7), **_bn("features.norm0", 64)}
    c = 64
    for bi, n in enumerate((6, 12, 24, 16), 1):
        for li in range(1, n + 1):
            p = f"features.denseblock{bi}.denselayer{li}"
            cin = c + (li - 1) * 32
            keys.update(_bn(f"{p}.norm1", cin))
            keys[f"{p}.conv1.weight"] = (128, cin, 1, 1)
            keys.update(_bn(f"{p}.norm2", 128))
            keys[f"{p}.conv2.weight"] = (32, 128, 3, 3)
        c += n * 32
        if bi < 4:
            keys.update(_bn(f"features.transition{bi}.norm", c))
            keys[f"features.transition{bi}.conv.weight"] = (c // 2, c, 1, 1)
            c //= 2
    keys.update(_bn("features.norm5", c))
    keys["classifier.weight"] = (1000, c)
    keys["classifier.bias"] = (1000,)
    return keys


def torchvision_mobilenet_v2_layout() -> dict[str, tuple[int, ...]]:
    keys: dict[str, tuple[int, ...]] = {"features.0.0.weight": (32, 3, 3, 3), **_bn("features.0.1", 32)}
    cfg = ((1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1))
    c, idx = 32, 1
    for t, out, n in cfg:
        for _ in range(n):
            p = f"features.{idx}.conv"
            hidden = c * t
            j = 0
            if t != 1:
                keys[f"{p}.0.0.weight"] = (hidden, c, 1, 1)
                keys.update(_bn(f"{p}.0.1", hidden))
                j = 1
            keys[f"{p}.{j}.0.weight"] = (hidden, 1, 3, 3)
            keys.update(_bn(f"{p}.{j}.1", hidden))
            keys[f"{p}.{j + 1}.weight"] = (out, hidden, 1, 1)
            keys.update(_bn(f"{p}.{j + 2}", out))
            c, idx = out, idx + 1
    keys["features.18.0.weight"] = (1280, 320, 1, 1)
    keys.update(_bn("features.18.1", 1280))
    keys["classifier.1.weight"] = (1000, 1280)
    keys["classifier.1.bias"] = (1000,)
    return keys


LAYOUTS = {
    "resnet34": lambda: torchvision_resnet_layout(34),
    "resnet50": lambda: torchvision_resnet_layout(50),
    "vgg16": torchvision_vgg16_layout,
    "densenet121": torchvision_densenet121_layout,
    "mobilenet_v2": torchvision_mobilenet_v2_layout,
}
#: torchvision's documented parameter counts (ImageNet models, weights enums' "num_params")
TORCHVISION_NUM_PARAMS = {
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "vgg16": 138_357_544,
    "densenet121": 7_978_856,
    "mobilenet_v2": 3_504_872,
}
FIRST_CONV = {
    "resnet34": "conv1.weight",
    "resnet50": "conv1.weight",
    "vgg16": "features.0.weight",
    "densenet121": "features.conv0.weight",
    "mobilenet_v2": "features.0.0.weight",
}


def _random_state_dict(layout: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5  # variances are positive
        else:
            out[k] = torch.randn(shape, generator=g) * 0.1
    return out


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_backbones_match_torchvision_layout_and_size(name: str) -> None:
    net = make_backbone(name, in_channels=3)
    own = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert own == LAYOUTS[name]()
    assert count_parameters(net) == TORCHVISION_NUM_PARAMS[name]


@pytest.mark.parametrize(
    ("network", "backbone"),
    [("resnet34_unet", "resnet34"), ("resnet50_unet", "resnet50"), ("vgg16_unet", "vgg16")],
)
def test_encoder_unet_loads_local_imagenet_file(network: str, backbone: str, tmp_path: Path) -> None:
    sd = _random_state_dict(LAYOUTS[backbone]())
    path = tmp_path / f"{backbone}-imagenet.pth"
    torch.save(sd, path)
    net = get_network(network, 2, 1, 4, pretrained=path)
    report = net.load_report  # type: ignore[union-attr]
    own = net.state_dict()
    first = FIRST_CONV[backbone]
    for key, value in sd.items():
        if key.startswith(("fc.", "classifier.")):
            continue
        target = own[f"encoder.{key}"]
        if key == first:  # grey input: RGB kernels summed
            torch.testing.assert_close(target, value.sum(dim=1, keepdim=True))
        else:
            torch.testing.assert_close(target, value)
    assert f"encoder.{first}" in report.adapted
    assert all(k.startswith(("fc.", "classifier.")) for k in report.skipped) or not report.skipped
    # the decoder and head were not touched by the ImageNet file
    assert any(k.startswith("decoder.") for k in report.missing) and "head.weight" in report.missing


def test_grey_input_response_equals_rgb_response(tmp_path: Path) -> None:
    """Summing the first conv over RGB makes a grey image behave like the same image repeated over RGB."""
    sd = _random_state_dict(LAYOUTS["resnet34"]())
    rgb = make_backbone("resnet34", 3)
    rgb.load_state_dict(sd)
    grey = make_backbone("resnet34", 1)
    load_torchvision_backbone(grey, sd)
    rgb.eval()
    grey.eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        a = rgb.features_list(x.repeat(1, 3, 1, 1))[-1]  # type: ignore[operator]
        b = grey.features_list(x)[-1]  # type: ignore[operator]
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backbone", ["vgg16", "resnet34", "resnet50", "densenet121", "mobilenet_v2"])
def test_slice_classifier_loads_each_backbone(backbone: str) -> None:
    sd = _random_state_dict(LAYOUTS[backbone](), seed=1)
    net = get_network(
        "slice_classifier", 2, 1, 3, backbone=backbone, pretrained=sd, mode="feature_extraction"
    )
    own = net.state_dict()
    key = next(k for k in sd if not k.startswith(("fc.", "classifier.")) and k != FIRST_CONV[backbone])
    torch.testing.assert_close(own[f"backbone.{key}"], sd[key])
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("head.") for n in trainable)
    net.set_mode("last_block")  # type: ignore[operator]
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert any(n.startswith("backbone.") for n in trainable) and any(n.startswith("head.") for n in trainable)
    first_layer = f"backbone.{FIRST_CONV[backbone]}"
    assert first_layer not in trainable


def test_mismatching_weights_name_keys_and_shapes() -> None:
    sd = _random_state_dict(LAYOUTS["resnet34"]())
    sd["layer2.0.conv1.weight"] = torch.zeros(128, 32, 3, 3)
    with pytest.raises(
        WeightLoadError, match=r"layer2\.0\.conv1\.weight: shape \(128, 32, 3, 3\) vs model \(128, 64, 3, 3\)"
    ):
        load_torchvision_backbone(make_backbone("resnet34", 1), sd)
    del sd["layer2.0.conv1.weight"]
    sd.pop("layer4.2.bn2.bias")
    with pytest.raises(WeightLoadError, match="lack"):
        load_torchvision_backbone(
            make_backbone("resnet34", 1), {k: v for k, v in sd.items() if k != "layer2.0.conv1.weight"}
        )
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        load_torchvision_backbone(make_backbone("resnet34", 1), "/nonexistent/resnet34.pth")


def test_partial_load_reports_head_with_other_classes() -> None:
    src = get_network("densenet_fcn", 2, 1, 4)
    dst = get_network("densenet_fcn", 2, 1, 6)
    report = load_partial(dst, src.state_dict())
    assert set(report.skipped) == {"head.weight", "head.bias"}
    assert "shape (4, " in report.skipped["head.weight"] and "model (6, " in report.skipped["head.weight"]
    for k, v in src.state_dict().items():
        if not k.startswith("head."):
            assert torch.equal(dst.state_dict()[k], v)
    assert "skipped 2" in report.summary()
    with pytest.raises(WeightLoadError, match="no tensor matched"):
        load_partial(dst, {"foo.weight": torch.zeros(1)})
