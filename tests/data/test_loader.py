"""SemanticTorchDataset, SeededSampler, PadCollate and build_loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pixelwise.core.labels import Annotation, InstanceSet, SemanticMap
from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.dataset import Sample, SegmentationDataset
from pixelwise.data.image_io import write_image
from pixelwise.data.loader import PadCollate, SeededSampler, SemanticTorchDataset, build_loader
from pixelwise.training.pipeline import SemanticPreprocessor, place_image
from pixelwise.transforms.preprocess import PreprocessConfig, plan_geometry, preprocess_image, preprocess_labels

TAXONOMY = Taxonomy.from_names(["background", "a", "b"])


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: these tensors are tiny, and a second OpenMP thread only stalls
    when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _prep(**kwargs) -> SemanticPreprocessor:
    return SemanticPreprocessor(PreprocessConfig(**kwargs))


def _image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _labels(height: int, width: int) -> np.ndarray:
    labels = np.zeros((height, width), np.uint8)
    labels[: height // 2, : width // 2] = 1
    labels[height // 2 :, width // 2 :] = 2
    return labels


def _dataset(tmp_path: Path, sizes: list[tuple[int, int]], seed: int = 0) -> SegmentationDataset:
    rng = np.random.default_rng(seed)
    samples = []
    for i, (h, w) in enumerate(sizes):
        path = tmp_path / f"img{i}.png"
        write_image(path, _image(rng, h, w))
        samples.append(Sample.with_annotation(f"img{i}", path, Annotation(semantic=SemanticMap(_labels(h, w)))))
    return SegmentationDataset(TAXONOMY, samples, name="tiny", root=tmp_path)


@pytest.mark.parametrize(
    "config",
    [
        PreprocessConfig(input_size=(32, 32), resize_policy="resize"),
        PreprocessConfig(input_size=(32, 32), resize_policy="letterbox", pad_value=114),
        PreprocessConfig(input_size=None, resize_policy="pad", divisor=16),
        PreprocessConfig(input_size=(32, 64), resize_policy="resize", denoise="median", mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4)),
    ],
    ids=["resize", "letterbox", "pad", "median-custom-norm"],
)
def test_uint8_path_matches_preprocess_image(config: PreprocessConfig):
    image = _image(np.random.default_rng(1), 20, 40)
    expected, geometry = preprocess_image(image, config)
    from pixelwise.transforms.preprocess import denoise_image

    placed = place_image(denoise_image(image, config.denoise, config.denoise_strength), plan_geometry(20, 40, config), config)
    assert placed.dtype == np.uint8 and placed.shape[:2] == geometry.padded
    np.testing.assert_allclose(SemanticPreprocessor(config).normalize(placed).numpy(), expected, atol=1e-5)


def test_items_are_normalised_tensors_with_network_size_targets(tmp_path: Path):
    config = PreprocessConfig(input_size=(32, 32), resize_policy="letterbox")
    ds = SemanticTorchDataset(_dataset(tmp_path, [(16, 32), (24, 24)]), SemanticPreprocessor(config))
    image, target = ds[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert target.shape == (32, 32) and target.dtype == torch.int64
    # letterbox 16x32 -> 16x32 placed at rows 8..24: padding rows are ignore, the rest are labels
    geometry = plan_geometry(16, 32, config)
    np.testing.assert_array_equal(target.numpy(), preprocess_labels(_labels(16, 32), geometry, 255))
    assert (target[:8] == 255).all() and set(target[8:24].unique().tolist()) == {0, 1, 2}
    assert ds.memory_bytes() == 2 * (32 * 32 * 3 + 32 * 32)


def test_cache_off_gives_the_same_items(tmp_path: Path):
    dataset = _dataset(tmp_path, [(20, 20), (30, 40)])
    config = PreprocessConfig(input_size=(32, 32))
    cached = SemanticTorchDataset(dataset, SemanticPreprocessor(config), cache=True)
    lazy = SemanticTorchDataset(dataset, SemanticPreprocessor(config), cache=False)
    assert lazy.memory_bytes() == 0
    for i in range(2):
        for a, b in zip(cached[i], lazy[i]):
            assert torch.equal(a, b)


def test_semantic_is_derived_from_instances(tmp_path: Path):
    path = tmp_path / "x.png"
    write_image(path, np.zeros((8, 8, 3), np.uint8))
    masks = np.zeros((1, 8, 8), bool)
    masks[0, 2:5, 2:6] = True
    sample = Sample.with_annotation("x", path, Annotation(instances=InstanceSet(8, 8, np.array([2]), masks)))
    ds = SemanticTorchDataset(SegmentationDataset(TAXONOMY, [sample]), _prep(input_size=None, resize_policy="none"))
    _, target = ds[0]
    expected = np.where(masks[0], 2, 0)
    np.testing.assert_array_equal(target.numpy(), expected)


def test_unknown_label_values_become_ignore_and_are_reported(tmp_path: Path):
    path = tmp_path / "x.png"
    write_image(path, np.zeros((8, 8, 3), np.uint8))
    labels = np.zeros((8, 8), np.uint8)
    labels[0, 0] = 7  # not a class of the 3-class taxonomy
    sample = Sample.with_annotation("x", path, Annotation(semantic=SemanticMap(labels)))
    ds = SemanticTorchDataset(SegmentationDataset(TAXONOMY, [sample]), _prep(input_size=None, resize_policy="none"))
    _, target = ds[0]
    assert int(target[0, 0]) == 255 and int(target[1, 1]) == 0
    assert len(ds) == 1 and ds.issues[0].severity == "warning" and "[7]" in ds.issues[0].reason


@pytest.mark.parametrize("cache", [True, False])
def test_broken_samples_are_reported_and_excluded(tmp_path: Path, cache: bool):
    dataset = _dataset(tmp_path, [(16, 16), (16, 16), (16, 16)])
    (tmp_path / "img1.png").write_bytes(b"not an image at all")
    labels = np.zeros((10, 10), np.uint8)  # wrong size for a 16x16 image
    dataset.samples[2] = Sample("img2", tmp_path / "img2.png", 10, 10, {}, None, Annotation(semantic=SemanticMap(labels)))
    ds = SemanticTorchDataset(dataset, _prep(input_size=(16, 16)), cache=cache)
    assert [s.image_id for s in ds.samples] == ["img0"]
    assert sorted(i.image_id for i in ds.issues) == ["img1", "img2"]
    assert all(i.severity == "error" for i in ds.issues)


def test_nothing_usable_raises(tmp_path: Path):
    from pixelwise.core.errors import DataError

    dataset = _dataset(tmp_path, [(16, 16)])
    (tmp_path / "img0.png").write_bytes(b"")
    with pytest.raises(DataError, match="no usable sample"):
        SemanticTorchDataset(dataset, _prep(input_size=(16, 16)))


def test_pixel_counts(tmp_path: Path):
    ds = SemanticTorchDataset(_dataset(tmp_path, [(8, 8), (8, 8)]), _prep(input_size=None, resize_policy="none"))
    np.testing.assert_array_equal(ds.pixel_counts(), [64, 32, 32])


def test_sampler_is_seeded_per_epoch_and_shards_like_one_process():
    one = SeededSampler(10, seed=3)
    one.set_epoch(1)
    first = one.indices()
    assert sorted(first) == list(range(10)) and first == one.indices()
    one.set_epoch(2)
    assert one.indices() != first
    one.set_epoch(1)
    shards = [SeededSampler(10, seed=3, rank=r, world_size=2) for r in range(2)]
    for s in shards:
        s.set_epoch(1)
    # step k of the two ranks (batch 2 each) covers the same samples as step k of one process (batch 4)
    for k in range(2):
        union = set(shards[0].indices()[2 * k : 2 * k + 2]) | set(shards[1].indices()[2 * k : 2 * k + 2])
        assert union == set(first[4 * k : 4 * k + 4])
    assert [len(s) for s in shards] == [5, 5]
    padded = [SeededSampler(5, seed=0, rank=r, world_size=2) for r in range(2)]
    assert [len(s) for s in padded] == [3, 3] and len(padded[0].indices()) == 3
    unpadded = [SeededSampler(5, shuffle=False, rank=r, world_size=2, pad=False) for r in range(2)]
    assert [u.indices() for u in unpadded] == [[0, 2, 4], [1, 3]] and [len(u) for u in unpadded] == [3, 2]
    items = list(SeededSampler(3, seed=0))
    assert all(isinstance(i, tuple) and len(i) == 2 for i in items)


def test_pad_collate_pads_images_with_zero_and_targets_with_ignore():
    batch = [(torch.ones(3, 4, 6), torch.zeros(4, 6, dtype=torch.int64)), (torch.ones(3, 8, 2), torch.ones(8, 2, dtype=torch.int64))]
    images, targets = PadCollate(ignore_index=255, divisor=4)(batch)
    assert images.shape == (2, 3, 8, 8) and targets.shape == (2, 8, 8)
    assert float(images[0, :, 4:].abs().sum()) == 0.0 and (targets[0, 4:] == 255).all() and (targets[0, :4, :6] == 0).all()
    assert (targets[1, :, 2:] == 255).all() and (targets[1, :, :2] == 1).all()


def test_seeded_augmentation_is_reproducible_and_loader_order_is_seeded(tmp_path: Path):
    from pixelwise.transforms.augment import build_augmentation

    dataset = _dataset(tmp_path, [(32, 32)] * 6)
    aug = build_augmentation("standard", (32, 32), resize_policy="resize")
    ds = SemanticTorchDataset(dataset, _prep(input_size=(32, 32)), aug)
    a, b, c = ds[(0, 11)], ds[(0, 11)], ds[(0, 12)]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])

    def epoch_batches(loader, epoch):
        loader.sampler.set_epoch(epoch)
        return [(x.clone(), y.clone()) for x, y in loader]

    loader = build_loader(ds, 2, shuffle=True, seed=5, num_workers=0)
    first = epoch_batches(loader, 0)
    again = epoch_batches(build_loader(ds, 2, shuffle=True, seed=5, num_workers=0), 0)
    assert len(first) == 3
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(first, again))
    other = epoch_batches(loader, 1)
    assert not all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(first, other))


def test_drop_last_and_workers(tmp_path: Path):
    ds = SemanticTorchDataset(_dataset(tmp_path, [(16, 16)] * 5), _prep(input_size=(32, 32)))
    assert len(build_loader(ds, 2, shuffle=True, num_workers=0)) == 2  # last single image dropped
    assert len(build_loader(ds, 2, shuffle=False, num_workers=0)) == 3
    assert build_loader(ds, 2, num_workers=None).num_workers == 0  # cached, no augmentation: no worker


@pytest.mark.parametrize(("cache", "augment", "cores", "expected"), [(True, False, 2, 0), (True, True, 2, 1), (False, False, 2, 1), (False, True, 16, 4)])
def test_default_num_workers(tmp_path: Path, cache: bool, augment: bool, cores: int, expected: int):
    from pixelwise.data.loader import default_num_workers

    aug = (lambda image, semantic, seed=None: None) if augment else None
    ds = SemanticTorchDataset(_dataset(tmp_path, [(8, 8)]), _prep(input_size=None, resize_policy="none"), aug, cache=cache)
    assert default_num_workers(ds, cpu_count=cores) == expected
