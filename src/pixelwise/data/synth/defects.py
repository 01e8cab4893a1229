"""Theme ``defects``: small, low-contrast flaws on a machined metal part.

Stuff: ``background`` (dark conveyor beyond the part's edge, when an edge is in view),
``surface`` (brushed metal: streaks in a random direction, mottling, a specular band, a
bright chamfer along the edge) and ``hole`` (drilled holes: dark bore, bright rim).
Things (only on the surface, later on top): ``scratch`` (thin curved line, brighter or
darker than the metal), ``dent`` (elliptic depression shaded by the light direction,
its outline invisible on the dark side) and ``stain`` (irregular blob, tinted, soft
edged). Many images have no defect at all, as on a real line.
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
    lighting_field,
    lighting_label,
    to_uint8,
    value_noise,
)

__all__ = ["DEFECT_NAMES", "defects_taxonomy", "render_defects"]

DEFECT_NAMES = ("scratch", "dent", "stain")
_STUFF = ("background", "surface", "hole")
_METALS = {"steel": (0.97, 1.0, 1.05), "aluminium": (1.0, 1.0, 1.0), "brass": (1.1, 0.95, 0.68), "titanium": (1.0, 0.97, 0.94)}
_STAINS = ((0.78, 0.62, 0.42), (0.55, 0.55, 0.6), (1.12, 1.08, 0.95))
_MIN_AREA = 6


def defects_taxonomy() -> Taxonomy:
    """0 background, 1 surface, 2 hole (stuff); 3 scratch, 4 dent, 5 stain (things)."""
    return Taxonomy.from_names(
        [*_STUFF, *DEFECT_NAMES],
        stuff=_STUFF,
        colors=[(20, 20, 20), (150, 150, 160), (70, 40, 120), (255, 40, 40), (255, 200, 0), (0, 200, 120)],
        supercategories={n: "defect" for n in DEFECT_NAMES},
    )


def _brushed(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """``(H, W) float32`` unit-variance streak texture in a random direction.

    Noise is blurred along x on a canvas 4x narrower than needed (streaks are smooth along
    their length anyway), then one affine warp stretches it back and rotates it.
    """
    height, width = shape
    side = int(np.ceil(np.hypot(height, width))) + 4
    squeeze = 4
    noise = rng.random((side, side // squeeze + 1), dtype=np.float32)
    sigma_x = float(rng.uniform(6, 20) * scale) / squeeze
    streaks = cv2.GaussianBlur(noise, (0, 0), sigmaX=max(sigma_x, 0.5), sigmaY=float(rng.uniform(0.4, 0.9)))
    angle = np.deg2rad(float(rng.uniform(-30, 30) + rng.choice([0, 90])))
    c, s = np.cos(angle), np.sin(angle)
    # output pixel p maps to canvas point R(p - centre_out) scaled by 1/squeeze along x, + centre_canvas
    rot = np.array([[c / squeeze, s / squeeze], [-s, c]])
    centre_out = np.array([width / 2, height / 2])
    centre_in = np.array([streaks.shape[1] / 2, streaks.shape[0] / 2])
    matrix = np.hstack([rot, (centre_in - rot @ centre_out)[:, None]])
    out = cv2.warpAffine(streaks, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    out -= float(out.mean())
    return out / (float(out.std()) + 1e-6)


def _part(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float, float]]]:
    """Stuff labels, distance to the nearest part edge, and the holes ``(cx, cy, r)``."""
    height, width = shape
    size = min(height, width)
    ys = np.arange(height, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(width, dtype=np.float32)[None, :] + 0.5
    edge_dist = np.full(shape, np.float32(1e6))
    for side in rng.choice(4, size=int(rng.choice([0, 1, 2], p=[0.45, 0.4, 0.15])), replace=False):
        tilt = rng.uniform(-0.25, 0.25)
        c, s = np.cos(tilt), np.sin(tilt)
        normal = [(s, c), (s, -c), (c, s), (-c, s)][side]  # into the part: from the top, bottom, left, right edge
        depth = rng.uniform(0.08, 0.35)
        anchor = [
            (width / 2, depth * height),
            (width / 2, (1 - depth) * height),
            (depth * width, height / 2),
            ((1 - depth) * width, height / 2),
        ][side]
        dist = (xs - anchor[0]) * np.float32(normal[0]) + (ys - anchor[1]) * np.float32(normal[1])
        edge_dist = np.minimum(edge_dist, dist)
    labels = np.where(edge_dist >= 0, 1, 0).astype(np.uint8)
    holes: list[tuple[float, float, float]] = []
    for _ in range(int(rng.choice([0, 1, 2], p=[0.5, 0.35, 0.15]))):
        r = size * rng.uniform(0.04, 0.09)
        cx, cy = rng.uniform(r, width - r), rng.uniform(r, height - r)
        if edge_dist[int(cy), int(cx)] < r + 3:
            continue
        holes.append((cx, cy, r))
        labels[(xs - cx) ** 2 + (ys - cy) ** 2 < r * r] = 2
    return labels, edge_dist, holes


def _point_on(rng: np.random.Generator, free: np.ndarray) -> tuple[float, float] | None:
    """A random pixel centre ``(x, y)`` inside ``free`` (None after 20 misses)."""
    height, width = free.shape
    for _ in range(20):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        if free[int(y), int(x)]:
            return x, y
    return None


def _crop(cx: float, cy: float, reach: float, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 1, shape[0])
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 1, shape[1])
    return y0, x0, y1, x1


def render_defects(rng: np.random.Generator, shape: tuple[int, int], taxonomy: Taxonomy) -> SyntheticScene:
    """Render one ``defects`` scene; see the module docstring."""
    height, width = shape
    size = min(height, width)
    scale = size / 256
    labels, edge_dist, holes = _part(rng, shape)
    ys = np.arange(height, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(width, dtype=np.float32)[None, :] + 0.5

    # metal, background, chamfer, holes
    grey = np.float32(rng.uniform(0.35, 0.7))
    metal_name = str(rng.choice(list(_METALS)))
    band_angle = rng.uniform(0, np.pi)
    band_x, band_y = width * rng.uniform(0.2, 0.8), height * rng.uniform(0.2, 0.8)
    band = (xs - band_x) * np.float32(np.cos(band_angle)) + (ys - band_y) * np.float32(np.sin(band_angle))
    specular = np.float32(rng.uniform(0.0, 0.3)) * np.exp(-((band / (size * rng.uniform(0.08, 0.3))) ** 2))
    streaks = np.float32(rng.uniform(0.03, 0.09)) * _brushed(rng, shape, scale)
    metal = grey * (1.0 + streaks + 0.15 * fractal_noise(rng, shape, size / 4)) + specular
    floor = np.float32(rng.uniform(0.04, 0.22)) * (1.0 + 0.5 * fractal_noise(rng, shape, size / 12, octaves=2))
    chamfer = (edge_dist >= 0) & (edge_dist < rng.uniform(1.5, 3.5) * scale)
    gray = np.where(labels == 0, floor, metal)
    gray = np.where(chamfer, np.minimum(gray + 0.25, 1.0), gray)
    for cx, cy, r in holes:
        rr = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
        bore = np.float32(0.06) + 0.1 * np.clip((xs - cx + ys - cy) / (2 * r) + 0.5, 0, 1)
        gray = np.where(rr < r, np.where(rr > r - 1.5 * max(scale, 1.0), gray + 0.2, bore), gray)
    image = np.asarray(_METALS[metal_name], dtype=np.float32)[:, None, None] * gray[None]  # planar RGB

    # defects
    canvas = LayeredCanvas(shape)
    free = labels == 1
    count = min(int(rng.poisson(1.6)), 6)
    for _ in range(count):
        kind = int(rng.choice(3, p=[0.45, 0.3, 0.25]))
        where = _point_on(rng, free)
        if where is None:
            break
        cx, cy = where
        if kind == 0:  # scratch: quadratic Bezier polyline
            length = size * rng.uniform(0.1, 0.5)
            heading = rng.uniform(0, 2 * np.pi)
            end = np.array([cx + length * np.cos(heading), cy + length * np.sin(heading)])
            bend = length * rng.uniform(-0.3, 0.3)
            ctrl = (np.array([cx, cy]) + end) / 2 + bend * np.array([-np.sin(heading), np.cos(heading)])
            t = np.linspace(0, 1, 24)[:, None]
            pts = (1 - t) ** 2 * np.array([cx, cy]) + 2 * (1 - t) * t * ctrl + t**2 * end
            thickness = int(rng.choice([1, 1, 2, 3])) * max(int(round(scale)), 1)
            drawn = np.zeros(shape, dtype=np.uint8)
            cv2.polylines(drawn, [np.round((pts - 0.5) * 16).astype(np.int32)], False, 1, thickness, cv2.LINE_8, 4)
            mask = (drawn > 0) & free
            delta = rng.uniform(0.06, 0.2) * (1 if rng.random() < 0.65 else -1)
            yy, xx = np.nonzero(mask)
            image[:, yy, xx] += (delta * (0.6 + 0.4 * rng.random(len(yy)))).astype(np.float32)[None, :]
            canvas.add(mask, 3)
        elif kind == 1:  # dent: shaded elliptic depression
            a = size * rng.uniform(0.025, 0.07)
            b = a * rng.uniform(0.5, 1.0)
            y0, x0, y1, x1 = _crop(cx, cy, a + 2, shape)
            turn, light = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
            dx, dy = xs[:, x0:x1] - cx, ys[y0:y1] - cy
            u = (dx * np.cos(turn) + dy * np.sin(turn)) / a
            v = (-dx * np.sin(turn) + dy * np.cos(turn)) / b
            rho2 = u * u + v * v
            mask = (rho2 < 1.0) & free[y0:y1, x0:x1]
            shade = rng.uniform(0.1, 0.3) * (u * np.cos(light) + v * np.sin(light)) - 0.05 * (rho2 > 0.7)
            view = image[:, y0:y1, x0:x1]
            view[:, mask] *= (1.0 + shade[mask]).astype(np.float32)[None, :]
            canvas.add(mask, 4, (y0, x0))
        else:  # stain: irregular soft blob, tinted
            radius = size * rng.uniform(0.03, 0.1)
            y0, x0, y1, x1 = _crop(cx, cy, radius * 1.5 + 2, shape)
            dx, dy = xs[:, x0:x1] - cx, ys[y0:y1] - cy
            rho = np.sqrt(dx * dx + dy * dy) / radius
            phi = np.arctan2(dy, dx)
            wobble = 1.0 + 0.2 * np.cos(2 * phi + rng.uniform(0, 6.3)) + 0.12 * np.cos(3 * phi + rng.uniform(0, 6.3))
            blotch = value_noise(rng, (y1 - y0, x1 - x0), max(radius / 2, 1.0)) - 0.5
            field = 1.0 - rho / wobble + 0.5 * blotch
            mask = (field > 0) & free[y0:y1, x0:x1]
            alpha = (rng.uniform(0.12, 0.35) * np.clip(field / 0.2, 0, 1))[mask][None, :]
            tint = np.asarray(_STAINS[int(rng.integers(len(_STAINS)))], dtype=np.float32)[:, None]
            view = image[:, y0:y1, x0:x1]
            view[:, mask] = (view[:, mask] * (1 - alpha + alpha * tint)).astype(np.float32)
            canvas.add(mask, 5, (y0, x0))

    gain = float(rng.uniform(0.55, 1.3))
    strength = float(rng.uniform(0.0, 0.9))
    image *= gain * lighting_field(rng, shape, strength)
    blur = float(rng.uniform(0.0, 1.2)) * scale
    image = apply_blur(image, blur)
    noise = float(rng.uniform(0.005, 0.035))
    image = add_noise(rng, image, noise)
    annotation = build_annotation(labels, canvas.id_map, canvas.class_ids, canvas.extents, taxonomy, _MIN_AREA)
    metadata: dict[str, Any] = {
        "lighting": lighting_label(gain, strength),
        "gain": round(gain, 4),
        "light_unevenness": round(strength, 4),
        "blur_sigma": round(blur, 4),
        "noise_sigma": round(noise, 4),
        "material": metal_name,
        "num_things": len(annotation.instances) if annotation.instances is not None else 0,
    }
    return SyntheticScene(to_uint8(image), annotation, metadata)
