"""CPU inference runtimes for the shipped network: eager PyTorch vs ONNX Runtime vs OpenVINO, fp32 and int8.

Usage::

    pip install onnx onnxscript onnxruntime openvino   # benchmark-only; not dependencies of cardiacseg
    python benchmarks/runtimes.py [--repeats 3]

For each runtime the shipped UNet (exported to ONNX from the shipped weights; opset 18, dynamic batch)
runs inside the real pipeline: :class:`cardiacseg.inferers.SlicePredictor` with the runtime in place of
the torch module (TTA none, the default 160-pixel crop, 2 threads).

- Speed: the network alone on the 240 heart crops of Sunnybrook SCD0000101 (20 phases x 12 slices,
  160 x 160, batches of 32 as the predictor runs them), best of ``--repeats``; and the FLOP-bound time
  (network FLOPs / this CPU's measured dense fp32 matmul rate).
- Accuracy: mean 3D Dice (LV, MYO, RV; ED and ES) against the expert labels on the 15 ACDC validation
  patients, and LV Dice on the contoured ED/ES slices of both Sunnybrook studies, each runtime against the
  same labels; the change from eager fp32 is what to read.
- int8: ONNX Runtime static post-training quantization (QDQ, per-channel weights), calibrated on 256
  heart crops of ACDC *training* patients (never the evaluation patients).

Writes ``docs/benchmarks/runtimes.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUT = REPO / "docs" / "benchmarks"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_bf16_flags, cpu_model, dense_matmul_flops_per_s  # noqa: E402

THREADS = 2
CONTOURS = {"SCD0000101": "SC-HF-I-1", "SCD0000201": "SC-HF-I-2"}


class OrtNetwork(nn.Module):
    """An ONNX Runtime session called like the torch network: ``(B, 1, H, W)`` -> logits ``(B, 4, H, W)``."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().float().numpy())
        return torch.from_numpy(self.session.run(None, {self.name: arr})[0])


class OpenVinoNetwork(nn.Module):
    """An OpenVINO compiled model (CPU) called like the torch network."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        import openvino as ov

        core = ov.Core()
        self.compiled = core.compile_model(
            core.read_model(str(path)),
            "CPU",
            {"INFERENCE_NUM_THREADS": THREADS, "INFERENCE_PRECISION_HINT": "f32"},
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().float().numpy())
        return torch.from_numpy(np.asarray(self.compiled(arr)[0]))


def export_onnx(net: nn.Module, path: Path, side: int) -> None:
    """Export with a dynamic batch (the legacy TorchScript exporter: one static graph, no onnxscript)."""
    torch.onnx.export(
        net,
        (torch.zeros(2, 1, side, side),),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={
            "image": {0: "batch", 2: "height", 3: "width"},
            "logits": {0: "batch", 2: "height", 3: "width"},
        },
        opset_version=18,
        dynamo=False,
    )


def heart_crops(study: Any, predictor: Any) -> torch.Tensor:
    """The z-scored heart crops the predictor feeds its network for this study ``(S, 1, H, W)``."""
    from cardiacseg.transforms.intensity.array import percentile_zscore
    from cardiacseg.transforms.spatial.array import HeartCrop

    study = predictor._with_assumed_spacing(study)
    img, _, _ = predictor._resampled_image(study)
    crop = HeartCrop((predictor.crop_size, predictor.crop_size))
    centre, _ = crop.find_centre(img)
    cropped = crop(img, centre=centre)
    _, x, y, _ = cropped.shape
    slices = cropped.as_tensor().permute(0, 3, 1, 2).reshape(-1, 1, x, y).clone()
    return percentile_zscore(slices)


def calibration_crops(predictor: Any, n: int = 256) -> np.ndarray:
    """Heart crops of ACDC training patients (not the validation patients) for int8 calibration."""
    from cardiacseg.data.datalist import split_patients
    from cardiacseg.io.ssl4mis import list_ssl4mis_patients, read_ssl4mis_study

    train, _ = split_patients(list_ssl4mis_patients(DATA / "acdc_ssl4mis"), 0.2, 0)
    crops = []
    for p in train[:: max(1, len(train) // 16)]:
        study = read_ssl4mis_study(DATA / "acdc_ssl4mis", p)
        study = type(study)(image=study.image, ed_phase=study.ed_phase, es_phase=study.es_phase)
        crops.append(heart_crops(study, predictor))
    all_crops = torch.cat(crops).numpy()
    pick = np.random.default_rng(0).choice(len(all_crops), size=min(n, len(all_crops)), replace=False)
    return np.ascontiguousarray(all_crops[pick])


def quantize_int8(fp32: Path, int8: Path, calibration: np.ndarray) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches = iter([{"image": calibration[i : i + 16]} for i in range(0, len(calibration), 16)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    import os

    pre = int8.with_name("pre.onnx")
    os.chdir(int8.parent)  # onnxruntime leaves temporary files in the working directory
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre),
        str(int8),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )


def time_network(net: nn.Module, crops: torch.Tensor, repeats: int, autocast: bool = False) -> float:
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, len(crops), 32):
                x = crops[i : i + 32].contiguous(memory_format=torch.channels_last)
                with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
                    net(x)
            best = min(best, time.perf_counter() - start)
    return best


def accuracy(predictor: Any) -> dict[str, float]:
    from cardiacseg.data.datalist import split_patients
    from cardiacseg.io.ssl4mis import list_ssl4mis_patients, read_ssl4mis_study
    from cardiacseg.io.study import CineStudy
    from cardiacseg.io.sunnybrook import read_sunnybrook_study
    from cardiacseg.metrics import dice_score

    _, val = split_patients(list_ssl4mis_patients(DATA / "acdc_ssl4mis"), 0.2, 0)
    dice: dict[str, list[float]] = {"lv": [], "myo": [], "rv": []}
    for p in val:
        study = read_ssl4mis_study(DATA / "acdc_ssl4mis", p)
        labels = predictor.predict(
            CineStudy(image=study.image, ed_phase=study.ed_phase, es_phase=study.es_phase)
        )
        for t in (study.ed_phase, study.es_phase):
            for k, name in ((1, "lv"), (2, "myo"), (3, "rv")):
                dice[name].append(dice_score(labels[t] == k, study.labels[t] == k))
    out = {f"acdc_{k}": float(np.mean(v)) for k, v in dice.items()}
    sb = []
    for name, contour in CONTOURS.items():
        sun = DATA / "sunnybrook"
        expert = read_sunnybrook_study(sun / "dicoms" / name, sun / "contourfiles" / contour)
        labels = predictor.predict(expert)
        for t in (expert.ed_phase, expert.es_phase):
            z = list(expert.annotated_slices[t])
            sb.append(dice_score(labels[t][z] == 1, expert.labels[t][z] == 1))
    out["sunnybrook_lv"] = float(np.mean(sb))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    from cardiacseg.demo import shipped_bundle_path
    from cardiacseg.inferers import SlicePredictor
    from cardiacseg.inferers.predictor import native_bf16
    from cardiacseg.io import read_study

    predictor = SlicePredictor.from_bundle(shipped_bundle_path(), tta="none")
    torch_net = predictor.network
    study = read_study(DATA / "sunnybrook" / "dicoms" / "SCD0000101")
    crops = heart_crops(study, predictor)
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        torch_net(crops[:1])
    flops = counter.get_total_flops() * len(crops)
    matmul_rate = dense_matmul_flops_per_s()

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "unet.onnx"
        export_onnx(torch_net.float().to(memory_format=torch.contiguous_format), fp32, crops.shape[-1])
        torch_net.to(memory_format=torch.channels_last)
        int8 = Path(tmp) / "unet_int8.onnx"
        quantize_int8(fp32, int8, calibration_crops(predictor))
        arms: dict[str, tuple[nn.Module, bool]] = {"PyTorch eager fp32": (torch_net, False)}
        if native_bf16("cpu"):
            arms["PyTorch eager bf16 (native)"] = (torch_net, True)
        arms["ONNX Runtime fp32"] = (OrtNetwork(fp32), False)
        arms["ONNX Runtime int8 (static PTQ)"] = (OrtNetwork(int8), False)
        arms["OpenVINO fp32"] = (OpenVinoNetwork(fp32), False)
        arms["OpenVINO on the int8 ONNX"] = (OpenVinoNetwork(int8), False)
        for name, (net, bf16) in arms.items():
            seconds = time_network(net, crops, args.repeats, autocast=bf16)
            predictor.networks = [net]
            predictor.precision = "bf16" if bf16 else "fp32"
            acc = accuracy(predictor)
            results[name] = {"network_s": seconds, **acc}
            print(name, round(seconds, 2), acc, flush=True)
    base = results["PyTorch eager fp32"]
    record = {
        "cpu": f"{cpu_model()} ({cpu_bf16_flags()})",
        "threads": THREADS,
        "crops": list(crops.shape),
        "gflop": flops / 1e9,
        "matmul_gflops_per_s": matmul_rate / 1e9,
        "flop_bound_s": flops / matmul_rate,
        "results": results,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "runtimes.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = [
        "# CPU inference runtimes for the shipped network",
        "",
        f"`python benchmarks/runtimes.py` on {record['cpu']}, {THREADS} threads. Network alone on the "
        f"{crops.shape[0]} heart crops ({crops.shape[-2]} x {crops.shape[-1]}) of Sunnybrook SCD0000101, "
        f"batches of 32, best of {args.repeats}. Accuracy inside the real pipeline (TTA none): mean 3D Dice "
        "on the 15 ACDC validation patients (ED and ES) and LV Dice on the contoured ED/ES slices of both "
        "Sunnybrook studies.",
        "",
        "| runtime | network s | speed-up | ACDC LV | ACDC MYO | ACDC RV | Sunnybrook LV |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['network_s']:.2f} | {base['network_s'] / r['network_s']:.2f}x | {r['acdc_lv']:.4f} | "
            f"{r['acdc_myo']:.4f} | {r['acdc_rv']:.4f} | {r['sunnybrook_lv']:.4f} |"
        )
    lines += [
        "",
        f"FLOP-bound time: {record['gflop']:.0f} GFLOP for these crops at this CPU's dense fp32 matmul rate of "
        f"{record['matmul_gflops_per_s']:.0f} GFLOP/s = {record['flop_bound_s']:.2f} s.",
        "",
    ]
    (OUT / "runtimes.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
