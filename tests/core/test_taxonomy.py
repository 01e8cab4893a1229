"""Taxonomy construction, validation and lookups."""

from __future__ import annotations

import numpy as np
import pytest

from pixelwise.core.errors import TaxonomyError
from pixelwise.core.taxonomy import ClassInfo, Taxonomy, voc_palette


def test_from_names_and_lookups():
    tax = Taxonomy.from_names(["background", "car", "bus"], stuff=["background"], supercategories={"car": "vehicle", "bus": "vehicle"})
    assert tax.ids == [0, 1, 2]
    assert tax.id_of("bus") == 2 and tax.name_of(1) == "car"
    assert tax.stuff_ids == [0] and tax.thing_ids == [1, 2]
    assert [c.name for c in tax.children("vehicle")] == ["car", "bus"]
    assert tax.supercategories == ["vehicle"]
    assert tax.num_classes == 3
    assert tax.get(1).color == tuple(voc_palette()[1])
    assert Taxonomy.from_dict(tax.to_dict()) == tax


def test_palette_and_unknown_ids():
    tax = Taxonomy((ClassInfo(0, "bg", (1, 2, 3)), ClassInfo(7, "x", (9, 9, 9))))
    pal = tax.palette()
    assert pal.shape == (256, 3) and tuple(pal[7]) == (9, 9, 9) and tuple(pal[255]) == (255, 255, 255)
    assert tax.num_classes == 8
    assert tax.unknown_ids(np.array([0, 3, 7, 255, 3])) == [3]


@pytest.mark.parametrize(
    "classes, kwargs, message",
    [
        ((ClassInfo(0, "a"), ClassInfo(0, "b")), {}, "duplicate class id 0"),
        ((ClassInfo(0, "a"), ClassInfo(1, "a")), {}, "duplicate class name 'a'"),
        ((ClassInfo(255, "a"),), {}, "ignore index"),
        ((ClassInfo(5, "a"),), {"ignore_index": 5}, "ignore index"),
    ],
)
def test_invalid_taxonomies(classes, kwargs, message):
    with pytest.raises(TaxonomyError, match=message):
        Taxonomy(classes, **kwargs)


@pytest.mark.parametrize(
    "args, message",
    [((-1, "a"), "non-negative"), ((1, ""), "non-empty name"), ((1, "a", (0, 0, 300)), "0..255")],
)
def test_invalid_class(args, message):
    with pytest.raises(TaxonomyError, match=message):
        ClassInfo(*args)


def test_unknown_lookups_list_valid_values():
    tax = Taxonomy.from_names(["a", "b"])
    with pytest.raises(TaxonomyError, match=r"valid ids are \[0, 1\]"):
        tax.get(9)
    with pytest.raises(TaxonomyError, match="valid names"):
        tax.id_of("zebra")
    with pytest.raises(TaxonomyError, match="not among the names"):
        Taxonomy.from_names(["a"], stuff=["sky"])
