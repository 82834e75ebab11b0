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
    "vintage": ("inspired by seventies archives", "with a faded, lived-in charm", "that looks thrifted in the best way"),
    "minimalist": ("with clean lines and nothing extra", "in a pared-back cut", "built around quiet, simple shapes"),
    "sporty": ("made to keep up on the move", "with an athletic, easy fit", "ready for the gym and the street"),
    "bohemian": ("with a relaxed, free-spirited drape", "for festival days and slow weekends", "with artisanal details"),
    "classic": ("in a timeless silhouette", "that never goes out of fashion", "with tailored, traditional lines"),
    "streetwear": ("with an oversized urban attitude", "straight from the skate park", "with bold street-ready proportions"),
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
_TITLES: tuple[str, ...] = (
    "{Brand} {Name} {colour} {material} {category}",
    "{Name} {style} {category} in {colour} {material} by {Brand}",
    "{Brand} {style} {category} {Name}, {colour} {material}",
    "The {Name}: {colour} {material} {category} from {Brand}",
    "{colour} {material} {category} {Name} | {Brand}",
    "{Brand} {Name} {category}, {style} {colour} {material}",
)
_DESCRIPTIONS: tuple[str, ...] = (
    "A {style} {category} in {colour} {material} {style_phrase}. {category_phrase}.",
    "{Brand} makes this {category} from {material} in {colour}, {style_phrase}. {category_phrase}.",
    "{category_phrase}. This {colour} {category} is cut from {material} and {style_phrase}, a {style} piece.",
    "Our {style} take on the {category}: {colour} {material}, {style_phrase}. {category_phrase}.",
    "Crafted by {Brand} in {material}, this {colour} {category} is {style} to the core, {style_phrase}.",
    "{category_phrase}. A {colour} {material} {category} with a {style} feel, {style_phrase}.",
)
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
        return {name: vocab[int(code)] for name, vocab, code in zip(ATTRIBUTES, VOCABULARIES, self.codes[row], strict=True)}

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


def _name(rng: np.random.Generator, taken: set[str]) -> str:
    """A product-line name of 2-3 syllables not in `taken` (added to it)."""
    while True:
        parts = rng.choice(len(_SYLLABLES), size=int(rng.integers(2, 4)))
        name = "".join(_SYLLABLES[int(p)] for p in parts).capitalize()
        if name not in taken:
            taken.add(name)
            return name


def _texts(codes: npt.NDArray[np.int64], rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Title and description of every row of codes int64[n, 5]."""
    titles: list[str] = []
    descriptions: list[str] = []
    taken: set[str] = set()
    for row in codes:
        category, colour, material, style, brand = (vocab[int(c)] for vocab, c in zip(VOCABULARIES, row, strict=True))
        values = {
            "category": category, "colour": colour, "material": material, "style": style,
            "Brand": brand, "Name": _name(rng, taken),
            "style_phrase": _STYLE_PHRASES[style][int(rng.integers(3))],
            "category_phrase": _CATEGORY_PHRASES[category],
        }
        title = _TITLES[int(rng.integers(len(_TITLES)))].format(**values)
        description = _DESCRIPTIONS[int(rng.integers(len(_DESCRIPTIONS)))].format(**values)
        titles.append(title[0].upper() + title[1:])
        descriptions.append(description[0].upper() + description[1:])
    return titles, descriptions


def make_catalog(n_items: int, rng: np.random.Generator, quality_scale: float = 0.5) -> Catalog:
    """Draw `n_items` items: brands by a Zipf-like share, then category (70% among the
    brand's three favourites), style (60% the brand's home style), colour uniform,
    material among the category's plausible ones; quality ~ N(0, quality_scale**2)."""
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    home_style, favourites = _brand_profiles(rng)
    brand_share = 1.0 / np.arange(1, len(BRANDS) + 1) ** 0.7
    brand_share = brand_share[rng.permutation(len(BRANDS))]
    brands = rng.choice(len(BRANDS), size=n_items, p=brand_share / brand_share.sum())
    codes = np.empty((n_items, len(ATTRIBUTES)), dtype=np.int64)
    for row, brand in enumerate(brands):
        if rng.random() < 0.7:
            category = int(favourites[brand, rng.integers(3)])
        else:
            category = int(rng.integers(len(CATEGORIES)))
        style = int(home_style[brand]) if rng.random() < 0.6 else int(rng.integers(len(STYLES)))
        options = MATERIALS_OF[CATEGORIES[category]]
        material = MATERIALS.index(options[int(rng.integers(len(options)))])
        codes[row] = (category, int(rng.integers(len(COLOURS))), material, style, int(brand))
    quality = rng.normal(0.0, quality_scale, size=n_items)
    titles, descriptions = _texts(codes, rng)
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
