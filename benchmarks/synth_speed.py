"""Speed of the synthetic scene generator (image + semantic + instances + panoptic, in memory).

One JSON line per theme and size: ``{"benchmark": "synth_speed", "theme", "size",
"images_per_s", "ms_per_image", "things_per_image"}``. The rate is the best of
``--repeats`` runs of ``--images`` scenes each (single process, wall clock), so a busy
machine shows its quietest moment. Target: at least 100 images/s at 256x256 on 2 cores.
Run: ``python benchmarks/synth_speed.py`` (``--sizes 256 512 --images 100``).
"""

from __future__ import annotations

import argparse
import json
import time

from pixelwise.data.synth import generate_scene, list_themes, scene_rng


def _rate(theme: str, size: int, images: int, repeats: int) -> tuple[float, float]:
    """Best images per second over the repeats, and the mean thing count."""
    best = float("inf")
    things = 0
    for repeat in range(repeats):
        start = time.perf_counter()
        for index in range(images):
            scene = generate_scene(theme, size, scene_rng(repeat, index))
            things += len(scene.annotation.instances)  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - start)
    return images / best, things / (images * repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--themes", nargs="+", default=list_themes())
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--images", type=int, default=100, help="scenes per timed run (256px; scaled down for larger sizes)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for theme in args.themes:
        generate_scene(theme, 64, scene_rng(0, 0))  # warm up imports and caches
        for size in args.sizes:
            images = max(10, int(args.images * (256 / size) ** 2))
            rate, things = _rate(theme, size, images, args.repeats)
            print(
                json.dumps(
                    {
                        "benchmark": "synth_speed",
                        "theme": theme,
                        "size": size,
                        "images_per_s": round(rate, 1),
                        "ms_per_image": round(1000.0 / rate, 2),
                        "things_per_image": round(things, 1),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
