"""bfloat16 autocast training on a CPU: a bfloat16 forward pass; all the optimiser sees is float32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cardiacseg.engines import AutocastInferer, training_memory_format, training_workflow
from cardiacseg.networks.precision import native_bf16, resolve_precision

BUNDLE = Path(__file__).resolve().parents[2] / "cardiacseg" / "cardiac_cine_seg"


def test_bf16_forward_equals_a_matmul_of_bfloat16_rounded_operands() -> None:
    """Autocast rounds inputs and weights to bfloat16 and accumulates in float32: recompute that by hand."""
    torch.manual_seed(0)
    layer = nn.Linear(64, 8, bias=False)
    x = torch.randn(5, 64)
    out = AutocastInferer("bf16")(x, layer)
    assert out.dtype == torch.float32
    by_hand = x.bfloat16().double() @ layer.weight.detach().bfloat16().double().T
    # the result itself is stored in bfloat16 (8 significant bits) before the cast back to float32
    torch.testing.assert_close(out.double(), by_hand, rtol=2**-7, atol=1e-6)
    plain = layer(x)
    assert not torch.equal(out, plain)  # bf16 really ran: float32 would agree to ~1e-7
    torch.testing.assert_close(AutocastInferer("fp32")(x, layer), plain)


def test_bf16_gradients_reach_float32_weights() -> None:
    torch.manual_seed(0)
    layer = nn.Conv2d(1, 2, 3, padding=1)
    out = AutocastInferer("bf16")(torch.randn(2, 1, 8, 8), layer)
    out.sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.dtype == torch.float32
    # d(sum of a bias-added output)/d(bias) = number of output pixels per channel: 2 x 8 x 8 = 128
    torch.testing.assert_close(layer.bias.grad, torch.full((2,), 128.0))


def test_outputs_of_deep_supervision_lists_come_back_float32() -> None:
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 2), nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [self.a(x), self.b(x)]

    outs = AutocastInferer("bf16")(torch.ones(1, 4), TwoHeads())
    assert [o.dtype for o in outs] == [torch.float32, torch.float32]
    assert [tuple(o.shape) for o in outs] == [(1, 2), (1, 3)]


def test_precision_names_and_auto() -> None:
    assert resolve_precision("auto") == ("bf16" if native_bf16("cpu") else "fp32")
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    assert native_bf16("cpu") == ("avx512_bf16" in flags or "amx_bf16" in flags)
    with pytest.raises(ValueError, match="fp16"):
        AutocastInferer("fp16")


def test_channels_last_only_for_bf16_on_cpu() -> None:
    conv = training_memory_format(nn.Conv2d(3, 4, 3), "bf16")
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()  # really re-laid out (3 input channels, 3 x 3 kernel)
    plain = training_memory_format(nn.Conv2d(3, 4, 3), "fp32")
    assert plain.weight.is_contiguous()


def test_train_json_trains_through_the_autocast_inferer(acdc_dir: Path, tmp_path: Path) -> None:
    wf = training_workflow(
        BUNDLE,
        data_root=str(acdc_dir),
        ckpt_dir=str(tmp_path),
        mlflow_tracking=False,
        train_precision="bf16",
        train_patients=["patient001"],
        val_patients=["patient004"],
    )
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert isinstance(trainer.inferer, AutocastInferer) and trainer.inferer.precision == "bf16"
    network = wf.parser.get_parsed_content("network")
    first_conv = next(m for m in network.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    assert first_conv.weight.is_contiguous(memory_format=torch.channels_last)
