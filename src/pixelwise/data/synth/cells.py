"""Theme ``cells``: fluorescence-microscopy-like nuclei, many of them touching.

Stuff: ``background`` (dark, faint autofluorescence texture, small unlabelled debris).
Things: ``nucleus`` (irregular ellipses with chromatin texture, dim edges) and
``dividing`` (brighter, compact, dumbbell-shaped: two lobes of one instance).

Nuclei grow in clusters, so neighbours press against each other: where two shapes
overlap, each pixel goes to the nucleus whose boundary is relatively farthest (smallest
normalised distance), which gives straight shared borders like real touching nuclei;
the image darkens slightly along those borders, but not always enough to see them.
The optics blur (PSF), uneven illumination and shot noise (Gaussian approximation of
Poisson) make dim nuclei overlap bright background in intensity. Grayscale is rendered
with a channel tint (DAPI blue, GFP green, red or plain gray).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from pixelwise.core.taxonomy import Taxonomy
from pixelwise.data.synth.scene import (
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

__all__ = ["cells_taxonomy", "render_cells"]

_TINTS = {
    "dapi": (0.35, 0.55, 1.0),
    "gfp": (0.25, 1.0, 0.35),
    "red": (1.0, 0.3, 0.25),
    "gray": (1.0, 1.0, 1.0),
}
_MIN_AREA = 10
_FAR = np.float32(9.0)


def cells_taxonomy() -> Taxonomy:
    """0 background (stuff); 1 nucleus, 2 dividing (things)."""
    return Taxonomy.from_names(
        ["background", "nucleus", "dividing"],
        stuff=["background"],
        colors=[(0, 0, 0), (60, 120, 255), (255, 80, 200)],
        supercategories={"nucleus": "cell", "dividing": "cell"},
    )


def _place(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Nuclei as rows ``(cx, cy, r, aspect, angle, dividing)``; a share of them grow in touching clusters.

    Returns:
        ``(N, 6) float64``.
    """
    height, width = shape
    r0 = rng.uniform(6.0, 11.0) * scale
    target = max(int(round(height * width / 65536 * rng.uniform(14, 45) * (8.5 * scale / r0) ** 2)), 3)
    clustered = rng.uniform(0.35, 0.85)
    tries = target * 6
    # every random number the loop may need, drawn at once (scalar draws dominate otherwise)
    radius = r0 * rng.uniform(0.75, 1.3, tries)
    join = rng.random(tries) < clustered
    pick_cluster, pick_member = rng.random(tries), rng.random(tries)
    turn, gap = rng.uniform(0, 2 * np.pi, tries), rng.uniform(0.72, 0.95, tries)
    free_x, free_y = rng.uniform(0, width, tries), rng.uniform(0, height, tries)
    aspect, angle, divides = rng.uniform(0.65, 1.0, tries), rng.uniform(0, np.pi, tries), rng.random(tries) < 0.1
    table = np.zeros((target, 6))
    count = 0
    clusters: list[list[int]] = []
    for t in range(tries):
        if count == target:
            break
        r = radius[t]
        if clusters and join[t]:  # next to a member of a cluster, pressed against it
            members = clusters[int(pick_cluster[t] * len(clusters))]
            j = members[int(pick_member[t] * len(members))]
            dist = (table[j, 2] + r) * gap[t]
            cx, cy, min_gap = table[j, 0] + dist * np.cos(turn[t]), table[j, 1] + dist * np.sin(turn[t]), 0.68
        else:
            cx, cy, min_gap, members = free_x[t], free_y[t], 1.05, []
        if not (-0.3 * r <= cx <= width + 0.3 * r and -0.3 * r <= cy <= height + 0.3 * r):
            continue
        if count and np.any(np.hypot(table[:count, 0] - cx, table[:count, 1] - cy) < min_gap * (table[:count, 2] + r)):
            continue
        if members:
            members.append(count)
        else:
            clusters.append([count])
        table[count] = (cx, cy, r, aspect[t], angle[t], float(divides[t]))
        count += 1
    return table[:count]


def _distance(
    xs: np.ndarray, ys: np.ndarray, cx: np.ndarray, cy: np.ndarray, a: np.ndarray, b: np.ndarray, angle: np.ndarray, wobble: np.ndarray
) -> np.ndarray:
    """Normalised distance (< 1 inside) to ellipses whose radius wobbles with angle, for a batch.

    Args:
        xs, ys: ``(K, 1, S)`` and ``(K, S, 1)`` float32 pixel-centre coordinates of K crops.
        cx, cy, a, b, angle: ``(K,)`` centre, semi-axes and orientation of each ellipse.
        wobble: ``(K, 4)``: radius ``1 + w0 cos(2 phi + w1) + w2 cos(3 phi + w3)``; the
            harmonics are expanded as polynomials of ``cos phi``, ``sin phi`` (no
            trigonometric call per pixel).

    Returns:
        ``(K, S, S) float32``.
    """

    def col(values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float32).reshape(-1, 1, 1)

    c, s = col(np.cos(angle)), col(np.sin(angle))
    w2c, w2s = col(wobble[:, 0] * np.cos(wobble[:, 1])), col(wobble[:, 0] * np.sin(wobble[:, 1]))
    w3c, w3s = col(wobble[:, 2] * np.cos(wobble[:, 3])), col(wobble[:, 2] * np.sin(wobble[:, 3]))
    dx, dy = xs - col(cx), ys - col(cy)
    u = (dx * c + dy * s) * col(1.0 / a)
    v = (dy * c - dx * s) * col(1.0 / b)
    rho = np.sqrt(u * u + v * v) + np.float32(1e-6)
    cu, sv = u / rho, v / rho  # cos phi, sin phi
    cos2, sin2 = cu * cu - sv * sv, 2.0 * cu * sv
    cos3, sin3 = cu * (cos2 - 2.0 * sv * sv), sv * (2.0 * cu * cu + cos2)
    radius = 1.0 + (cos2 * w2c - sin2 * w2s) + (cos3 * w3c - sin3 * w3s)
    return rho / radius


def render_cells(rng: np.random.Generator, shape: tuple[int, int], taxonomy: Taxonomy) -> SyntheticScene:
    """Render one ``cells`` scene; see the module docstring."""
    height, width = shape
    scale = min(height, width) / 256
    nuclei = _place(rng, shape, scale)
    count = len(nuclei)
    cx, cy, r, aspect, angle, dividing = (nuclei[:, k] for k in range(6))
    wobble = np.stack(
        [rng.uniform(0, 0.07, count), rng.uniform(0, 6.3, count), rng.uniform(0, 0.05, count), rng.uniform(0, 6.3, count)], axis=1
    )
    is_div = dividing > 0
    brightness = np.where(is_div, rng.uniform(0.8, 1.0, count), rng.uniform(0.25, 1.0, count))
    texture_amp = np.where(is_div, 0.15, rng.uniform(0.3, 0.7, count))

    # normalised distance over a square crop around each nucleus, computed in two batches
    # (single nuclei; dividing ones, whose two lobes reach further) with one crop size each
    dist: list[np.ndarray] = [np.empty(0)] * count
    corner = np.zeros((count, 2), dtype=np.int64)
    for group, reach in ((np.flatnonzero(~is_div), 1.3), (np.flatnonzero(is_div), 1.5)):
        if not len(group):
            continue
        half = int(np.ceil(float(r[group].max()) * reach + 1))
        steps = np.arange(2 * half + 1, dtype=np.float32) + np.float32(0.5)
        oy = np.floor(cy[group]).astype(np.int64) - half
        ox = np.floor(cx[group]).astype(np.int64) - half
        ys = oy.astype(np.float32)[:, None, None] + steps[None, :, None]
        xs = ox.astype(np.float32)[:, None, None] + steps[None, None, :]
        g_cx, g_cy, g_r, g_angle, g_wobble = cx[group], cy[group], r[group], angle[group], wobble[group]
        if reach == 1.3:
            batch = _distance(xs, ys, g_cx, g_cy, g_r, g_r * aspect[group], g_angle, g_wobble)
        else:  # dividing: two touching lobes of one instance
            lobe = g_r * 0.62
            ux, uy = lobe * np.cos(g_angle), lobe * np.sin(g_angle)
            batch = np.minimum(
                _distance(xs, ys, g_cx + ux, g_cy + uy, lobe, lobe * 0.85, g_angle, g_wobble),
                _distance(xs, ys, g_cx - ux, g_cy - uy, lobe, lobe * 0.85, g_angle, g_wobble),
            )
        for j, index in enumerate(group):
            dist[index] = batch[j]
            corner[index] = (oy[j], ox[j])

    # each pixel goes to the nucleus it is most inside of; keep the runner-up for the borders
    best = np.full(shape, _FAR, dtype=np.float32)
    second = np.full(shape, _FAR, dtype=np.float32)
    owner = np.zeros(shape, dtype=np.int32)
    class_ids: list[int] = []
    extents: list[tuple[int, int, int, int]] = []
    kept: list[int] = []
    for index in range(count):
        top, left = int(corner[index, 0]), int(corner[index, 1])
        side = dist[index].shape[0]
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + side, height), min(left + side, width)
        if y0 >= y1 or x0 >= x1:
            continue
        d = dist[index][y0 - top : y1 - top, x0 - left : x1 - left]
        b_view, s_view, o_view = best[y0:y1, x0:x1], second[y0:y1, x0:x1], owner[y0:y1, x0:x1]
        closer = d < b_view
        np.minimum(s_view, np.where(closer, b_view, d), out=s_view)
        np.copyto(b_view, d, where=closer)
        np.copyto(o_view, len(kept) + 1, where=closer)
        kept.append(index)
        class_ids.append(2 if is_div[index] else 1)
        extents.append((y0, x0, y1, x1))

    inside = best < 1.0
    id_map = np.where(inside, owner, 0)

    # intensity of the nuclei: brightness x chromatin texture x edge profile x border groove
    chromatin = value_noise(rng, shape, max(2.0 * scale, 1.0)) - np.float32(0.5)
    b_lut = np.concatenate([[0.0], brightness[kept]]).astype(np.float32)
    t_lut = np.concatenate([[0.0], 1.6 * texture_amp[kept]]).astype(np.float32)
    profile = np.sqrt(np.clip((1.0 - best) * np.float32(1 / 0.35), 0.0, 1.0))
    groove = np.float32(rng.uniform(0.0, 0.5))
    border = np.clip((best / np.maximum(second, 1e-6) - np.float32(0.8)) * np.float32(5.0), 0.0, 1.0)
    border *= second < 2.0
    nuclei_signal = b_lut[id_map] * (1.0 + t_lut[id_map] * chromatin) * profile * (1.0 - groove * border)

    # background, debris, illumination, optics, sensor
    background = np.float32(rng.uniform(0.02, 0.14)) * (1.0 + 1.2 * fractal_noise(rng, shape, 24 * scale, octaves=3))
    for _ in range(int(rng.integers(0, 7))):
        centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        cv2.circle(background, centre, max(int(rng.uniform(1, 2.5) * scale), 1), float(rng.uniform(0.15, 0.7)), -1)
    gain = float(rng.uniform(0.45, 1.35))
    strength = float(rng.uniform(0.0, 0.9))
    signal = (background + nuclei_signal) * (gain * lighting_field(rng, shape, strength))
    blur = float(rng.uniform(0.5, 2.0)) * scale
    signal = apply_blur(signal, blur)
    photons = float(np.exp(rng.uniform(np.log(25), np.log(400))))
    read = float(rng.uniform(0.005, 0.02))
    signal = add_noise(rng, signal, read, shot=1.0 / photons)
    tint_name = str(rng.choice(list(_TINTS)))
    gray = to_uint8(signal)
    image = cv2.merge([cv2.convertScaleAbs(gray, alpha=t) for t in _TINTS[tint_name]])

    annotation = build_annotation(np.zeros(shape, np.uint8), id_map, class_ids, extents, taxonomy, _MIN_AREA)
    metadata: dict[str, Any] = {
        "lighting": lighting_label(gain, strength),
        "gain": round(gain, 4),
        "light_unevenness": round(strength, 4),
        "blur_sigma": round(blur, 4),
        "noise_sigma": round(read, 4),
        "photons": round(photons, 1),
        "tint": tint_name,
        "num_things": len(annotation.instances) if annotation.instances is not None else 0,
    }
    return SyntheticScene(image, annotation, metadata)
