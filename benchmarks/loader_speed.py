"""Data-loader throughput against training-step throughput, on synthetic ``shapes`` images.

Writes ``--n`` synthetic images (``--size`` px, ``masks`` format) to a temporary folder, then
measures images/s of :func:`pixelwise.data.loader.build_loader` alone (batch 8, iterating
without a model) for ``num_workers`` 0, 1 and 2, with the RAM cache (no augmentation;
``light`` augmentation) and without it (PNG decoding every epoch). The second of two
epochs is timed (worker start-up excluded). Last, the images/s of training steps
(forward, backward, AdamW) of ``--model`` on one batch of the same size, for comparison:
the loader only matters when its rate is not far above the step rate.
One JSON line per figure. Run: ``python benchmarks/loader_speed.py``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from pixelwise.data.formats import read_dataset
from pixelwise.data.loader import SemanticTorchDataset, build_loader
from pixelwise.data.synth import write_synthetic_dataset
from pixelwise.losses import build_loss
from pixelwise.models import create_model
from pixelwise.training.pipeline import SemanticPreprocessor
from pixelwise.transforms.augment import build_augmentation
from pixelwise.transforms.preprocess import PreprocessConfig


def _loader_rate(dataset: SemanticTorchDataset, workers: int, batch_size: int) -> float:
    loader = build_loader(dataset, batch_size, shuffle=True, seed=0, num_workers=workers)
    rate = 0.0
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        start = time.perf_counter()
        count = 0
        for images, _ in loader:
            count += images.shape[0]
        rate = count / (time.perf_counter() - start)
    del loader
    return rate


def _step_rate(model_name: str, size: int, batch_size: int, classes: int, steps: int = 4) -> float:
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=classes).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = build_loss("ce+dice", classes)
    x = torch.randn(batch_size, 3, size, size)
    y = torch.randint(0, classes, (batch_size, size, size))

    def step() -> None:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", default="unet-resnet18")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pixelwise-loader-bench-") as tmp:
        root = write_synthetic_dataset("shapes", args.n, args.size, 0, Path(tmp) / "shapes", format="masks")
        dataset = read_dataset(root, "masks")
        config = SemanticPreprocessor(PreprocessConfig(input_size=(args.size, args.size)))
        augmentation = build_augmentation("light", args.size, resize_policy="resize")
        cases = {
            "cache": SemanticTorchDataset(dataset, config, None, cache=True),
            "cache+light_aug": SemanticTorchDataset(dataset, config, augmentation, cache=True),
            "no_cache": SemanticTorchDataset(dataset, config, None, cache=False),
        }
        for case, torch_ds in cases.items():
            for workers in args.workers:
                rate = _loader_rate(torch_ds, workers, args.batch_size)
                print(json.dumps({
                    "benchmark": "loader_speed", "case": case, "num_workers": workers, "size": args.size,
                    "img_per_s": round(rate, 1), "threads": torch.get_num_threads(),
                }), flush=True)
        classes = dataset.taxonomy.num_classes
        rate = _step_rate(args.model, args.size, args.batch_size, classes)
        print(json.dumps({
            "benchmark": "loader_speed", "case": "train_steps", "model": args.model, "size": args.size,
            "batch_size": args.batch_size, "img_per_s": round(rate, 1), "threads": torch.get_num_threads(),
        }), flush=True)


if __name__ == "__main__":
    main()
