"""Speed of pixelwise.metrics.ConfusionMatrix against torchmetrics MulticlassJaccardIndex.

Both consume the same int64 CPU tensors: 16 batches of (8, 256, 256) labels, 21 classes,
about 5 % of target pixels set to ignore_index=255. Each figure is printed as one JSON line
(best of ``--repeats`` runs, seconds). Ours validates label ranges, so the main ratio is
against torchmetrics with its default ``validate_args=True``; the ratio against
``validate_args=False`` is printed too. Run: ``python benchmarks/metrics_speed.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import torch

from pixelwise.metrics import ConfusionMatrix


def _best_time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    try:
        from torchmetrics.classification import MulticlassJaccardIndex
    except ImportError as exc:  # pragma: no cover - torchmetrics is a test extra
        raise SystemExit("torchmetrics is needed: pip install -e '.[test]'") from exc

    gen = torch.Generator().manual_seed(0)
    k, ignore = args.classes, 255
    shape = (args.batch_size, args.size, args.size)
    preds = [torch.randint(0, k, shape, generator=gen) for _ in range(args.batches)]
    targets = []
    for p in preds:
        noise = torch.randint(0, k, shape, generator=gen)
        t = torch.where(torch.rand(shape, generator=gen) < 0.7, p, noise)
        t[torch.rand(shape, generator=gen) < 0.05] = ignore
        targets.append(t)
    pixels = args.batches * args.batch_size * args.size * args.size

    def run_ours() -> np.ndarray:
        cm = ConfusionMatrix(k, ignore_index=ignore)
        for p, t in zip(preds, targets):
            cm.update(p, t)
        return cm.compute().iou

    def run_ours_uint8() -> np.ndarray:
        cm = ConfusionMatrix(k, ignore_index=ignore)
        for p, t in zip(preds_u8, targets_u8):
            cm.update(p, t)
        return cm.compute().iou

    def run_torchmetrics(validate_args: bool = True) -> torch.Tensor:
        metric = MulticlassJaccardIndex(
            num_classes=k, ignore_index=ignore, average=None, validate_args=validate_args
        )
        for p, t in zip(preds, targets):
            metric.update(p, t)
        return metric.compute()

    preds_u8 = [p.to(torch.uint8) for p in preds]
    targets_u8 = [t.to(torch.uint8) for t in targets]

    ours_iou = run_ours()
    theirs_iou = run_torchmetrics().numpy()
    max_abs_diff = float(np.nanmax(np.abs(ours_iou - theirs_iou)))

    t_ours = _best_time(run_ours, args.repeats)
    t_ours_u8 = _best_time(run_ours_uint8, args.repeats)
    t_theirs = _best_time(run_torchmetrics, args.repeats)
    t_theirs_fast = _best_time(lambda: run_torchmetrics(validate_args=False), args.repeats)
    common = {
        "batches": args.batches,
        "batch_shape": list(shape),
        "classes": k,
        "pixels": pixels,
        "threads": torch.get_num_threads(),
    }
    rows = [
        {"figure": "pixelwise_confusion_int64_s", "value": round(t_ours, 4)},
        {"figure": "pixelwise_confusion_uint8_s", "value": round(t_ours_u8, 4)},
        {"figure": "torchmetrics_jaccard_int64_s", "value": round(t_theirs, 4)},
        {"figure": "torchmetrics_jaccard_novalidate_int64_s", "value": round(t_theirs_fast, 4)},
        {"figure": "speedup_int64", "value": round(t_theirs / t_ours, 2)},
        {"figure": "speedup_int64_vs_novalidate", "value": round(t_theirs_fast / t_ours, 2)},
        {"figure": "speedup_uint8_vs_torchmetrics_int64", "value": round(t_theirs / t_ours_u8, 2)},
        {"figure": "pixelwise_mpix_per_s_int64", "value": round(pixels / t_ours / 1e6, 1)},
        {"figure": "iou_max_abs_diff", "value": max_abs_diff},
    ]
    for row in rows:
        print(json.dumps({**row, **common}))


if __name__ == "__main__":
    main()
