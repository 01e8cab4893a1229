"""Synthetic segmentation scenes with exact labels, for tests, demos and quick training runs.

Three themes, each with stuff and thing classes, occlusion or touching objects, texture,
uneven lighting, blur and noise, so a model has to learn shapes rather than threshold a
colour:

- ``shapes``:  circles, rectangles, triangles, stars in a room (wall, floor, window);
- ``cells``:   fluorescence-like nuclei, clustered and touching, some dividing;
- ``defects``: scratches, dents, stains on brushed metal with holes and part edges.

Everything is deterministic: image ``i`` of a set with seed ``s`` is rendered from
``np.random.default_rng([s, i])`` alone, so any image can be regenerated on its own and a
set is identical however it is chunked. NumPy + OpenCV only (no torch).

Example:
    >>> import numpy as np
    >>> from pixelwise.data.synth import generate_scene, theme_taxonomy
    >>> scene = generate_scene("cells", 128, np.random.default_rng(0))
    >>> scene.image.shape, scene.image.dtype.name
    ((128, 128, 3), 'uint8')
    >>> theme_taxonomy("cells").names
    ['background', 'nucleus', 'dividing']
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixelwise.core.labels import Annotation
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.dataset import Sample, SegmentationDataset
from pixelwise.data.synth.cells import cells_taxonomy, render_cells
from pixelwise.data.synth.defects import defects_taxonomy, render_defects
from pixelwise.data.synth.scene import SyntheticScene, parse_size
from pixelwise.data.synth.shapes import render_shapes, shapes_taxonomy

__all__ = [
    "THEMES",
    "SyntheticScene",
    "generate_dataset",
    "generate_scene",
    "iter_scenes",
    "list_themes",
    "scene_rng",
    "synth_dataset",
    "theme_taxonomy",
    "write_synthetic_dataset",
]


@dataclass(frozen=True)
class _Theme:
    name: str
    taxonomy: Callable[[], Taxonomy]
    render: Callable[[np.random.Generator, tuple[int, int], Taxonomy], SyntheticScene]
    tags: tuple[str, ...]


THEMES: dict[str, _Theme] = {
    "shapes": _Theme("shapes", shapes_taxonomy, render_shapes, ("indoor", "geometric")),
    "cells": _Theme("cells", cells_taxonomy, render_cells, ("microscopy", "fluorescence")),
    "defects": _Theme("defects", defects_taxonomy, render_defects, ("inspection", "metal")),
}
_TAXONOMIES: dict[str, Taxonomy] = {}


def list_themes() -> list[str]:
    """Names of the available themes."""
    return sorted(THEMES)


def _theme(name: str) -> _Theme:
    try:
        return THEMES[name]
    except KeyError:
        raise KeyError(f"unknown synthetic theme {name!r}; valid themes: {', '.join(list_themes())}") from None


def theme_taxonomy(theme: str) -> Taxonomy:
    """The classes of a theme (stuff first, then things; id 0 is the background stuff class).

    Raises:
        KeyError: unknown theme (the message lists the valid ones).
    """
    if theme not in _TAXONOMIES:
        _TAXONOMIES[theme] = _theme(theme).taxonomy()
    return _TAXONOMIES[theme]


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index`` in a set with ``seed``: ``np.random.default_rng([seed, index])``."""
    return np.random.default_rng([int(seed), int(index)])


def generate_scene(theme: str, size: int | tuple[int, int], rng: np.random.Generator) -> SyntheticScene:
    """Render one scene.

    Args:
        theme: ``"shapes"``, ``"cells"`` or ``"defects"``.
        size: ``H = W`` as an int, or ``(height, width)``; at least 16.
        rng: the only source of randomness (same state -> same scene, bit for bit).

    Returns:
        A :class:`SyntheticScene`: ``(H, W, 3) uint8`` RGB image; annotation with semantic
        ``(H, W)`` class ids (ignore index where a thing was too small to keep), instances
        (dense ``(N, H, W)`` bool visible masks, disjoint, non-empty; class ids; boxes
        ``xyxy``) and panoptic map; metadata with ``source``, ``lighting`` and ``tags``.

    Raises:
        KeyError: unknown theme.
        ValueError: invalid size.
    """
    spec = _theme(theme)
    shape = parse_size(size)
    scene = spec.render(rng, shape, theme_taxonomy(theme))
    scene.metadata = {
        "source": f"synthetic:{theme}",
        "theme": theme,
        "tags": ["synthetic", theme, *spec.tags],
        **scene.metadata,
    }
    return scene


def iter_scenes(theme: str, n: int, size: int | tuple[int, int], seed: int = 0, start: int = 0) -> Iterator[SyntheticScene]:
    """Scenes ``start .. start + n - 1`` of the set with ``seed``, one at a time (constant memory).

    Each scene's metadata also holds ``seed`` and ``index``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    for index in range(start, start + n):
        scene = generate_scene(theme, size, scene_rng(seed, index))
        scene.metadata["seed"] = int(seed)
        scene.metadata["index"] = int(index)
        yield scene


def generate_dataset(theme: str, n: int, size: int | tuple[int, int], seed: int = 0, start: int = 0) -> list[SyntheticScene]:
    """``n`` scenes in memory (see :func:`iter_scenes` for a streaming version).

    Dense instance masks take ``N * H * W`` bytes per image; for thousands of images use
    :func:`synth_dataset` (images on disk, labels regenerated on demand) instead.
    """
    return list(iter_scenes(theme, n, size, seed, start))


def _image_id(theme: str, index: int) -> str:
    return f"{theme}_{index:06d}"


def _regenerate(theme: str, size: tuple[int, int], seed: int, index: int) -> Callable[[], Annotation]:
    def load() -> Annotation:
        return generate_scene(theme, size, scene_rng(seed, index)).annotation

    return load


def synth_dataset(
    theme: str,
    n: int,
    size: int | tuple[int, int],
    seed: int,
    image_dir: str | Path,
    *,
    start: int = 0,
    lazy: bool = True,
    progress: bool = False,
) -> SegmentationDataset:
    """Render ``n`` scenes, write their images as PNG and return them as a dataset.

    Images go to ``image_dir/<theme>_<index:06d>.png``. Labels are not written: with
    ``lazy=True`` (default) each sample's annotation is regenerated from ``(seed, index)``
    when asked for (a few milliseconds, constant memory, identical to the first render);
    with ``lazy=False`` samples are built with :meth:`Sample.with_annotation` and hold
    their annotation (instance masks as compressed RLE to keep memory small).

    Args:
        theme: theme name.
        n: number of images.
        size: int or ``(height, width)``.
        seed: set seed; image ``i`` uses ``scene_rng(seed, i)``.
        image_dir: folder for the PNG files (created).
        start: index of the first image (to extend a set or generate it in chunks).
        lazy: regenerate annotations on demand instead of holding them.
        progress: show a tqdm bar.

    Returns:
        A :class:`SegmentationDataset` named ``synthetic-<theme>`` with the theme's taxonomy,
        samples carrying the scene metadata (``source``, ``lighting``, ``tags``, ...).
    """
    from pixelwise.data.image_io import write_image

    image_dir = Path(image_dir)
    image_dir.mkdir(parents=True, exist_ok=True)
    shape = parse_size(size)
    samples: list[Sample] = []
    scenes: Iterator[SyntheticScene] = iter_scenes(theme, n, shape, seed, start)
    if progress:
        from tqdm import tqdm

        scenes = tqdm(scenes, total=n, desc=f"synthetic {theme}", unit="img")
    for scene in scenes:
        index = int(scene.metadata["index"])
        image_id = _image_id(theme, index)
        path = image_dir / f"{image_id}.png"
        write_image(path, scene.image)
        if lazy:
            samples.append(Sample(image_id, path, shape[0], shape[1], dict(scene.metadata), _regenerate(theme, shape, seed, index)))
        else:
            annotation = scene.annotation
            if annotation.instances is not None:
                annotation = Annotation(annotation.semantic, annotation.instances.with_rle(), annotation.panoptic)
            samples.append(Sample.with_annotation(image_id, path, annotation, scene.metadata))
    return SegmentationDataset(theme_taxonomy(theme), samples, [], name=f"synthetic-{theme}", root=image_dir)


def write_synthetic_dataset(
    theme: str,
    n: int,
    size: int | tuple[int, int],
    seed: int,
    out_dir: str | Path,
    format: str = "masks",
    *,
    start: int = 0,
    progress: bool = False,
    **options: Any,
) -> Path:
    """Generate a set and write it in a registered dataset format.

    Images are first written as PNG to a temporary staging folder (outside ``out_dir``,
    removed afterwards, also on error); the format writer then copies them into its own
    layout under ``out_dir`` and writes the labels and the metadata manifest. Staging
    outside ``out_dir`` means the writer never copies a file onto itself and ``out_dir``
    holds exactly what the format defines.

    Args:
        theme: theme name.
        n: number of images.
        size: int or ``(height, width)``.
        seed: set seed (image ``i`` uses ``scene_rng(seed, i)``).
        out_dir: output root (created).
        format: a name from :func:`pixelwise.data.formats.list_formats` (``coco``,
            ``coco-panoptic``, ``voc``, ``yolo-seg``, ``cityscapes``, ``masks``).
        start: index of the first image.
        progress: show progress bars.
        **options: passed to the format writer.

    Returns:
        The root the writer returns.

    Raises:
        KeyError: unknown theme or format (listing the valid names).
    """
    from pixelwise.data.formats.base import get_format

    _theme(theme)
    spec = get_format(format)  # fail before rendering anything
    staging = Path(tempfile.mkdtemp(prefix=f"pixelwise-synth-{theme}-"))
    try:
        dataset = synth_dataset(theme, n, size, seed, staging, start=start, lazy=True, progress=progress)
        return spec.writer(dataset, Path(out_dir), progress=progress, **options)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
