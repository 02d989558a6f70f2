"""Parameters, FLOPs per 256 x 256 slice and CPU throughput (2 threads, batch 8, inference mode) of every network.

Usage: python benchmarks/networks.py
Writes docs/benchmarks/networks.md. Throughput ratios are against MONAI's BasicUNet measured in the same
process (the baseline). FLOPs are counted with torch.utils.flop_counter (multiply-adds x 2).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from cardiacseg.networks import NETWORKS, count_parameters, get_network, network_divisor

torch.set_num_threads(2)
BATCH = 8


def measure(name: str) -> tuple[int, float, float, tuple[int, ...] | None]:
    net = get_network(name, 2, 1, 3 if name == "slice_classifier" else 4).eval()
    x1 = torch.rand(1, 1, 256, 256)
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            net(x1)
        flops = counter.get_total_flops()
        xb = torch.rand(BATCH, 1, 256, 256)
        net(xb)  # warm-up
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            net(xb)
            best = min(best, time.perf_counter() - t0)
    return count_parameters(net), flops / 1e9, BATCH / best, network_divisor(net)


if __name__ == "__main__":
    rows = {name: measure(name) for name in NETWORKS}
    base = rows["basic_unet"][2]
    lines = [
        "| network | parameters | GFLOPs / 256x256 slice | CPU images/s (2 threads, batch 8) | speed vs basic_unet | size divisor |",
        "|---|---|---|---|---|---|",
    ]
    for name, (params, gflops, ips, div) in rows.items():
        lines.append(f"| {name} | {params:,} | {gflops:.2f} | {ips:.1f} | {ips / base:.2f} | {div} |")
    table = "\n".join(lines)
    print(table)
    out = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    note = (
        "\n\nswin_unet's divisor (224) pads a 256 x 256 slice to 448 x 448, which its FLOPs and speed include; "
        "at 224 x 224 it is about four times cheaper.\n"
    )
    (out / "networks.md").write_text("# Network benchmark\n\n" + table + note)
