"""bf16 autocast against float32 for CPU training steps (forward, backward, AdamW step).

For each model: steps/s in float32 and under ``torch.autocast("cpu", dtype=torch.bfloat16)``,
each with the default and the channels-last memory format, on one random batch
(``--batch-size`` x 3 x ``--size`` x ``--size``, 7 classes, ce+dice loss). Modes are
interleaved over ``--rounds`` rounds and the best round of each is kept, which damps noise
from other processes on the machine. One JSON line per model and mode, then a summary
line per model with the bf16/fp32 speed ratio. Run: ``python benchmarks/bf16_speed.py``.

The trainer's ``amp: auto`` makes this measurement itself (two passes per mode on the
run's first batch) and turns bf16 on only when it is at least 15 % faster.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext

import torch

from pixelwise.losses import build_loss
from pixelwise.models import create_model


def _steps_per_s(model, optimizer, loss_fn, x, y, amp: bool, steps: int) -> float:
    context = torch.autocast("cpu", dtype=torch.bfloat16) if amp else nullcontext()

    def step() -> None:
        with context:
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: oneDNN primitive creation
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["unet-resnet18", "unet-mobilenet_v2", "fpn-resnet18"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.size, args.size)
    y = torch.randint(0, 7, (args.batch_size, args.size, args.size))
    loss_fn = build_loss("ce+dice", 7)
    for name in args.models:
        model = create_model(name, num_classes=7).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        best: dict[tuple[bool, bool], float] = {}
        for _ in range(args.rounds):
            for channels_last in (False, True):
                fmt = torch.channels_last if channels_last else torch.contiguous_format
                model.to(memory_format=fmt)
                xx = x.contiguous(memory_format=fmt)
                for amp in (False, True):
                    rate = _steps_per_s(model, optimizer, loss_fn, xx, y, amp, args.steps)
                    best[(amp, channels_last)] = max(best.get((amp, channels_last), 0.0), rate)
        for (amp, channels_last), rate in sorted(best.items()):
            print(json.dumps({
                "benchmark": "bf16_speed", "model": name, "dtype": "bf16" if amp else "fp32",
                "channels_last": channels_last, "size": args.size, "batch_size": args.batch_size,
                "steps_per_s": round(rate, 3), "img_per_s": round(rate * args.batch_size, 2),
                "threads": torch.get_num_threads(),
            }), flush=True)
        print(json.dumps({
            "benchmark": "bf16_speed", "model": name, "summary": True,
            "bf16_over_fp32": round(best[(True, False)] / best[(False, False)], 3),
            "bf16_over_fp32_channels_last": round(best[(True, True)] / best[(False, True)], 3),
            "best": "bf16" if max(best[(True, False)], best[(True, True)]) > max(best[(False, False)], best[(False, True)]) else "fp32",
        }), flush=True)


if __name__ == "__main__":
    main()
