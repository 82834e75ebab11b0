"""The simulated catalog: enough items, distinct ids and texts that name their attributes."""

from __future__ import annotations

import re

import numpy as np
import pytest

from online.simulation import ATTRIBUTES, VOCABULARIES, Simulator, SimulatorConfig, make_catalog
from online.simulation.catalog import MATERIALS_OF, n_values, value_columns


@pytest.fixture(scope="module")
def simulator() -> Simulator:
    return Simulator(SimulatorConfig(seed=3, n_users=50))


def test_vocabularies_have_the_promised_sizes() -> None:
    sizes = dict(zip(ATTRIBUTES, (len(v) for v in VOCABULARIES), strict=True))
    assert sizes == {"category": 12, "colour": 12, "material": 10, "style": 8, "brand": 40}
    assert all(len(set(vocab)) == len(vocab) for vocab in VOCABULARIES)
    assert {m for materials in MATERIALS_OF.values() for m in materials} == set(VOCABULARIES[2])
    assert n_values() == 82


def test_at_least_2000_items_with_distinct_ids_and_texts(simulator: Simulator) -> None:
    start = SimulatorConfig().start
    items = [simulator.catalog.item(row, start) for row in range(len(simulator.catalog))]
    assert len(items) >= 2000
    assert len({item.item_id for item in items}) == len(items)
    assert all(re.fullmatch(r"i\d{5}", item.item_id) for item in items)
    assert len({item.text() for item in items}) == len(items)
    assert len({item.fields["title"] for item in items}) == len(items)


def test_texts_mention_every_attribute_and_provider_is_brand(simulator: Simulator) -> None:
    start = SimulatorConfig().start
    for row in range(len(simulator.catalog)):
        item = simulator.catalog.item(row, start)
        assert set(item.fields) == {"title", "description"}
        assert set(item.attributes) == set(ATTRIBUTES)
        assert item.provider == item.attributes["brand"]
        words = set(re.findall(r"[a-z]+", item.fields["description"].lower()))
        for name in ("category", "colour", "material", "style"):
            assert item.attributes[name] in words, (name, item.fields["description"])
        title = item.fields["title"]
        assert item.attributes["brand"] in title and item.attributes["category"] in re.findall(r"[a-z]+", title.lower())
        assert item.attributes["material"] in MATERIALS_OF[item.attributes["category"]]


def test_texts_vary_and_every_value_occurs(simulator: Simulator) -> None:
    titles = simulator.catalog.titles
    openings = {title.split()[0] for title in titles}
    assert len(openings) > 50  # brand, name, colour or "The" first: not one fixed template
    for column, vocab in enumerate(VOCABULARIES):
        assert set(np.unique(simulator.catalog.codes[:, column]).tolist()) == set(range(len(vocab)))


def test_brands_differ_in_size_and_quality_is_centred() -> None:
    catalog = make_catalog(3000, np.random.default_rng(5), quality_scale=0.3)
    counts = np.bincount(catalog.codes[:, 4], minlength=40)
    assert counts.max() > 3 * counts.min()
    assert abs(catalog.quality.mean()) < 0.05
    assert 0.25 < catalog.quality.std() < 0.35


def test_value_columns_index_the_concatenated_value_space(simulator: Simulator) -> None:
    columns = value_columns(simulator.catalog.codes)
    assert columns.min() >= 0 and columns.max() < n_values()
    # each attribute's columns live in their own block
    assert (np.diff(columns, axis=1) > 0).all()


def test_make_catalog_rejects_empty() -> None:
    with pytest.raises(ValueError, match="n_items"):
        make_catalog(0, np.random.default_rng(0))


def test_quality_in_text_names_each_items_quintile_and_changes_nothing_else() -> None:
    from online.simulation.catalog import QUALITY_PHRASES

    plain = make_catalog(500, np.random.default_rng(4), 1.0)
    named = make_catalog(500, np.random.default_rng(4), 1.0, quality_in_text=True)
    assert np.array_equal(plain.codes, named.codes) and np.array_equal(plain.quality, named.quality)
    assert plain.titles == named.titles
    tiers = []
    for text, base, quality in zip(named.descriptions, plain.descriptions, named.quality, strict=True):
        head, _, sentence = text.rpartition(". ")
        assert head == base and sentence in QUALITY_PHRASES
        tiers.append((QUALITY_PHRASES.index(sentence), quality))
    by_tier = [np.mean([q for t, q in tiers if t == tier]) for tier in range(len(QUALITY_PHRASES))]
    assert (np.diff(by_tier) > 0).all()  # higher quintile, better items
    assert not any(text.endswith(QUALITY_PHRASES) for text in plain.descriptions)
