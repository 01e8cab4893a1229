"""Synthetic scenes: determinism, exact and consistent labels, difficulty, dataset writing."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from pixelwise.core.convert import complete_annotation, panoptic_from_views, semantic_from_instances
from pixelwise.core.labels import Annotation
from pixelwise.core.masks import masks_to_boxes
from pixelwise.data.dataset import METADATA_KEYS
from pixelwise.data.synth import (
    SyntheticScene,
    generate_dataset,
    generate_scene,
    iter_scenes,
    list_themes,
    scene_rng,
    synth_dataset,
    theme_taxonomy,
    write_synthetic_dataset,
)

THEMES = ["shapes", "cells", "defects"]
SIZE = 96


@pytest.fixture(scope="module")
def scenes() -> dict[str, list[SyntheticScene]]:
    """12 scenes per theme, rendered once for the whole module."""
    return {theme: generate_dataset(theme, 12, SIZE, seed=7) for theme in THEMES}


def _same(a: SyntheticScene, b: SyntheticScene) -> bool:
    ia, ib = a.annotation.instances, b.annotation.instances
    return (
        np.array_equal(a.image, b.image)
        and np.array_equal(a.annotation.semantic.labels, b.annotation.semantic.labels)
        and np.array_equal(ia.dense_masks(), ib.dense_masks())
        and np.array_equal(ia.class_ids, ib.class_ids)
        and np.array_equal(a.annotation.panoptic.segment_ids, b.annotation.panoptic.segment_ids)
    )


def test_themes_listed():
    assert list_themes() == sorted(THEMES)


@pytest.mark.parametrize("theme", THEMES)
def test_same_seed_same_scene_and_chunking(theme):
    first = generate_scene(theme, SIZE, scene_rng(3, 5))
    again = generate_scene(theme, SIZE, scene_rng(3, 5))
    assert _same(first, again)
    chunk = next(iter_scenes(theme, 1, SIZE, seed=3, start=5))
    assert _same(first, chunk) and chunk.metadata["index"] == 5 and chunk.metadata["seed"] == 3
    assert not np.array_equal(first.image, generate_scene(theme, SIZE, scene_rng(3, 6)).image)
    assert not np.array_equal(first.image, generate_scene(theme, SIZE, scene_rng(4, 5)).image)


@pytest.mark.parametrize("theme", THEMES)
def test_taxonomy_has_stuff_and_things(theme):
    taxonomy = theme_taxonomy(theme)
    assert taxonomy.stuff_ids and taxonomy.thing_ids
    assert taxonomy.ids[0] == 0 and taxonomy.get(0).name == "background" and not taxonomy.get(0).is_thing


@pytest.mark.parametrize("theme", THEMES)
def test_annotations_are_consistent(theme, scenes):
    taxonomy = theme_taxonomy(theme)
    things = set(taxonomy.thing_ids)
    for scene in scenes[theme]:
        ann = scene.annotation
        semantic, instances, panoptic = ann.semantic, ann.instances, ann.panoptic
        assert scene.image.shape == (SIZE, SIZE, 3) and scene.image.dtype == np.uint8
        masks = instances.dense_masks()
        assert masks.dtype == bool and masks.shape == (len(instances), SIZE, SIZE)
        # non-empty, disjoint, boxes tight
        assert np.all(masks.sum(axis=(1, 2)) > 0)
        assert masks.sum(axis=0).max(initial=0) <= 1
        np.testing.assert_array_equal(instances.boxes, masks_to_boxes(masks))
        assert set(instances.class_ids.tolist()) <= things
        # semantic == instances painted over the stuff, for every thing pixel
        covered = masks.any(axis=0)
        painted = semantic_from_instances(instances).labels
        np.testing.assert_array_equal(semantic.labels[covered], painted[covered])
        # no thing class outside an instance (only stuff or void there)
        outside = set(np.unique(semantic.labels[~covered]).tolist())
        assert not outside & things
        assert outside <= set(taxonomy.stuff_ids) | {taxonomy.ignore_index}
        # panoptic equals the shared conversion's result
        reference = panoptic_from_views(semantic, instances, taxonomy)
        np.testing.assert_array_equal(panoptic.segment_ids, reference.segment_ids)
        assert panoptic.segments == reference.segments
        completed = complete_annotation(Annotation(semantic, instances), taxonomy)
        np.testing.assert_array_equal(completed.panoptic.segment_ids, panoptic.segment_ids)


@pytest.mark.parametrize("theme", THEMES)
def test_things_present_on_average(theme, scenes):
    counts = [len(s.annotation.instances) for s in scenes[theme]]
    assert np.mean(counts) >= 1.0
    assert all(s.metadata["num_things"] == c for s, c in zip(scenes[theme], counts))


def test_cells_touch(scenes):
    touching = 0
    for scene in scenes["cells"]:
        ids = scene.annotation.panoptic.segment_ids.astype(np.int64)
        things = len(scene.annotation.instances)
        ids = np.where(ids <= things, ids, 0)
        right = (ids[:, 1:] != ids[:, :-1]) & (ids[:, 1:] > 0) & (ids[:, :-1] > 0)
        down = (ids[1:] != ids[:-1]) & (ids[1:] > 0) & (ids[:-1] > 0)
        touching += int(right.sum() + down.sum())
    assert touching > 50


def test_cells_have_both_thing_classes():
    classes = np.concatenate([s.annotation.instances.class_ids for s in generate_dataset("cells", 6, 192, seed=1)])
    assert set(classes.tolist()) == {1, 2}


@pytest.mark.parametrize("theme, min_overlap", [("shapes", 0.4), ("cells", 0.1), ("defects", 0.4)])
def test_not_separable_by_intensity(theme, min_overlap, scenes):
    """Thing and stuff pixels share grey levels: a global threshold cannot segment."""
    things = np.array(theme_taxonomy(theme).thing_ids)
    thing_px, stuff_px = [], []
    for scene in scenes[theme]:
        labels = scene.annotation.semantic.labels
        grey = scene.image.mean(axis=2).astype(int) // 8
        is_thing = np.isin(labels, things)
        thing_px.append(grey[is_thing])
        stuff_px.append(grey[~is_thing & (labels != 255)])
    p = np.bincount(np.concatenate(thing_px), minlength=32) / sum(len(v) for v in thing_px)
    q = np.bincount(np.concatenate(stuff_px), minlength=32) / sum(len(v) for v in stuff_px)
    assert np.minimum(p, q).sum() >= min_overlap


@pytest.mark.parametrize("theme", THEMES)
def test_metadata(theme, scenes):
    for scene in scenes[theme]:
        meta = scene.metadata
        assert meta["source"] == f"synthetic:{theme}"
        assert meta["lighting"] in {"bright", "normal", "dim", "uneven"}
        assert "synthetic" in meta["tags"] and theme in meta["tags"]
        assert set(METADATA_KEYS) & set(meta) == {"source", "lighting", "tags"}
        json.dumps(meta)  # serialisable for manifests


@pytest.mark.parametrize(
    "theme, size, raises",
    [("shapes", (64, 128), None), ("cells", (128, 80), None), ("nope", 64, KeyError), ("cells", 8, ValueError), ("cells", "x", ValueError)],
)
def test_sizes_and_errors(theme, size, raises):
    if raises is not None:
        with pytest.raises(raises) as info:
            generate_scene(theme, size, np.random.default_rng(0))
        if raises is KeyError:
            assert "shapes" in str(info.value)
        return
    scene = generate_scene(theme, size, np.random.default_rng(0))
    assert scene.image.shape == (*size, 3) and scene.annotation.shape == size


@pytest.mark.parametrize("lazy", [True, False])
def test_synth_dataset(tmp_path, lazy):
    from pixelwise.data.image_io import read_image

    dataset = synth_dataset("defects", 3, (64, 80), seed=2, image_dir=tmp_path / "img", lazy=lazy)
    assert dataset.taxonomy == theme_taxonomy("defects") and len(dataset) == 3
    for index, sample in enumerate(dataset):
        scene = generate_scene("defects", (64, 80), scene_rng(2, index))
        assert sample.image_id == f"defects_{index:06d}" and (sample.height, sample.width) == (64, 80)
        np.testing.assert_array_equal(read_image(sample.image_path), scene.image)
        ann = sample.annotation()
        np.testing.assert_array_equal(ann.semantic.labels, scene.annotation.semantic.labels)
        np.testing.assert_array_equal(ann.instances.dense_masks(), scene.annotation.instances.dense_masks())
        assert sample.metadata["source"] == "synthetic:defects" and sample.metadata["index"] == index


@pytest.mark.parametrize("fmt, options", [("masks", {}), ("coco", {})])
def test_write_synthetic_dataset(tmp_path, fmt, options):
    from pixelwise.data.formats import list_formats, read_dataset

    if fmt not in {f.name for f in list_formats()}:
        pytest.skip(f"format {fmt} is not registered yet")
    before = set(Path(tempfile.gettempdir()).glob("pixelwise-synth-*"))
    root = write_synthetic_dataset("shapes", 4, 64, seed=11, out_dir=tmp_path / "out", format=fmt, **options)
    assert set(Path(tempfile.gettempdir()).glob("pixelwise-synth-*")) == before  # staging removed
    back = read_dataset(root, fmt)
    assert len(back) == 4 and not [i for i in back.issues if i.severity == "error"]
    for sample in back:
        index = int(sample.image_id.rsplit("_", 1)[-1])
        truth = generate_scene("shapes", 64, scene_rng(11, index)).annotation
        ann = sample.annotation()
        if fmt == "masks":
            np.testing.assert_array_equal(ann.semantic.labels, truth.semantic.labels)
        else:
            assert len(ann.instances) == len(truth.instances)
        assert sample.metadata.get("source") == "synthetic:shapes"


def test_write_synthetic_dataset_unknown_format(tmp_path):
    with pytest.raises(KeyError):
        write_synthetic_dataset("shapes", 1, 64, seed=0, out_dir=tmp_path, format="no-such-format")
    assert not list(tmp_path.iterdir())
