"""Throughput of the Ray engine with 1 and 2 model actors (target: 2 workers >= 1.7x of 1).

Builds a U-Net (MobileNetV2 encoder, random weights: speed does not depend on them) as a
Pixelwise checkpoint, writes ``--images`` synthetic PNGs, starts one local Ray with
``--cpus`` CPUs (no dashboard, usage statistics off) and runs
:func:`pixelwise.runtime.ray_engine.predict_ray` with 1 then 2 workers, each actor with
``--threads`` backend threads (1: two actors can use two cores); ``--regions`` makes the
actors also compute the regions (polygons) that ``pixelwise predict`` writes. Each run
starts fresh
actors; ``images_per_second`` counts from the first result to the last (steady state:
actor start-up, which loads torch, is left out and printed separately as
``first_result_seconds``). ``--local`` also measures the local engine for reference.
The actors report the wall and CPU seconds of every chunk: ``actor_cpu_share`` (CPU per
busy second, 1.0 = a whole core) shows when other processes share the cores, and
``images_per_actor_cpu_second`` (the same for 1 and 2 workers when the engine adds no
overhead) separates engine overhead from a busy machine.
One JSON line per figure.

Run: ``python benchmarks/ray_scaling.py`` (about 2-3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def make_inputs(workdir: Path, count: int, size: int, model_name: str, classes: int) -> tuple[Path, list[Path]]:
    """A random-weight checkpoint and ``count`` synthetic ``size x size`` PNGs."""
    import torch

    from pixelwise.core.taxonomy import Taxonomy
    from pixelwise.data.image_io import write_image
    from pixelwise.models import create_model
    from pixelwise.models.checkpoint import save_checkpoint
    from pixelwise.transforms.preprocess import PreprocessConfig

    torch.manual_seed(0)
    model = create_model(model_name, num_classes=classes).eval()
    taxonomy = Taxonomy.from_names(["background"] + [f"class{i}" for i in range(1, classes)])
    checkpoint = save_checkpoint(workdir / "model.pt", model, taxonomy, PreprocessConfig(input_size=None, resize_policy="pad"))
    import cv2

    rng = np.random.default_rng(0)
    images = workdir / "images"
    images.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        # smooth blobs rather than white noise: realistic region counts (noise gives
        # thousands of one-pixel regions whose polygons would dominate the timing)
        noise = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        image = cv2.normalize(cv2.GaussianBlur(noise, (0, 0), size / 32), None, 0, 255, cv2.NORM_MINMAX)
        path = images / f"img{i:04d}.png"
        write_image(path, image)
        paths.append(path)
    return checkpoint, paths


def run_ray(checkpoint: Path, paths: list[Path], workers: int, batch_size: int, threads: int, regions: bool) -> dict[str, float]:
    from pixelwise.runtime.ray_engine import predict_ray

    run = predict_ray(checkpoint, paths, num_workers=workers, batch_size=batch_size, threads_per_worker=threads,
                      compute_regions=regions, shutdown=False, progress=False)
    start, driver_cpu = time.perf_counter(), time.process_time()
    first = None
    count = 0
    for item in run:
        if not item.ok:
            raise SystemExit(f"prediction failed: {item.issue}")
        count += 1
        if first is None:
            first = time.perf_counter()
    end, driver_cpu = time.perf_counter(), time.process_time() - driver_cpu
    assert first is not None
    steady = (count - 1) / (end - first) if count > 1 and end > first else float("nan")
    workers_cpu = sum(w["cpu"] for w in run.stats.worker_seconds.values())
    workers_busy = sum(w["busy"] for w in run.stats.worker_seconds.values())
    return {
        "images": count, "seconds": end - start, "first_result_seconds": first - start,
        "images_per_second": steady, "images_per_second_wall": count / (end - start),
        # CPU the actors got while working: < 1 per actor means other processes took the cores
        "actor_cpu_share": workers_cpu / workers_busy if workers_busy else float("nan"),
        "images_per_actor_cpu_second": count / workers_cpu if workers_cpu else float("nan"),
        "actors_seen": len(run.stats.worker_seconds),
        # CPU of this (driver) process per second: it competes with the actors on a 2-core machine
        "driver_cpu_share": driver_cpu / (end - start),
    }


def run_local(checkpoint: Path, paths: list[Path], batch_size: int, threads: int | None, regions: bool) -> dict[str, float]:
    import pixelwise.api
    from pixelwise.runtime.batch import predict_folder

    segmenter = pixelwise.api.load(checkpoint, num_threads=threads)
    run = predict_folder(segmenter, paths, batch_size=batch_size, progress=False)
    for item in run:
        if regions:
            _ = item.result.regions  # the same work as a Ray actor does
    return {"images": run.stats.processed, "seconds": run.stats.seconds, "images_per_second": run.stats.images_per_second}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--model", default="unet", help="registry name, e.g. unet, unet-resnet18")
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2, help="files per actor call")
    parser.add_argument("--threads", type=int, default=1, help="backend threads per actor")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--address", default=None, help="use an existing Ray cluster instead")
    parser.add_argument("--local", action="store_true", help="also time the local engine")
    parser.add_argument("--regions", action="store_true",
                        help="also compute regions (polygons) on the actors, as `pixelwise predict` does; with random "
                             "weights the label maps are noisy and polygons then dominate the time")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                        help="actors run the .pt checkpoint (PyTorch) or its ONNX export (ONNX Runtime)")
    args = parser.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from pixelwise.runtime.ray_engine import init_ray

    workdir = Path(tempfile.mkdtemp(prefix="pixelwise-ray-"))
    try:
        checkpoint, paths = make_inputs(workdir, args.images, args.size, args.model, args.classes)
        if args.backend == "onnx":
            from pixelwise.runtime.onnx_export import export_onnx

            export_onnx(checkpoint, workdir / "model.onnx", dynamic_batch=True, input_size=(args.size, args.size))
            checkpoint = workdir / "model.onnx"
        init_ray(args.address, num_cpus=args.cpus)
        ray.data.DataContext.get_current().enable_progress_bars = False
        common = {"benchmark": "ray_scaling", "model": args.model, "backend": args.backend, "images": args.images, "size": args.size,
                  "batch_size": args.batch_size, "threads_per_worker": args.threads, "cpus": args.cpus, "regions": args.regions,
                  "load_average_1min": round(os.getloadavg()[0], 2)}
        rates = {}
        for workers in (1, 2):
            figures = run_ray(checkpoint, paths, workers, args.batch_size, args.threads, args.regions)
            rates[workers] = figures["images_per_second"]
            print(json.dumps({**common, "figure": f"ray_{workers}_worker", "workers": workers,
                              **{k: round(v, 3) for k, v in figures.items()}}), flush=True)
        print(json.dumps({**common, "figure": "ray_2_over_1", "value": round(rates[2] / rates[1], 3),
                          "target": ">= 1.7", "load_average_1min_end": round(os.getloadavg()[0], 2)}), flush=True)
        ray.shutdown()
        if args.local:
            figures = run_local(checkpoint, paths, args.batch_size, None, args.regions)
            print(json.dumps({**common, "figure": "local_engine", **{k: round(v, 3) for k, v in figures.items()}}), flush=True)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
