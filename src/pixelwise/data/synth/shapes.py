"""Theme ``shapes``: coloured geometric objects standing in a room.

Stuff: ``background`` (a window or opening in the wall showing a distant sky-like
gradient), ``wall`` (upper part, textured, sometimes striped wallpaper) and ``floor``
(lower part, planks drawn in perspective below a slightly tilted horizon).
Things: ``circle``, ``rectangle``, ``triangle``, ``star`` with random colours drawn from the
same distribution as the walls and floors (a third of them take a stuff colour on
purpose), shaded, with soft contact shadows, overlapping (later on top). Objects lower
in the frame are larger (perspective). A model has to learn shape, not colour.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.synth.scene import (
    LayeredCanvas,
    SyntheticScene,
    add_noise,
    apply_blur,
    build_annotation,
    fractal_noise,
    hsv_color,
    lighting_field,
    lighting_label,
    to_uint8,
    unit_noise,
)

__all__ = ["SHAPE_NAMES", "render_shapes", "shapes_taxonomy"]

SHAPE_NAMES = ("circle", "rectangle", "triangle", "star")
_STUFF = ("background", "wall", "floor")
_COLORS = [(70, 130, 180), (190, 170, 140), (120, 90, 60), (230, 60, 60), (60, 180, 75), (255, 200, 40), (160, 60, 220)]
_SHIFT = 4  # sub-pixel bits for cv2.fillPoly
_MIN_AREA = 12


def shapes_taxonomy() -> Taxonomy:
    """0 background, 1 wall, 2 floor (stuff); 3 circle, 4 rectangle, 5 triangle, 6 star (things)."""
    names = [*_STUFF, *SHAPE_NAMES]
    return Taxonomy.from_names(names, stuff=_STUFF, colors=_COLORS, supercategories={n: "shape" for n in SHAPE_NAMES})


def _polygon(kind: str, rng: np.random.Generator, cx: float, cy: float, r: float) -> np.ndarray:
    """``(K, 2) float`` vertices (x, y) of one shape; circles are 48-gons."""
    turn = rng.uniform(0, 2 * np.pi)
    if kind == "circle":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)
    if kind == "rectangle":
        w, h = r * rng.uniform(0.9, 1.7), r * rng.uniform(0.6, 1.3)
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]])
    elif kind == "triangle":
        t = turn + np.deg2rad([0, 120, 240]) + rng.uniform(-0.25, 0.25, size=3)
        rad = r * rng.uniform(1.0, 1.3, size=3)
        return np.stack([cx + rad * np.cos(t), cy + rad * np.sin(t)], axis=1)
    else:  # star
        points = int(rng.integers(5, 7))
        t = turn + np.arange(2 * points) * np.pi / points
        rad = np.where(np.arange(2 * points) % 2 == 0, r * 1.25, r * rng.uniform(0.45, 0.6))
        return np.stack([cx + rad * np.cos(t), cy + rad * np.sin(t)], axis=1)
    c, s = np.cos(turn), np.sin(turn)
    rotated = corners @ np.array([[c, s], [-s, c]])
    return rotated + np.array([cx, cy])


def _fill(points: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Rasterise a polygon (x, y float vertices, edge coordinates) inside its clipped bounding box.

    Returns:
        ``(mask, (y0, x0))``: ``(h, w)`` bool mask of the box whose top-left pixel is
        ``(y0, x0)``; None when the polygon lies outside the image.
    """
    height, width = shape
    x0, y0 = max(int(np.floor(points[:, 0].min())), 0), max(int(np.floor(points[:, 1].min())), 0)
    x1, y1 = min(int(np.ceil(points[:, 0].max())) + 1, width), min(int(np.ceil(points[:, 1].max())) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    # vertex coordinates are pixel edges; cv2 rasterises pixel centres, with 4 sub-pixel bits
    pts = np.round((points - (x0 + 0.5, y0 + 0.5)) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return mask.view(bool), (y0, x0)


def _floor_texture(rng: np.random.Generator, shape: tuple[int, int], horizon: tuple[float, float]) -> np.ndarray:
    """Planks with grain, darker far away, seen in perspective: ``(H, W) float32`` around 0.

    The texture is drawn flat on a small canvas and mapped onto the image with a
    homography whose far edge lies on the horizon line ``(y at x=0, y at x=W)``.
    """
    height, width = shape
    side = 128
    rows = np.arange(side, dtype=np.float32)[:, None]
    boards = int(rng.integers(5, 12))
    board = (rows * boards / side).astype(np.int32)
    tones = rng.uniform(-0.08, 0.08, boards + 1).astype(np.float32)
    seams = ((rows * boards / side) % 1.0 < 0.06).astype(np.float32)
    grain = 0.3 * fractal_noise(rng, (side, side), 16, octaves=3)
    flat = tones[board] - 0.15 * seams + grain + np.float32(0.12) * (rows / side - 0.5)
    if rng.random() < 0.5:  # boards across or along the view
        flat = np.ascontiguousarray(flat.T)
    y_left, y_right = horizon
    spread = rng.uniform(0.4, 1.2)
    src = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
    dst = np.float32(
        [
            [-0.25 * width, y_left - 0.25 * (y_right - y_left)],
            [1.25 * width, y_right + 0.25 * (y_right - y_left)],
            [(1 + spread) * width, height],
            [-spread * width, height],
        ]
    )
    matrix = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(flat, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def _stuff(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Stuff label map, its textured planar ``(3, H, W)`` image and the base colours used."""
    height, width = shape
    scale = min(height, width)
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    y_mid = height * rng.uniform(0.3, 0.65)
    slope = rng.uniform(-0.15, 0.15)
    horizon = y_mid + np.float32(slope) * (xs + 0.5 - width / 2)  # (1, W) y of the horizon line
    floor = ys + 0.5 >= horizon
    labels = floor.astype(np.uint8) + np.uint8(1)

    wall_color, floor_color = hsv_color(rng, (0.05, 0.8)), hsv_color(rng, (0.05, 0.8))
    wall_tex = 0.25 * fractal_noise(rng, shape, scale / 6, octaves=4)
    if rng.random() < 0.4:  # wallpaper stripes
        period = scale * rng.uniform(0.04, 0.12)
        wall_tex += 0.08 * np.sign(np.sin(2 * np.pi * xs / period)).astype(np.float32)
    floor_tex = _floor_texture(rng, shape, (y_mid - slope * width / 2, y_mid + slope * width / 2))
    tex = np.where(floor, floor_tex, wall_tex)
    tex += np.float32(1.0)
    floor_weight = floor.astype(np.float32)
    image = np.empty((3, height, width), dtype=np.float32)  # planar RGB
    for channel in range(3):
        np.multiply(wall_color[channel] + (floor_color[channel] - wall_color[channel]) * floor_weight, tex, out=image[channel])

    colors = [wall_color, floor_color]
    if rng.random() < 0.65:  # a window (background class) in the wall
        top_wall = float(np.min(horizon))
        if top_wall > 0.15 * height:
            w = width * rng.uniform(0.15, 0.45)
            h = top_wall * rng.uniform(0.35, 0.8)
            x0 = rng.uniform(0, width - w)
            y0 = rng.uniform(0, max(top_wall - h, 1.0))
            r0, r1, c0, c1 = int(y0), min(int(np.ceil(y0 + h)), height), int(x0), min(int(np.ceil(x0 + w)), width)
            wy, wx = ys[r0:r1], xs[:, c0:c1]
            window = (wx >= x0) & (wx < x0 + w) & (wy >= y0) & (wy < y0 + h) & ~floor[r0:r1, c0:c1]
            if rng.random() < 0.5:  # arched top
                inside_arch = ((wx - (x0 + w / 2)) / (w / 2)) ** 2 + ((wy - (y0 + w / 2)) / (w / 2)) ** 2 <= 1.0
                window &= inside_arch | (wy >= y0 + w / 2)
            sky = hsv_color(rng, (0.1, 0.6), (0.5, 1.0))
            clouds = 0.3 * fractal_noise(rng, window.shape, scale / 5, octaves=3) + 0.25 * (wy / height)
            view, label_view = image[:, r0:r1, c0:c1], labels[r0:r1, c0:c1]
            view[:, window] = sky[:, None] * (1.0 + clouds[window])[None, :]
            label_view[window] = 0
            colors.append(sky)
            grow = max(1, scale // 96)
            f0, f1, g0, g1 = max(r0 - grow, 0), min(r1 + grow, height), max(c0 - grow, 0), min(c1 + grow, width)
            full = labels[f0:f1, g0:g1] == 0
            frame = cv2.dilate(full.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=grow).astype(bool) & ~full
            image[:, f0:f1, g0:g1][:, frame] *= 0.6  # window frame (part of the wall)
    return labels, image, colors


def render_shapes(rng: np.random.Generator, shape: tuple[int, int], taxonomy: Taxonomy) -> SyntheticScene:
    """Render one ``shapes`` scene; see the module docstring."""
    height, width = shape
    scale = min(height, width)
    labels, image, stuff_colors = _stuff(rng, shape)
    canvas = LayeredCanvas(shape)
    count = int(rng.integers(1, 9))
    light_dir = rng.uniform(0, 2 * np.pi)
    for _ in range(count):
        kind_index = int(rng.integers(len(SHAPE_NAMES)))
        cy = rng.uniform(0.05, 1.0) * height
        cx = rng.uniform(0.0, 1.0) * width
        r = scale * rng.uniform(0.05, 0.15) * (0.6 + 0.8 * cy / height)
        points = _polygon(SHAPE_NAMES[kind_index], rng, cx, cy, r)
        drawn = _fill(points, shape)
        if drawn is None or not drawn[0].any():
            continue
        mask, (y0, x0) = drawn
        # contact shadow: a soft dark ellipse under the object (not labelled), drawn in a crop
        base_y = float(points[:, 1].max())
        axes = (max(int(r * 1.1), 1), max(int(r * 0.3), 1))
        sigma = max(r / 4, 1.0)
        pad = int(3 * sigma) + 1
        sy0, sy1 = max(int(base_y) - axes[1] - pad, 0), min(int(base_y) + axes[1] + pad + 1, height)
        sx0, sx1 = max(int(cx) - axes[0] - pad, 0), min(int(cx) + axes[0] + pad + 1, width)
        if sy0 < sy1 and sx0 < sx1:
            shadow = np.zeros((sy1 - sy0, sx1 - sx0), dtype=np.float32)
            cv2.ellipse(shadow, (int(cx) - sx0, int(base_y) - sy0), axes, 0, 0, 360, 1.0, -1)
            shadow = cv2.GaussianBlur(shadow, (0, 0), sigma)
            image[:, sy0:sy1, sx0:sx1] *= 1.0 - 0.35 * shadow
        # object appearance: colour (sometimes a stuff colour), directional shading, grain
        if rng.random() < 0.35:
            color = stuff_colors[int(rng.integers(len(stuff_colors)))] * rng.uniform(0.85, 1.15, size=3).astype(np.float32)
        else:
            color = hsv_color(rng)
        h, w = mask.shape
        gy = np.arange(y0, y0 + h, dtype=np.float32)[:, None] - np.float32(cy)
        gx = np.arange(x0, x0 + w, dtype=np.float32)[None, :] - np.float32(cx)
        shading = 1.0 + np.float32(0.25 / max(r, 1.0)) * (gx * np.float32(np.cos(light_dir)) + gy * np.float32(np.sin(light_dir)))
        shading = shading * (1.0 + 0.08 * unit_noise(rng, (h, w)))
        view = image[:, y0 : y0 + h, x0 : x0 + w]
        np.copyto(view, color[:, None, None] * shading[None], where=mask[None])
        canvas.add(mask, len(_STUFF) + kind_index, (y0, x0))

    strength = float(rng.uniform(0.0, 1.0))
    gain = float(rng.uniform(0.55, 1.3))
    blur = float(rng.choice([0.0, rng.uniform(0.3, 1.6)], p=[0.4, 0.6]))
    noise = float(rng.uniform(0.005, 0.05))
    image *= gain * lighting_field(rng, shape, strength)
    image = apply_blur(image, blur * scale / 256)
    image = add_noise(rng, image, noise)
    annotation = build_annotation(labels, canvas.id_map, canvas.class_ids, canvas.extents, taxonomy, _MIN_AREA)
    metadata: dict[str, Any] = {
        "lighting": lighting_label(gain, strength),
        "gain": round(gain, 4),
        "light_unevenness": round(strength, 4),
        "blur_sigma": round(blur * scale / 256, 4),
        "noise_sigma": round(noise, 4),
        "num_things": len(annotation.instances) if annotation.instances is not None else 0,
    }
    return SyntheticScene(to_uint8(image), annotation, metadata)
