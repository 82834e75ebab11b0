"""Synthetic fashion catalog: items generated from attributes, with natural-language texts.

Each item has five categorical attributes (category, colour, material, style, brand), a
latent quality (a logit offset, shared by all users) and a title and description whose
words name every attribute value, written from varied templates so that a text encoder
can pick the attributes up. Brands are the providers; each brand leans towards a home
style and a few categories, and brands differ in size (a Zipf-like share of the items).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from itertools import chain, product

import numpy as np
import numpy.typing as npt

from online.events import Item

CATEGORIES: tuple[str, ...] = (
    "dress", "sneakers", "jacket", "trousers", "sweater", "shirt",
    "skirt", "boots", "coat", "handbag", "scarf", "hoodie",
)
COLOURS: tuple[str, ...] = (
    "black", "white", "navy", "red", "olive", "beige",
    "grey", "burgundy", "mustard", "pink", "teal", "brown",
)
MATERIALS: tuple[str, ...] = (
    "cotton", "wool", "leather", "denim", "linen", "silk", "cashmere", "suede", "corduroy", "nylon",
)
STYLES: tuple[str, ...] = (
    "vintage", "minimalist", "sporty", "bohemian", "classic", "streetwear", "preppy", "romantic",
)
BRANDS: tuple[str, ...] = (
    "Velora", "Northwind", "Kestrel", "Amberlane", "Fjordic", "Marisol", "Quillon", "Oskaro",
    "Brantwood", "Lumeo", "Sable Finch", "Tessaline", "Corvane", "Halden", "Mirabeau", "Juniper Row",
    "Vantelle", "Ostrava Works", "Pellucid", "Rookmoor", "Sunhaven", "Talisker Lane", "Umbrae",
    "Wrenfield", "Zephyrine", "Calloway", "Driftmark", "Elmstead", "Greyloft", "Inkwell Atelier",
    "Larkspur", "Moraine", "Nettlebury", "Pinecrest", "Ravelin", "Solenne", "Thistledown",
    "Verdancy", "Westerly", "Yarrowby",
)
ATTRIBUTES: tuple[str, ...] = ("category", "colour", "material", "style", "brand")
"""Attribute names, in the order of `VOCABULARIES` and of the columns of `Catalog.codes`."""
VOCABULARIES: tuple[tuple[str, ...], ...] = (CATEGORIES, COLOURS, MATERIALS, STYLES, BRANDS)

MATERIALS_OF: dict[str, tuple[str, ...]] = {
    "dress": ("cotton", "linen", "silk", "wool", "denim", "corduroy"),
    "sneakers": ("leather", "suede", "nylon", "cotton", "denim"),
    "jacket": ("leather", "denim", "wool", "nylon", "corduroy", "suede", "cotton"),
    "trousers": ("cotton", "wool", "linen", "corduroy", "denim"),
    "sweater": ("wool", "cashmere", "cotton"),
    "shirt": ("cotton", "linen", "silk", "denim", "corduroy"),
    "skirt": ("cotton", "denim", "silk", "wool", "leather", "linen", "corduroy", "suede"),
    "boots": ("leather", "suede", "nylon"),
    "coat": ("wool", "cashmere", "nylon", "leather", "cotton"),
    "handbag": ("leather", "suede", "nylon", "cotton", "denim"),
    "scarf": ("wool", "cashmere", "silk", "cotton", "linen"),
    "hoodie": ("cotton", "nylon", "cashmere", "wool"),
}
"""Plausible materials per category (every material appears at least once)."""

_STYLE_PHRASES: dict[str, tuple[str, ...]] = {
    "vintage": ("inspired by seventies archives", "with a faded, lived-in charm", "that looks thrifted, in a good way"),
    "minimalist": ("with clean lines and nothing extra", "in a pared-back cut", "built around quiet, simple shapes"),
    "sporty": ("made to keep up on the move", "with an athletic, easy fit", "ready for the gym and the street"),
    "bohemian": ("with a relaxed, free-spirited drape", "for festivals and slow weekends", "with artisanal details"),
    "classic": ("in a timeless silhouette", "that never goes out of fashion", "with tailored, traditional lines"),
    "streetwear": ("with an oversized urban attitude", "straight from the skate park", "with bold street proportions"),
    "preppy": ("with a polished campus look", "in a neat collegiate cut", "that pairs well with loafers and knits"),
    "romantic": ("with soft, delicate details", "in a gentle, feminine shape", "made for candlelit evenings"),
}
_CATEGORY_PHRASES: dict[str, str] = {
    "dress": "Wear it to dinner or the office",
    "sneakers": "A cushioned sole keeps every step light",
    "jacket": "An easy layer for changeable weather",
    "trousers": "A comfortable waist and a straight leg",
    "sweater": "Warm enough for cold mornings",
    "shirt": "Tuck it in or wear it loose",
    "skirt": "Sits at the waist and moves as you walk",
    "boots": "A sturdy sole for city pavements",
    "coat": "Cut long to keep the wind out",
    "handbag": "Room for a laptop, keys and a book",
    "scarf": "Wrap it twice for extra warmth",
    "hoodie": "A roomy hood and a kangaroo pocket",
}
TITLE_TEMPLATES: tuple[str, ...] = (
    "{Brand} {Name} {colour} {material} {category}",
    "{Name} {style} {category} in {colour} {material} by {Brand}",
    "{Brand} {style} {category} {Name}, {colour} {material}",
    "The {Name}: {colour} {material} {category} from {Brand}",
    "{colour} {material} {category} {Name} | {Brand}",
    "{Brand} {Name} {category}, {style} {colour} {material}",
)
_DESCRIPTIONS: tuple[str, ...] = (
    "{a_style} {style} {category} in {colour} {material} {style_phrase}. {category_phrase}",
    "{Brand} makes {this} {style} {category} from {material} in {colour}, {style_phrase}. {category_phrase}",
    "{category_phrase}. {this} {colour} {category} {is} cut from {material} {style_phrase}, a {style} {piece}",
    "Our {style} take on the {category}: {colour} {material}, {style_phrase}. {category_phrase}",
    "Crafted by {Brand} in {material}, {this} {colour} {category} {is} {style} to the core, {style_phrase}",
    "{category_phrase}. {a_colour} {colour} {material} {category} with a {style} feel, {style_phrase}",
)
"""Description templates: each names category, colour, material and style; no final full
stop (Item.text() joins fields with ". "). Every title names the brand and the category."""
_SYLLABLES: tuple[str, ...] = (
    "al", "ba", "cor", "den", "el", "fa", "gri", "ho", "is", "ka", "lu", "mo",
    "ne", "or", "pi", "ra", "so", "ta", "ve", "zo", "qui", "mar", "tel", "sen",
)


def item_id(index: int) -> str:
    """Item id of catalog row `index`: "i00000", "i00001", ..."""
    return f"i{index:05d}"


@dataclass(frozen=True)
class Catalog:
    """All items of a simulated world (released or not), row i is item `item_id(i)`.

    codes: int64[n, 5] value index of each attribute (columns in `ATTRIBUTES` order);
    quality: float64[n] latent quality, a logit offset shared by all users;
    titles, descriptions: n strings each.
    """

    codes: npt.NDArray[np.int64]
    quality: npt.NDArray[np.float64]
    titles: tuple[str, ...]
    descriptions: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def attributes(self, row: int) -> dict[str, str]:
        """Attribute name -> value of item `row`."""
        codes = self.codes[row].tolist()
        return {name: vocab[code] for name, vocab, code in zip(ATTRIBUTES, VOCABULARIES, codes, strict=True)}

    def item(self, row: int, time: datetime) -> Item:
        """Item event for `row`, timestamped `time` (its release time); provider = brand."""
        attributes = self.attributes(row)
        return Item(
            item_id=item_id(row),
            fields={"title": self.titles[row], "description": self.descriptions[row]},
            attributes=attributes,
            provider=attributes["brand"],
            time=time,
        )


def _brand_profiles(rng: np.random.Generator) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per brand: home style int64[B] and three favourite categories int64[B, 3]."""
    n_brands = len(BRANDS)
    home_style = rng.integers(len(STYLES), size=n_brands)
    favourites = np.stack([rng.choice(len(CATEGORIES), size=3, replace=False) for _ in range(n_brands)])
    return home_style.astype(np.int64), favourites.astype(np.int64)


_PLURAL: frozenset[str] = frozenset({"sneakers", "boots", "trousers"})


@cache
def _all_names() -> tuple[str, ...]:
    """Every distinct product-line name of 2 or 3 syllables, in a fixed order."""
    combos = chain(product(_SYLLABLES, repeat=2), product(_SYLLABLES, repeat=3))
    return tuple(dict.fromkeys("".join(parts).capitalize() for parts in combos))


def _names(n: int, rng: np.random.Generator) -> list[str]:
    """n distinct product-line names (a roman-free numeric suffix once all are used)."""
    names = _all_names()
    order = rng.permutation(len(names))
    return [names[order[i % len(names)]] + (f" {i // len(names) + 1}" if i >= len(names) else "") for i in range(n)]


def _sentences(text: str) -> str:
    """Collapse the spaces left by empty articles and capitalise each sentence."""
    parts = " ".join(text.split()).split(". ")
    return ". ".join(part[:1].upper() + part[1:] for part in parts)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _texts(codes: npt.NDArray[np.int64], rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Title and description of every row of codes int64[n, 5]."""
    n = len(codes)
    names = _names(n, rng)
    title_of = rng.integers(len(TITLE_TEMPLATES), size=n).tolist()
    description_of = rng.integers(len(_DESCRIPTIONS), size=n).tolist()
    phrase_of = rng.integers(3, size=n).tolist()
    titles: list[str] = []
    descriptions: list[str] = []
    for row, name, t, d, phrase in zip(codes.tolist(), names, title_of, description_of, phrase_of, strict=True):
        category, colour, material, style, brand = (vocab[c] for vocab, c in zip(VOCABULARIES, row, strict=True))
        plural = category in _PLURAL
        values = {
            "category": category, "colour": colour, "material": material, "style": style,
            "Brand": brand, "Name": name, "this": "these" if plural else "this",
            "a_style": "" if plural else _article(style), "a_colour": "" if plural else _article(colour),
            "is": "are" if plural else "is", "piece": "pair" if plural else "piece",
            "style_phrase": _STYLE_PHRASES[style][phrase],
            "category_phrase": _CATEGORY_PHRASES[category],
        }
        titles.append(_sentences(TITLE_TEMPLATES[t].format(**values)))
        descriptions.append(_sentences(_DESCRIPTIONS[d].format(**values)))
    return titles, descriptions


def _material_table() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Plausible material codes per category int64[12, m] (padded) and their counts int64[12]."""
    width = max(len(options) for options in MATERIALS_OF.values())
    table = np.zeros((len(CATEGORIES), width), dtype=np.int64)
    counts = np.zeros(len(CATEGORIES), dtype=np.int64)
    for category, name in enumerate(CATEGORIES):
        options = [MATERIALS.index(m) for m in MATERIALS_OF[name]]
        table[category, : len(options)] = options
        counts[category] = len(options)
    return table, counts


QUALITY_PHRASES: tuple[str, ...] = (
    "Often returned, with poor reviews",
    "Reviews are mixed",
    "Customers call it good value",
    "Customers rate it highly",
    "Rated five stars by customers and quick to sell out",
)
"""With `quality_in_text`, the sentence that ends the description of an item in each quality
quintile (lowest first): the text then carries most of the item's quality."""
_QUINTILE_CUTS = (-0.8416, -0.2533, 0.2533, 0.8416)
"""Standard normal quintile boundaries: quality / quality_scale -> quintile."""


def quality_sentences(quality: npt.NDArray[np.float64], quality_scale: float) -> list[str]:
    """The `QUALITY_PHRASES` sentence of each item's quality quintile (float64[n] qualities
    drawn N(0, quality_scale**2); all the middle sentence when quality_scale is 0)."""
    standard = quality / quality_scale if quality_scale > 0 else np.zeros_like(quality)
    return [QUALITY_PHRASES[int(q)] for q in np.searchsorted(_QUINTILE_CUTS, standard)]


def make_catalog(n_items: int, rng: np.random.Generator, quality_scale: float = 0.5,
                 quality_in_text: bool = False) -> Catalog:
    """Draw `n_items` items: brands by a Zipf-like share, then category (70% among the
    brand's three favourites), style (60% the brand's home style), colour uniform,
    material among the category's plausible ones; quality ~ N(0, quality_scale**2), named in
    the description (its quintile's `QUALITY_PHRASES` sentence) when `quality_in_text`, else
    carried by no text (the same draws either way)."""
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    home_style, favourites = _brand_profiles(rng)
    brand_share = 1.0 / np.arange(1, len(BRANDS) + 1) ** 0.7
    brand_share = brand_share[rng.permutation(len(BRANDS))]
    brands = rng.choice(len(BRANDS), size=n_items, p=brand_share / brand_share.sum())
    favourite = favourites[brands, rng.integers(3, size=n_items)]
    category = np.where(rng.random(n_items) < 0.7, favourite, rng.integers(len(CATEGORIES), size=n_items))
    style = np.where(rng.random(n_items) < 0.6, home_style[brands], rng.integers(len(STYLES), size=n_items))
    colour = rng.integers(len(COLOURS), size=n_items)
    table, counts = _material_table()
    material = table[category, (rng.random(n_items) * counts[category]).astype(np.int64)]
    codes = np.stack([category, colour, material, style, brands], axis=1).astype(np.int64)
    quality = rng.normal(0.0, quality_scale, size=n_items)
    titles, descriptions = _texts(codes, rng)
    if quality_in_text:
        descriptions = [f"{text}. {sentence}" for text, sentence in
                        zip(descriptions, quality_sentences(quality, quality_scale), strict=True)]
    return Catalog(codes, quality, tuple(titles), tuple(descriptions))


def value_offsets() -> npt.NDArray[np.int64]:
    """int64[5] start column of each attribute in the concatenated one-hot value space
    (size `n_values()`): attribute a, value v -> column offsets[a] + v."""
    sizes = np.array([len(vocab) for vocab in VOCABULARIES], dtype=np.int64)
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


def n_values() -> int:
    """Total number of attribute values over all attributes (82)."""
    return sum(len(vocab) for vocab in VOCABULARIES)


def value_columns(codes: npt.NDArray[np.int64] | Sequence[Sequence[int]]) -> npt.NDArray[np.int64]:
    """Codes int64[n, 5] -> columns int64[n, 5] in the concatenated value space."""
    return np.asarray(codes, dtype=np.int64) + value_offsets()
