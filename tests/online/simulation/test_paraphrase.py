"""The paraphrased catalog: varied words for the same attributes, the same world underneath."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from itertools import combinations

import numpy as np
import pytest

from online.simulation import ATTRIBUTES, VOCABULARIES, Simulator, SimulatorConfig
from online.simulation.paraphrase import paraphrase_texts, surface_forms

CONFIG = SimulatorConfig(n_users=200, seed=7)
WORDED = ("category", "colour", "material", "style")
"""Attributes said in other words (a brand keeps its name)."""


def tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


@pytest.fixture(scope="module")
def pair() -> tuple[Simulator, Simulator]:
    return Simulator(CONFIG), Simulator(replace(CONFIG, paraphrase=True))


def test_every_value_has_several_forms_and_values_share_no_word() -> None:
    for attribute, vocab in zip(ATTRIBUTES, VOCABULARIES, strict=True):
        words_of = {}
        for value in vocab:
            forms = surface_forms(attribute, value)
            assert len(forms) >= 3 and len(set(forms)) == len(forms), (attribute, value)
            assert value in forms[0]
            words_of[value] = set().union(*(tokens(form) for form in forms))
        if attribute in WORDED:
            for a, b in combinations(vocab, 2):
                assert not words_of[a] & words_of[b], (attribute, a, b, words_of[a] & words_of[b])
    with pytest.raises(ValueError, match="attribute"):
        surface_forms("size", "xl")
    with pytest.raises(ValueError, match="value"):
        surface_forms("colour", "sky")


def test_paraphrases_are_seeded() -> None:
    codes = Simulator(CONFIG).catalog.codes[:300]
    first = paraphrase_texts(codes, np.random.default_rng(1))
    assert first == paraphrase_texts(codes, np.random.default_rng(1))
    assert first != paraphrase_texts(codes, np.random.default_rng(2))
    again = Simulator(replace(CONFIG, paraphrase=True)).catalog
    paraphrased = Simulator(replace(CONFIG, paraphrase=True)).catalog
    assert (again.titles, again.descriptions) == (paraphrased.titles, paraphrased.descriptions)


def test_only_the_texts_change(pair: tuple[Simulator, Simulator]) -> None:
    plain, paraphrased = pair
    assert np.array_equal(plain.catalog.codes, paraphrased.catalog.codes)
    assert np.array_equal(plain.catalog.quality, paraphrased.catalog.quality)
    assert np.array_equal(plain.population.weights, paraphrased.population.weights)
    descriptions = zip(plain.catalog.descriptions, paraphrased.catalog.descriptions, strict=True)
    assert np.mean([a != b for a, b in descriptions]) > 0.95
    for _ in range(300):  # the same requests (drift included), the same true click probabilities
        request, arrived = plain.next_request()
        other, arrived_too = paraphrased.next_request()
        assert other == request and [i.item_id for i in arrived_too] == [i.item_id for i in arrived]
        assert [i.attributes for i in arrived_too] == [i.attributes for i in arrived]
        assert request.candidates is not None
        positions = list(range(len(request.candidates)))
        assert np.array_equal(plain.click_probabilities(request.user_id, request.candidates, positions),
                              paraphrased.click_probabilities(request.user_id, request.candidates, positions))
        assert plain.oracle_slate(request) == paraphrased.oracle_slate(request)


def test_texts_still_say_every_attribute(pair: tuple[Simulator, Simulator]) -> None:
    catalog = pair[1].catalog
    for row in range(len(catalog)):
        attributes = catalog.attributes(row)
        description, title = catalog.descriptions[row].lower(), catalog.titles[row].lower()
        for name in WORDED:
            forms = surface_forms(name, attributes[name])
            assert any(re.search(rf"\b{re.escape(form)}\b", description) for form in forms), (name, description)
        assert attributes["brand"].lower() in title


def overlap_share(texts: tuple[str, ...], values: np.ndarray, attribute: str) -> float:
    """Share of item pairs with the same value of `attribute` whose texts share a word of that
    value's surface forms (exact, over all such pairs)."""
    vocab = VOCABULARIES[ATTRIBUTES.index(attribute)]
    sharing = total = 0
    for code, value in enumerate(vocab):
        value_words = set().union(*(tokens(form) for form in surface_forms(attribute, value)))
        used = Counter(frozenset(tokens(texts[row]) & value_words) for row in np.flatnonzero(values == code))
        groups = list(used.items())
        for i, (words_a, count_a) in enumerate(groups):
            for j, (words_b, count_b) in enumerate(groups[i:], start=i):
                pairs = count_a * (count_a - 1) // 2 if i == j else count_a * count_b
                total += pairs
                sharing += pairs if words_a & words_b else 0
    return sharing / total


@pytest.mark.parametrize("attribute", WORDED)
def test_word_overlap_between_items_sharing_a_value_is_broken(
    pair: tuple[Simulator, Simulator], attribute: str
) -> None:
    column = pair[0].catalog.codes[:, ATTRIBUTES.index(attribute)]
    texts_of = [tuple(f"{t}. {d}" for t, d in zip(s.catalog.titles, s.catalog.descriptions, strict=True))
                for s in pair]
    assert overlap_share(texts_of[0], column, attribute) == 1.0  # the plain catalog names every value
    # One form per item, drawn uniformly from >= 3 word-disjoint forms: about 1/3 to 1/4 of pairs agree.
    assert overlap_share(texts_of[1], column, attribute) < 0.45
