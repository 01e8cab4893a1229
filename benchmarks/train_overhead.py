"""Overhead of the Pixelwise trainer against a plain PyTorch / segmentation_models_pytorch loop.

Same data (``--n`` synthetic ``shapes`` images at ``--size`` px, preprocessed once), same
model (U-Net, ResNet-18 encoder, random init), same loss (ce+dice), optimiser (AdamW),
schedule (cosine, per step), batch and thread count. The plain loop indexes tensors
already in memory; the trainer goes through its DataLoader, tqdm bar, TensorBoard and
per-epoch checkpoints. The runs alternate (plain, trainer, plain, trainer) and the median
of the epochs after the first of each kind is compared, to damp noise from other
processes. Printed as JSON lines:

* ``train_loop_wall``: images/s of the training loop (the trainer's ``train_img_per_s``,
  which covers data loading, forward, backward, optimiser and logging) vs the plain loop;
* ``whole_run_cpu_seconds``: CPU time of complete runs (the trainer's includes reading and
  caching the data, checkpoints, history, TensorBoard and curves); CPU time is what to
  trust when other processes share the cores (with one torch thread it is the work done).

Target: train-loop overhead <= 5 %. Run: ``python benchmarks/train_overhead.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from pixelwise.data.formats import read_dataset
from pixelwise.data.loader import SemanticTorchDataset
from pixelwise.data.synth import write_synthetic_dataset
from pixelwise.losses import build_loss
from pixelwise.training import TrainConfig, train
from pixelwise.training.pipeline import SemanticPreprocessor
from pixelwise.transforms.preprocess import PreprocessConfig


def plain_loop(images: torch.Tensor, targets: torch.Tensor, classes: int, epochs: int, batch_size: int, lr: float) -> list[float]:
    """The ~30-line reference loop; returns images/s per epoch."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, classes=classes).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * (len(images) // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    loss_fn = build_loss("ce+dice", classes)
    generator = torch.Generator().manual_seed(0)
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(images), generator=generator)
        seen = 0
        for first in range(0, len(order) - batch_size + 1, batch_size):
            index = order[first : first + batch_size]
            x, y = images[index], targets[index]
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            seen += len(index)
        rates.append(seen / (time.perf_counter() - start))
    return rates


def trainer_run(root: Path, out: Path, size: int, epochs: int, batch_size: int, lr: float) -> tuple[list[float], list[float]]:
    """Our trainer; returns (train-loop images/s per epoch, whole-epoch images/s per epoch)."""
    config = TrainConfig(
        data=str(root), out=str(out), overwrite=True, model="unet-resnet18", input_size=size, batch_size=batch_size,
        epochs=epochs, lr=lr, loss="ce+dice", scheduler="cosine", val_fraction=0.0, augment="none",
        amp="off", num_workers=0, progress=True, seed=0,
    )
    result = train(config, echo=lambda message: None)
    loop = [float(v) for v in result.history["train_img_per_s"]]
    n_images = (len(list((root / "images").iterdir())) // batch_size) * batch_size  # full batches only
    whole = [n_images / float(s) for s in result.history["epoch_seconds"]]
    return loop, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pixelwise-overhead-") as tmp:
        root = write_synthetic_dataset("shapes", args.n, args.size, 0, Path(tmp) / "shapes", format="masks")
        dataset = read_dataset(root, "masks")
        torch_ds = SemanticTorchDataset(dataset, SemanticPreprocessor(PreprocessConfig(input_size=(args.size, args.size))))
        pairs = [torch_ds[i] for i in range(len(torch_ds))]
        images = torch.stack([p[0] for p in pairs])
        targets = torch.stack([p[1] for p in pairs])
        classes = dataset.taxonomy.num_classes
        plain: list[float] = []
        ours_loop: list[float] = []
        cpu_plain: list[float] = []
        cpu_ours: list[float] = []
        for _ in range(2):
            start = time.process_time()
            plain += plain_loop(images, targets, classes, args.epochs, args.batch_size, args.lr)[1:]
            cpu_plain.append(time.process_time() - start)
            start = time.process_time()
            loop, _ = trainer_run(root, Path(tmp) / "run", args.size, args.epochs, args.batch_size, args.lr)
            cpu_ours.append(time.process_time() - start)
            ours_loop += loop[1:]
        reference, ours = statistics.median(plain), statistics.median(ours_loop)
        print(json.dumps({
            "benchmark": "train_overhead", "measure": "train_loop_wall", "size": args.size, "batch_size": args.batch_size,
            "plain_img_per_s": round(reference, 2), "trainer_img_per_s": round(ours, 2),
            "overhead_percent": round(100.0 * (reference / ours - 1.0), 1), "threads": torch.get_num_threads(),
        }), flush=True)
        # CPU seconds of whole runs (model creation, every epoch; the trainer also reads and
        # caches the data, writes checkpoints, history, TensorBoard and curves): robust to
        # other processes competing for the cores, which distort wall-clock rates.
        plain_cpu, ours_cpu = min(cpu_plain), min(cpu_ours)
        print(json.dumps({
            "benchmark": "train_overhead", "measure": "whole_run_cpu_seconds", "epochs": args.epochs, "images": len(images),
            "plain_cpu_s": round(plain_cpu, 2), "trainer_cpu_s": round(ours_cpu, 2),
            "overhead_percent": round(100.0 * (ours_cpu / plain_cpu - 1.0), 1), "threads": torch.get_num_threads(),
        }), flush=True)


if __name__ == "__main__":
    main()
