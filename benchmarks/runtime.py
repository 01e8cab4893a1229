"""Inference runtimes side by side: PyTorch eager, eager channels_last, ONNX Runtime fp32 and int8.

Trains one light model (U-Net, MobileNetV2 encoder, on synthetic ``shapes`` scenes, random
128x128 crops of 256x256 images, for ``--train-seconds``) or loads ``--checkpoint``, then
at 256x256 and 512x512 inputs measures, on the same validation set:

- ms/image at batch 1 and batch 8 (median of several timed calls on a preprocessed batch),
- achieved GFLOP/s = model FLOPs (``torch.utils.flop_counter.FlopCounterMode``, counted once
  per input size; a multiply-add counts 2) / time,
- mIoU of each runtime (eager and channels_last are scored by the same torch model),
- the int8 speedup over eager, against the issue's target (>= 4x with mIoU drop <= 0.5).

int8 is static QDQ from :func:`pixelwise.evaluation.quantize.quantize_static_int8` with
uint8 activations (U8S8, the default) and, for comparison, int8 activations (S8S8).

One JSON line per figure on stdout. Run: ``python benchmarks/runtime.py`` (about 10 min on
2 busy cores) or ``--quick`` (smoke run, ~2 min, tiny training, figures not meaningful).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def emit(**fields: object) -> None:
    """Print one JSON line."""
    print(json.dumps(fields), flush=True)


def train_model(root: Path, seconds: float, threads: int, quick: bool) -> Path:
    """Train unet-mobilenet_v2 on synthetic shapes for a wall-time budget; returns the checkpoint."""
    from pixelwise.data.image_io import read_image
    from pixelwise.data.synth import synth_dataset
    from pixelwise.evaluation.evaluate import semantic_target
    from pixelwise.models import create_model
    from pixelwise.models.checkpoint import save_checkpoint
    from pixelwise.transforms.preprocess import PreprocessConfig, preprocess_image

    torch.manual_seed(0)
    train = synth_dataset("shapes", 8 if quick else 48, 256, 0, root / "train")
    pre = PreprocessConfig(input_size=(256, 256))
    x = torch.from_numpy(np.stack([preprocess_image(read_image(s.image_path), pre)[0] for s in train])).float()
    y = torch.from_numpy(np.stack([semantic_target(s, train.taxonomy) for s in train])).long()
    model = create_model("unet", num_classes=train.taxonomy.num_classes, encoder="mobilenet_v2")
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    torch.set_num_threads(threads)
    model.train()
    gen = torch.Generator().manual_seed(0)
    start, steps, loss = time.perf_counter(), 0, torch.tensor(float("nan"))
    while time.perf_counter() - start < seconds:
        idx = torch.randint(0, len(x), (8,), generator=gen)
        r, c = (int(v) for v in torch.randint(0, 129, (2,), generator=gen))
        xb, yb = x[idx, :, r : r + 128, c : c + 128], y[idx, r : r + 128, c : c + 128]
        if torch.rand(1, generator=gen).item() < 0.5:
            xb, yb = xb.flip(-1), yb.flip(-1)
        loss = torch.nn.functional.cross_entropy(model(xb), yb, ignore_index=255)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
    emit(figure="training", steps=steps, seconds=round(time.perf_counter() - start, 1), final_loss=round(float(loss.detach()), 4),
         images=len(train), crop=128, batch=8)
    return save_checkpoint(root / "shapes_unet.pt", model.eval(), train.taxonomy, pre)


def time_call(fn, x, repeats: int) -> float:
    """Median ms per image of ``fn(x)`` after one warm-up call."""
    fn(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0 / x.shape[0]


def count_flops(model: torch.nn.Module, size: int) -> float:
    """FLOPs of one forward pass on ``(1, 3, size, size)``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, 3, size, size))
    return float(counter.get_total_flops())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny training, few timings, 256 only")
    parser.add_argument("--checkpoint", type=Path, default=None, help="use this checkpoint instead of training")
    parser.add_argument("--train-seconds", type=float, default=150.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--val-images", type=int, default=16)
    args = parser.parse_args()
    sizes = [256] if args.quick else args.sizes
    repeats = 2 if args.quick else 5
    torch.set_num_threads(args.threads)

    from pixelwise.data.synth import synth_dataset
    from pixelwise.evaluation.evaluate import evaluate
    from pixelwise.models.checkpoint import load_checkpoint
    from pixelwise.runtime.onnx_backend import OnnxBackend
    from pixelwise.runtime.onnx_export import export_onnx
    from pixelwise.runtime.predictor import Segmenter
    from pixelwise.evaluation.quantize import quantize_static_int8
    from pixelwise.runtime.torch_backend import TorchBackend

    import onnxruntime

    emit(figure="machine", cpus=os.cpu_count(), threads=args.threads, load_average=[round(v, 2) for v in os.getloadavg()],
         torch=torch.__version__, onnxruntime=onnxruntime.__version__, python=sys.version.split()[0])
    with tempfile.TemporaryDirectory(prefix="pixelwise-bench-runtime-") as tmp:
        root = Path(tmp)
        ckpt_path = args.checkpoint or train_model(root, 15.0 if args.quick else args.train_seconds, args.threads, args.quick)
        checkpoint = load_checkpoint(ckpt_path)
        model = checkpoint.build_model().eval()
        val = synth_dataset("shapes", 4 if args.quick else args.val_images, 256, 12345, root / "val")
        calib = synth_dataset("shapes", 8 if args.quick else 32, 256, 777, root / "calib")
        del calib  # the folder is what the quantizer reads
        for size in sizes:
            flops = count_flops(model, size)
            onnx_path = root / f"m{size}.onnx"
            export_onnx(checkpoint, onnx_path, input_size=(size, size), dynamic_batch=True, exporter="torchscript")
            side_pre = dataclasses.replace(checkpoint.preprocess, input_size=(size, size))
            runtimes: dict[str, tuple[object, float | None]] = {}
            # torch eager and channels_last share weights and mIoU
            eager = TorchBackend(model, num_threads=args.threads)
            seg = Segmenter(eager, checkpoint.taxonomy, side_pre)
            torch_miou = float(evaluate(seg, val, slice_keys=[], progress=False, keep_worst=0).metrics.miou)
            cl_model = checkpoint.build_model().eval().to(memory_format=torch.channels_last)

            def eager_fn(x: np.ndarray) -> None:
                with torch.inference_mode():
                    model(torch.from_numpy(x))

            def cl_fn(x: np.ndarray) -> None:
                with torch.inference_mode():
                    cl_model(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))

            runtimes["torch-eager"] = (eager_fn, torch_miou)
            runtimes["torch-channels_last"] = (cl_fn, torch_miou)
            for act in ("int8", "uint8"):
                report = quantize_static_int8(
                    onnx_path, root / f"m{size}.{act}.onnx", root / "calib", num_calib=32, val_dataset=val,
                    max_drop=100.0, num_threads=args.threads, activation_type=act, timing_repeats=1,
                )
                if act == "int8":
                    fp32 = OnnxBackend(onnx_path, num_threads=args.threads)
                    runtimes["ort-fp32"] = (fp32.predict_scores, report.fp32_miou)
                int8 = OnnxBackend(report.int8_path, num_threads=args.threads)
                runtimes[f"ort-int8-{'s8s8' if act == 'int8' else 'u8s8'}"] = (int8.predict_scores, report.int8_miou)
            ms: dict[tuple[str, int], float] = {}
            for batch in (1, 8):
                x = np.random.default_rng(0).normal(0, 1, (batch, 3, size, size)).astype(np.float32)
                for name, (fn, miou) in runtimes.items():
                    ms[name, batch] = time_call(fn, x, repeats if batch == 1 else max(2, repeats - 2))
                    emit(figure="latency", size=size, batch=batch, runtime=name, ms_per_image=round(ms[name, batch], 2),
                         model_gflop=round(flops / 1e9, 3), achieved_gflops=round(flops / 1e9 / (ms[name, batch] / 1000), 2),
                         miou=None if miou is None else round(miou * 100, 2), load_average=round(os.getloadavg()[0], 2))
            for batch in (1, 8):
                for name in ("ort-int8-s8s8", "ort-int8-u8s8"):
                    speed = ms["torch-eager", batch] / ms[name, batch]
                    drop = (torch_miou - runtimes[name][1]) * 100
                    emit(figure="int8_vs_eager", size=size, batch=batch, runtime=name, speedup=round(speed, 2),
                         miou_drop_points=round(drop, 2), target_speedup=4.0, target_drop=0.5,
                         met=bool(speed >= 4.0 and drop <= 0.5))
    emit(figure="done", load_average=[round(v, 2) for v in os.getloadavg()])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
