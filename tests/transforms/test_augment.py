"""Joint augmentation: masks stay aligned with pixels, labels are never interpolated, boxes follow masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelwise.core.errors import ShapeError
from pixelwise.core.labels import InstanceSet, SemanticMap
from pixelwise.core.masks import masks_to_boxes
from pixelwise.transforms import build_augmentation, list_presets

PRESETS = ["none", "light", "standard", "heavy"]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small tensors: one thread is faster and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
H, W = 48, 64


def _blobs() -> tuple[np.ndarray, InstanceSet]:
    """A semantic map with 3 classes and 3 disjoint instances (class ids 3, 7, 9)."""
    masks = np.zeros((3, H, W), bool)
    masks[0, 5:20, 6:22] = True
    yy, xx = np.mgrid[:H, :W]
    masks[1] = (yy - 30) ** 2 + (xx - 40) ** 2 < 64
    masks[2, 38:46, 2:60] = True
    masks[2, 40:44, 20:30] = False  # a hole
    instances = InstanceSet(H, W, np.array([3, 7, 9]), masks)
    semantic = np.zeros((H, W), np.int64)
    semantic[:, W // 2 :] = 1
    for mask, cls in zip(masks, (3, 7, 9)):
        semantic[mask] = cls
    return semantic, instances


def test_presets_listed_and_unknown():
    assert list_presets() == PRESETS
    with pytest.raises(KeyError) as info:
        build_augmentation("extreme", 32)
    assert all(name in str(info.value) for name in PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("size, expected", [(32, (32, 32)), ((40, 24), (40, 24)), (None, (H, W))])
def test_output_types_and_sizes(preset, size, expected):
    semantic, instances = _blobs()
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    out = build_augmentation(preset, size)(image, semantic, instances, seed=1)
    assert out.image.shape == (3, *expected) and out.image.dtype == torch.float32
    assert 0.0 <= float(out.image.min()) and float(out.image.max()) <= 1.0
    assert out.semantic.shape == expected and out.semantic.dtype == torch.int64
    n = len(out.labels)
    assert out.masks.shape == (n, *expected) and out.masks.dtype == torch.bool
    assert out.boxes.shape == (n, 4) and out.iscrowd.shape == (n,)
    assert set(out.target()) == {"boxes", "labels", "masks", "semantic"}


def test_none_preset_is_identity_at_same_size():
    semantic, instances = _blobs()
    image = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    out = build_augmentation("none", (H, W))(image, semantic, instances)
    np.testing.assert_array_equal((out.image * 255).round().byte().permute(1, 2, 0).numpy(), image)
    np.testing.assert_array_equal(out.semantic.numpy(), semantic)
    np.testing.assert_array_equal(out.masks.numpy(), instances.masks)


def test_none_letterbox_matches_preprocess_geometry():
    from pixelwise.transforms.preprocess import PreprocessConfig, plan_geometry

    semantic, _ = _blobs()
    out = build_augmentation("none", (64, 64))(np.full((H, W, 3), 200, np.uint8), semantic)
    geometry = plan_geometry(H, W, PreprocessConfig(input_size=(64, 64), resize_policy="letterbox"))
    top, left = geometry.offset
    valid = out.semantic != 255
    rows = torch.nonzero(valid.any(dim=1)).flatten()
    cols = torch.nonzero(valid.any(dim=0)).flatten()
    assert (int(rows[0]), int(cols[0])) == (top, left)
    assert (int(rows[-1]) + 1 - top, int(cols[-1]) + 1 - left) == geometry.scaled
    assert float(out.image[:, ~valid].max()) == 0.0  # padded image pixels are 0


def _border(mask: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Pixels within ``radius`` of the edge of ``mask`` (dilation minus erosion)."""
    m = mask.float()[None, None]
    dilated = torch.nn.functional.max_pool2d(m, 2 * radius + 1, 1, radius)[0, 0] > 0
    eroded = -torch.nn.functional.max_pool2d(-m, 2 * radius + 1, 1, radius)[0, 0] > 0
    return dilated & ~eroded


@pytest.mark.parametrize("preset", ["light", "standard", "heavy"])
def test_masks_stay_aligned_with_pixels(preset):
    """Paint the image white exactly where the mask is; after augmentation the bright pixels are the mask."""
    semantic, instances = _blobs()
    fg = instances.masks.any(axis=0)
    image = np.repeat(np.where(fg[..., None], 255, 0).astype(np.uint8), 3, axis=2)
    aug = build_augmentation(preset, (40, 56))
    ious, agreements = [], []
    for seed in range(25):
        out = aug(image, fg.astype(np.int64), instances, seed=seed)
        grey = out.image.mean(dim=0)
        mask = out.semantic == 1
        if int(mask.sum()) < 20:
            continue
        bright = grey > 0.5 * float(grey[mask].median())  # photometric changes are monotone; black stays ~0
        ious.append(float((bright & mask).sum() / (bright | mask).sum()))
        # away from interpolation borders (1 px around mask and padding edges) they must coincide
        inner = (out.semantic != 255) & ~_border(mask) & ~_border(out.semantic == 255)
        agreements.append(float((bright == mask)[inner].float().mean()))
        # the instance masks are exactly the semantic foreground (same geometry, same resampling)
        assert torch.equal(out.masks.any(dim=0), mask)
    assert len(ious) >= 15
    assert np.mean(agreements) >= 0.98 and min(agreements) >= 0.95
    assert np.mean(ious) >= 0.8


@pytest.mark.parametrize("preset", PRESETS)
def test_semantic_values_never_interpolated(preset):
    rng = np.random.default_rng(3)
    semantic = rng.choice(np.array([0, 3, 7, 200, 1000]), size=(6, 8))
    semantic = np.kron(semantic, np.ones((8, 8), np.int64))[:H, :W]  # 8x8 blocks
    aug = build_augmentation(preset, (40, 40))
    for seed in range(10):
        out = aug(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), semantic, seed=seed)
        assert set(out.semantic.unique().tolist()) <= {0, 3, 7, 200, 1000, 255}


def test_ignore_fill_for_semantic_zero_for_instances():
    semantic, instances = _blobs()
    aug = build_augmentation("standard", (48, 64), ignore_index=250)
    seen_fill = False
    for seed in range(20):
        out = aug(np.full((H, W, 3), 255, np.uint8), semantic, instances, seed=seed)
        outside = out.semantic == 250
        seen_fill |= bool(outside.any())
        assert not bool((out.masks & outside).any())
        if bool(outside.any()):
            assert float((out.image.mean(dim=0)[outside] < 0.5).float().mean()) >= 0.9
    assert seen_fill


@pytest.mark.parametrize("preset", ["light", "standard", "heavy"])
def test_boxes_equal_boxes_of_masks(preset):
    semantic, instances = _blobs()
    aug = build_augmentation(preset, (40, 56))
    for seed in range(15):
        out = aug(np.zeros((H, W, 3), np.uint8), semantic, instances, seed=seed)
        expected = masks_to_boxes(out.masks.numpy())
        np.testing.assert_allclose(out.boxes.numpy(), expected, atol=1e-6)


def test_vanished_instances_dropped_consistently():
    semantic, instances = _blobs()
    aug = build_augmentation("heavy", (32, 32), min_instance_area=4)
    dropped = 0
    for seed in range(40):
        out = aug(np.zeros((H, W, 3), np.uint8), semantic, instances, seed=seed)
        n = len(out.labels)
        dropped += 3 - n
        assert out.masks.shape[0] == out.boxes.shape[0] == out.iscrowd.shape[0] == n
        assert bool((out.masks.flatten(1).sum(dim=1) >= 4).all())
        for mask, label in zip(out.masks, out.labels):
            # each surviving mask lies on its own class in the semantic map: labels were not shuffled
            assert bool((out.semantic[mask] == label).all())
        for cls in (3, 7, 9):
            visible = int((out.semantic == cls).sum())
            kept = cls in out.labels.tolist()
            assert kept == (visible >= 4)
    assert dropped > 0


def test_overlapping_instances_keep_their_own_masks():
    masks = np.zeros((2, H, W), bool)
    masks[0, 10:30, 10:40] = True
    masks[1, 20:40, 30:60] = True  # overlaps the first
    instances = InstanceSet(H, W, np.array([1, 2]), masks, iscrowd=np.array([False, True]))
    out = build_augmentation("none", (H, W))(np.zeros((H, W, 3), np.uint8), None, instances)
    np.testing.assert_array_equal(out.masks.numpy(), masks)
    assert out.iscrowd.tolist() == [False, True] and out.semantic is None


def test_seed_is_reproducible_and_leaves_global_rng_alone():
    semantic, instances = _blobs()
    image = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    aug = build_augmentation("heavy", 40)
    state = torch.random.get_rng_state()
    a = aug(image, semantic, instances, seed=5)
    b = aug(image, semantic, instances, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.image, b.image) and torch.equal(a.semantic, b.semantic) and torch.equal(a.masks, b.masks)
    torch.manual_seed(0)
    c = aug(image, semantic, instances)
    torch.manual_seed(0)
    d = aug(image, semantic, instances)
    assert torch.equal(c.image, d.image)


def test_accepts_tensor_image_and_semantic_map():
    semantic, instances = _blobs()
    image = torch.rand(3, H, W)
    out = build_augmentation("light", 32)(image, SemanticMap(semantic.astype(np.uint16)), instances, seed=0)
    assert out.image.shape == (3, 32, 32) and out.semantic.dtype == torch.int64


@pytest.mark.parametrize(
    "image, semantic, instances",
    [
        (np.zeros((H, W), np.uint8), None, None),
        (np.zeros((H, W, 4), np.uint8), None, None),
        (np.zeros((H, W, 3), np.float32), None, None),
        (torch.zeros(H, W, 3), None, None),
        (np.zeros((H, W, 3), np.uint8), np.zeros((H, W + 1), np.int64), None),
        (np.zeros((H, W, 3), np.uint8), np.zeros((H, W), np.float32), None),
        (np.zeros((H, W, 3), np.uint8), None, InstanceSet.empty(H + 1, W)),
    ],
)
def test_shape_errors(image, semantic, instances):
    with pytest.raises(ShapeError):
        build_augmentation("none", 32)(image, semantic, instances)


def test_empty_instances():
    out = build_augmentation("standard", 32)(np.zeros((H, W, 3), np.uint8), None, InstanceSet.empty(H, W), seed=0)
    assert out.masks.shape == (0, 32, 32) and out.boxes.shape == (0, 4) and out.labels.shape == (0,)


@pytest.mark.parametrize(
    "size, policy, raises", [(0, "letterbox", ValueError), (32, "crop", ValueError), ((1, 2, 3), "letterbox", ValueError)]
)
def test_bad_arguments(size, policy, raises):
    with pytest.raises(raises):
        build_augmentation("light", size, resize_policy=policy)


def test_resize_policy_stretches():
    semantic, _ = _blobs()
    out = build_augmentation("none", (64, 64), resize_policy="resize")(np.zeros((H, W, 3), np.uint8), semantic)
    assert not bool((out.semantic == 255).any())
