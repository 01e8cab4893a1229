"""Class taxonomy: ids, names, colours, stuff/thing flags, supercategories, ignore index.

A :class:`Taxonomy` is the one description of classes that every format reader, model
checkpoint and report shares. Class ids are the integers stored in semantic label maps;
the ignore index (default 255) marks pixels that carry no label ("void").
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixelwise.core.errors import TaxonomyError

DEFAULT_IGNORE_INDEX = 255

RGB = tuple[int, int, int]


def voc_palette(n: int = 256) -> np.ndarray:
    """The Pascal VOC colour map (bit-interleaved), as used by VOC palette PNGs.

    Args:
        n: number of entries.

    Returns:
        ``(n, 3) uint8`` palette; entry ``i`` is the colour of label ``i``.
    """
    palette = np.zeros((n, 3), dtype=np.uint8)
    for index in range(n):
        value, red, green, blue = index, 0, 0, 0
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[index] = (red, green, blue)
    return palette


def distinct_colors(n: int, seed: int = 0) -> list[RGB]:
    """``n`` well separated bright colours (golden-ratio hue walk), deterministic by seed."""
    colors: list[RGB] = []
    hue = (seed * 0.618033988749895) % 1.0
    for index in range(n):
        hue = (hue + 0.618033988749895) % 1.0
        saturation = 0.65 + 0.35 * ((index * 7) % 3) / 2
        value = 0.95 - 0.25 * ((index * 5) % 2)
        red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
        colors.append((int(red * 255), int(green * 255), int(blue * 255)))
    return colors


@dataclass(frozen=True)
class ClassInfo:
    """One class.

    Attributes:
        id: integer stored in label maps (0..65534, never the ignore index).
        name: unique human-readable name.
        color: ``(r, g, b)`` in 0..255 for overlays and palette PNGs.
        is_thing: True for countable objects (instances), False for "stuff" (sky, floor).
        supercategory: optional parent group name (e.g. "vehicle" for "car").
    """

    id: int
    name: str
    color: RGB = (0, 0, 0)
    is_thing: bool = True
    supercategory: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, (int, np.integer)) or self.id < 0:
            raise TaxonomyError(f"class id must be a non-negative int, got {self.id!r} for {self.name!r}")
        if not self.name or not isinstance(self.name, str):
            raise TaxonomyError(f"class {self.id} needs a non-empty name, got {self.name!r}")
        if len(self.color) != 3 or any(not 0 <= int(c) <= 255 for c in self.color):
            raise TaxonomyError(f"class {self.name!r}: colour must be 3 values in 0..255, got {self.color!r}")
        object.__setattr__(self, "id", int(self.id))
        object.__setattr__(self, "color", tuple(int(c) for c in self.color))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "id": self.id,
            "name": self.name,
            "color": list(self.color),
            "is_thing": self.is_thing,
            "supercategory": self.supercategory,
        }


@dataclass(frozen=True)
class Taxonomy:
    """An ordered, validated set of classes plus the ignore index.

    Example:
        >>> tax = Taxonomy.from_names(["background", "cat", "dog"], stuff=["background"])
        >>> tax.id_of("dog"), tax.num_classes
        (2, 3)
    """

    classes: tuple[ClassInfo, ...]
    ignore_index: int = DEFAULT_IGNORE_INDEX
    _by_id: dict[int, ClassInfo] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, ClassInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        classes = tuple(self.classes)
        object.__setattr__(self, "classes", classes)
        by_id: dict[int, ClassInfo] = {}
        by_name: dict[str, ClassInfo] = {}
        for info in classes:
            if info.id in by_id:
                raise TaxonomyError(f"duplicate class id {info.id}: {by_id[info.id].name!r} and {info.name!r}")
            if info.name in by_name:
                raise TaxonomyError(f"duplicate class name {info.name!r} (ids {by_name[info.name].id} and {info.id})")
            if info.id == self.ignore_index:
                raise TaxonomyError(
                    f"class {info.name!r} uses id {info.id}, which is the ignore index; "
                    "choose another id or another ignore_index"
                )
            by_id[info.id] = info
            by_name[info.name] = info
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_by_name", by_name)

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_names(
        cls,
        names: Sequence[str],
        *,
        stuff: Iterable[str] = (),
        colors: Sequence[RGB] | None = None,
        supercategories: Mapping[str, str] | None = None,
        ignore_index: int = DEFAULT_IGNORE_INDEX,
        first_id: int = 0,
    ) -> Taxonomy:
        """Build from names; ids are ``first_id + position``. Colours default to the VOC palette."""
        stuff_set = set(stuff)
        unknown = stuff_set - set(names)
        if unknown:
            raise TaxonomyError(f"stuff classes {sorted(unknown)} are not among the names {list(names)}")
        if colors is None:
            palette = voc_palette(max(256, first_id + len(names)))
            colors = [tuple(int(c) for c in palette[first_id + i]) for i in range(len(names))]  # type: ignore[misc]
        if len(colors) != len(names):
            raise TaxonomyError(f"{len(names)} names but {len(colors)} colours")
        supercategories = supercategories or {}
        return cls(
            tuple(
                ClassInfo(first_id + i, name, tuple(colors[i]), name not in stuff_set, supercategories.get(name))  # type: ignore[arg-type]
                for i, name in enumerate(names)
            ),
            ignore_index=ignore_index,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Taxonomy:
        """Inverse of :meth:`to_dict`."""
        try:
            classes = tuple(
                ClassInfo(
                    int(c["id"]),
                    str(c["name"]),
                    tuple(c.get("color", (0, 0, 0))),  # type: ignore[arg-type]
                    bool(c.get("is_thing", True)),
                    c.get("supercategory"),
                )
                for c in data["classes"]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TaxonomyError(f"taxonomy dict is malformed: {exc!r}; expected {{'classes': [{{'id','name',...}}]}}") from exc
        return cls(classes, ignore_index=int(data.get("ignore_index", DEFAULT_IGNORE_INDEX)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (round-trips through :meth:`from_dict`)."""
        return {"classes": [c.to_dict() for c in self.classes], "ignore_index": self.ignore_index}

    # -- queries ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self) -> Iterator[ClassInfo]:
        return iter(self.classes)

    def __contains__(self, class_id: object) -> bool:
        return class_id in self._by_id

    @property
    def ids(self) -> list[int]:
        """Class ids in declaration order."""
        return [c.id for c in self.classes]

    @property
    def names(self) -> list[str]:
        """Class names in declaration order."""
        return [c.name for c in self.classes]

    @property
    def num_classes(self) -> int:
        """Size of a dense class axis: ``max id + 1`` (ids need not be contiguous)."""
        return max(self._by_id) + 1 if self._by_id else 0

    @property
    def thing_ids(self) -> list[int]:
        """Ids of countable classes."""
        return [c.id for c in self.classes if c.is_thing]

    @property
    def stuff_ids(self) -> list[int]:
        """Ids of amorphous classes."""
        return [c.id for c in self.classes if not c.is_thing]

    def get(self, class_id: int) -> ClassInfo:
        """The class with this id; :class:`TaxonomyError` listing valid ids otherwise."""
        try:
            return self._by_id[int(class_id)]
        except KeyError:
            raise TaxonomyError(f"unknown class id {class_id}; valid ids are {self.ids}") from None

    def id_of(self, name: str) -> int:
        """Id of a class by name; :class:`TaxonomyError` listing valid names otherwise."""
        try:
            return self._by_name[name].id
        except KeyError:
            raise TaxonomyError(f"unknown class name {name!r}; valid names are {self.names}") from None

    def name_of(self, class_id: int) -> str:
        """Name of a class id."""
        return self.get(class_id).name

    def children(self, supercategory: str) -> list[ClassInfo]:
        """Classes whose supercategory is ``supercategory``."""
        return [c for c in self.classes if c.supercategory == supercategory]

    @property
    def supercategories(self) -> list[str]:
        """Distinct supercategory names in first-seen order."""
        seen: dict[str, None] = {}
        for c in self.classes:
            if c.supercategory:
                seen.setdefault(c.supercategory, None)
        return list(seen)

    def palette(self, size: int = 256) -> np.ndarray:
        """``(size, 3) uint8`` lookup table: row ``id`` is that class's colour.

        Unlisted ids are black; the ignore index (if < size) is white.
        """
        table = np.zeros((size, 3), dtype=np.uint8)
        if 0 <= self.ignore_index < size:
            table[self.ignore_index] = 255
        for c in self.classes:
            if c.id < size:
                table[c.id] = c.color
        return table

    def unknown_ids(self, values: Iterable[int]) -> list[int]:
        """Of ``values``, those that are neither a class id nor the ignore index (sorted)."""
        return sorted({int(v) for v in values} - set(self._by_id) - {self.ignore_index})

    def remapped(self, mapping: Mapping[int, int]) -> Taxonomy:
        """A copy whose class ids are replaced through ``mapping`` (absent ids are kept)."""
        return Taxonomy(
            tuple(ClassInfo(mapping.get(c.id, c.id), c.name, c.color, c.is_thing, c.supercategory) for c in self.classes),
            ignore_index=self.ignore_index,
        )
