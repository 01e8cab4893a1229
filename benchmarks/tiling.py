"""Tiled inference on a huge image: peak memory and throughput.

Writes a synthetic ``--size x --size`` RGB TIFF (tiled, uncompressed) tile by tile, so the
image is never held in memory, then segments it with
:class:`pixelwise.runtime.tiling.TiledSegmenter` into a ``.npy`` memory map. The model is a
U-Net with a MobileNetV2 encoder and random weights (speed and memory do not depend on the
weights), or ``--model CKPT``. Prints one JSON line per figure: peak RSS of the process
(``resource.getrusage().ru_maxrss``, includes torch itself), RSS before the run, seconds,
image megapixels per second and tiles per second. Target: peak RSS <= 1.5 GB at 10000x10000.

Run: ``python benchmarks/tiling.py`` (a few minutes on 2 cores) or ``--size 3000`` for a
quick look.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def _rss_mb() -> float:
    """Current resident set size in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def synthetic_tiles(size: int, tile: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Row-major ``(tile, tile, 3) uint8`` tiles of a smooth synthetic scene with blobs and noise."""
    rng = np.random.default_rng(seed)
    for y in range(0, size, tile):
        for x in range(0, size, tile):
            yy, xx = np.mgrid[y : y + tile, x : x + tile].astype(np.float32)
            base = 0.5 + 0.25 * np.sin(xx / 41.0) * np.cos(yy / 57.0) + 0.25 * np.sin((xx + yy) / 173.0)
            rgb = np.stack([base, base * 0.8 + 0.1, 1.0 - base], axis=-1) * 255
            rgb += rng.normal(0, 12, rgb.shape).astype(np.float32)
            yield np.clip(rgb, 0, 255).astype(np.uint8)


def write_synthetic_tiff(path: Path, size: int, tile: int = 512) -> Path:
    """A ``size x size`` RGB TIFF written tile by tile (memory: one tile)."""
    import tifffile

    tifffile.imwrite(
        path, synthetic_tiles(size, tile), shape=(size, size, 3), dtype=np.uint8,
        tile=(tile, tile), photometric="rgb", bigtiff=size * size * 3 > 2**31,
    )
    return path


_EXPORT_CHILD = """
import sys, torch
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.models import create_model
from pixelwise.models.checkpoint import save_checkpoint
from pixelwise.runtime.onnx_export import export_onnx
from pixelwise.transforms.preprocess import PreprocessConfig
workdir, classes, tile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
model = create_model("unet", num_classes=classes).eval()
taxonomy = Taxonomy.from_names(["background"] + [f"class{i}" for i in range(1, classes)])
ckpt = save_checkpoint(workdir + "/random.pt", model, taxonomy, PreprocessConfig(input_size=None, resize_policy="pad"))
export_onnx(ckpt, workdir + "/random.onnx", dynamic_batch=True, input_size=(tile, tile))
"""


def export_random_onnx(workdir: Path, classes: int, tile: int) -> Path:
    """Export the random U-Net to ONNX in a child process, so this process never loads torch."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", _EXPORT_CHILD, str(workdir), str(classes), str(tile)], check=True)
    return workdir / "random.onnx"


def build_segmenter(model_path: str | None, threads: int | None, classes: int):
    if model_path and model_path.endswith(".onnx"):
        from pixelwise.runtime.onnx_backend import load_onnx

        return load_onnx(model_path, num_threads=threads)
    from pixelwise.core.taxonomy import Taxonomy
    from pixelwise.models import create_model
    from pixelwise.runtime import Segmenter, TorchBackend
    from pixelwise.transforms.preprocess import PreprocessConfig

    if model_path:
        import pixelwise.api

        return pixelwise.api.load(model_path, num_threads=threads)
    import torch

    torch.manual_seed(0)
    model = create_model("unet", num_classes=classes).eval()
    taxonomy = Taxonomy.from_names(["background"] + [f"class{i}" for i in range(1, classes)])
    return Segmenter(TorchBackend(model, num_threads=threads), taxonomy, PreprocessConfig(input_size=None, resize_policy="pad"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10000, help="image side in pixels")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--model", default=None, help="a model file (.pt, or .onnx with its sidecar) instead of the random U-Net")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                        help="run the random U-Net with PyTorch, or export it to ONNX (in a child process) and use ONNX Runtime")
    parser.add_argument("--threads", type=int, default=None, help="backend threads (default: torch's)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the TIFF and labels go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the TIFF and the label map")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()

    from pixelwise.runtime.tiling import TiledSegmenter, tiles_for

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pixelwise-tiling-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        image_path = write_synthetic_tiff(workdir / f"synthetic_{args.size}.tif", args.size)
        write_seconds = time.perf_counter() - started

        model = args.model
        if model is None and args.backend == "onnx":
            model = str(export_random_onnx(workdir, args.classes, args.tile))
        segmenter = build_segmenter(model, args.threads, args.classes)
        tiled = TiledSegmenter(segmenter, tile=args.tile, overlap=args.overlap, batch_size=args.batch_size)
        tiled.predict_labels(np.zeros((args.tile, args.tile, 3), np.uint8))  # warm-up (one tile)
        rss_before = _rss_mb()
        started = time.perf_counter()
        labels = tiled.predict_labels(image_path, out=workdir / "labels.npy", progress=args.progress)
        seconds = time.perf_counter() - started
        peak = _peak_rss_mb()
        step = max(1, args.size // 1000)
        counts = np.bincount(np.asarray(labels[::step, ::step]).ravel())
        del labels

        tiles = tiles_for(args.size, args.size, args.tile, args.overlap)
        common = {
            "benchmark": "tiling", "size": args.size, "tile": args.tile, "overlap": args.overlap,
            "batch_size": args.batch_size, "classes": segmenter.num_classes,
            "model": args.model or "unet-mobilenet_v2 (random weights)",
            "backend": getattr(segmenter.backend, "name", "?"), "threads": args.threads,
        }
        figures = [
            {"figure": "peak_rss_mb", "value": round(peak, 1), "target": "<= 1536"},
            {"figure": "rss_before_run_mb", "value": round(rss_before, 1)},
            {"figure": "seconds", "value": round(seconds, 2)},
            {"figure": "megapixels_per_second", "value": round(args.size**2 / 1e6 / seconds, 4)},
            {"figure": "tiles_per_second", "value": round(tiles / seconds, 3), "tiles": tiles},
            {"figure": "tiff_write_seconds", "value": round(write_seconds, 2)},
            {"figure": "label_fractions", "value": [round(c / counts.sum(), 4) for c in counts]},
        ]
        for figure in figures:
            print(json.dumps({**common, **figure}), flush=True)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
