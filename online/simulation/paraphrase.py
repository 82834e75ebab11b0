"""Paraphrased item texts: the same attributes said in varied words (synonyms, descriptive phrases).

With `SimulatorConfig.paraphrase`, every item's title and description name its attribute values
through one surface form per attribute drawn for that item ("navy" -> "midnight blue", "sneakers"
-> "trainers", "wool" -> "merino", "vintage" -> "old-school"), so two items that share a value
often share no word for it: a text encoder only connects them through what the words mean. The
attributes themselves, and so the users' tastes and the click model, are those of the plain
catalog; only the texts change. Brands are proper names: their forms frame the name ("Velora
Studio", "House of Velora") and keep it. Every value has at least three surface forms, the first
its canonical name, and the forms of different values of an attribute share no word.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from online.simulation.catalog import ATTRIBUTES, TITLE_TEMPLATES, VOCABULARIES, Catalog, _names, _sentences

COLOUR_FORMS: dict[str, tuple[str, ...]] = {
    "black": ("black", "jet", "ebony", "onyx"),
    "white": ("white", "ivory", "snow", "chalk"),
    "navy": ("navy", "midnight blue", "marine", "sapphire"),
    "red": ("red", "scarlet", "crimson", "cherry"),
    "olive": ("olive", "khaki", "army green", "moss"),
    "beige": ("beige", "sand", "oatmeal", "ecru"),
    "grey": ("grey", "charcoal", "slate", "ash"),
    "burgundy": ("burgundy", "wine", "oxblood", "maroon"),
    "mustard": ("mustard", "ochre", "saffron", "golden yellow"),
    "pink": ("pink", "blush", "rose", "bubblegum"),
    "teal": ("teal", "petrol", "peacock", "turquoise"),
    "brown": ("brown", "chocolate", "chestnut", "espresso"),
}
CATEGORY_FORMS: dict[str, tuple[str, ...]] = {
    "dress": ("dress", "frock", "gown", "sundress"),
    "sneakers": ("sneakers", "trainers", "running shoes", "kicks"),
    "jacket": ("jacket", "blazer", "bomber", "windbreaker"),
    "trousers": ("trousers", "pants", "slacks", "chinos"),
    "sweater": ("sweater", "jumper", "pullover", "crewneck"),
    "shirt": ("shirt", "blouse", "button-down", "oxford"),
    "skirt": ("skirt", "miniskirt", "kilt", "sarong"),
    "boots": ("boots", "booties", "chelseas", "stompers"),
    "coat": ("coat", "overcoat", "trench", "parka"),
    "handbag": ("handbag", "purse", "tote", "clutch"),
    "scarf": ("scarf", "shawl", "muffler", "stole"),
    "hoodie": ("hoodie", "hooded sweatshirt", "hoody", "zip-up"),
}
MATERIAL_FORMS: dict[str, tuple[str, ...]] = {
    "cotton": ("cotton", "jersey", "poplin", "canvas"),
    "wool": ("wool", "merino", "lambswool", "tweed"),
    "leather": ("leather", "calfskin", "nappa", "cowhide"),
    "denim": ("denim", "chambray", "selvedge", "jean"),
    "linen": ("linen", "flax", "ramie"),
    "silk": ("silk", "satin", "charmeuse", "crepe de chine"),
    "cashmere": ("cashmere", "pashmina", "kashmir knit"),
    "suede": ("suede", "nubuck", "brushed calf"),
    "corduroy": ("corduroy", "cord", "needlecord", "wale"),
    "nylon": ("nylon", "ripstop", "polyamide", "technical shell"),
}
STYLE_FORMS: dict[str, tuple[str, ...]] = {
    "vintage": ("vintage", "retro", "old-school", "throwback"),
    "minimalist": ("minimalist", "understated", "pared-back", "no-frills"),
    "sporty": ("sporty", "athletic", "activewear", "gym-ready"),
    "bohemian": ("bohemian", "boho", "free-spirited", "hippie"),
    "classic": ("classic", "timeless", "traditional", "heritage"),
    "streetwear": ("streetwear", "urban", "skater", "hip-hop"),
    "preppy": ("preppy", "collegiate", "ivy league", "varsity"),
    "romantic": ("romantic", "feminine", "delicate", "dreamy"),
}
BRAND_FORMS: tuple[str, ...] = ("{}", "{} Studio", "House of {}", "{} Collection")
"""Frames around a brand's name (a name has no synonym)."""

_STYLE_PHRASES: dict[str, tuple[str, ...]] = {
    "vintage": ("like something from a grandmother's wardrobe", "with a nostalgic, bygone-era feel",
                "that looks thrifted, in a good way", "echoing decades past"),
    "minimalist": ("with no logos and no fuss", "stripped back to the essentials",
                   "built around quiet, simple shapes", "where less is more"),
    "sporty": ("built for a morning run", "that moves and breathes with you",
               "ready for the track and the street", "made to keep up on the move"),
    "bohemian": ("with a loose, wandering spirit", "made for sunny markets and open fields",
                 "for festivals and slow weekends", "with artisanal details"),
    "classic": ("the kind your parents wore too", "that works in every decade",
                "in a silhouette that never dates", "with tailored, well-mannered lines"),
    "streetwear": ("made for city sidewalks and concerts", "with a loud graphic edge",
                   "straight from the skate park", "with bold, baggy proportions"),
    "preppy": ("straight off the tennis club terrace", "neat enough for a lecture hall",
               "that pairs well with loafers and knits", "with a polished campus look"),
    "romantic": ("with lace-like softness", "for first dates and slow dances",
                 "made for candlelit evenings", "with soft, gentle details"),
}
_CATEGORY_PHRASES: dict[str, tuple[str, ...]] = {
    "dress": ("Wear it to dinner or the office", "From brunch to a wedding in one piece",
              "One piece, no outfit planning needed"),
    "sneakers": ("A cushioned sole keeps every step light", "Lace up and walk all day",
                 "Grippy rubber underfoot for wet pavements"),
    "jacket": ("An easy layer for changeable weather", "Throw it over a tee when evenings cool",
               "Zips up against a chilly breeze"),
    "trousers": ("A comfortable waist and a straight leg", "A tapered leg that sits above the ankle",
                 "Belt loops and deep pockets"),
    "sweater": ("Warm enough for cold mornings", "A ribbed neckline and cuffs", "Layer it over a collar in winter"),
    "shirt": ("Tuck it in or wear it loose", "A crisp collar and a row of buttons",
              "Roll the sleeves up on warm afternoons"),
    "skirt": ("Sits at the waist and moves as you walk", "A hem that swishes at the knee",
              "Pair it with tights in winter"),
    "boots": ("A sturdy sole for city pavements", "A low heel and a side zip", "Made to splash through puddles"),
    "coat": ("Cut long to keep the wind out", "Buttons up to the chin for winter",
             "A warm outer layer for the coldest months"),
    "handbag": ("Room for a laptop, keys and a book", "A sturdy strap for your shoulder",
                "Inner pockets keep your phone in reach"),
    "scarf": ("Wrap it twice for extra warmth", "Drape it around your neck on windy days",
              "Soft against the skin, long enough to knot"),
    "hoodie": ("A roomy hood and a kangaroo pocket", "Pull the drawstrings tight on breezy days",
               "Lounge in it at home or after training"),
}
_DESCRIPTIONS: tuple[str, ...] = (
    "{a_style} {style} {category} in {colour} {material} {style_phrase}. {category_phrase}",
    "{Brand} makes {this} {style} {category} from {material} in {colour}, {style_phrase}. {category_phrase}",
    "{category_phrase}. {this} {colour} {category} {is} cut from {material} {style_phrase}, {an_style} {style} {piece}",
    "Our {style} take on the {category}: {colour} {material}, {style_phrase}. {category_phrase}",
    "Crafted by {Brand} in {material}, {this} {colour} {category} {is} {style} to the core, {style_phrase}",
    "{category_phrase}. {a_colour} {colour} {material} {category} with {an_style} {style} feel, {style_phrase}",
)
"""As the plain catalog's templates; no final full stop (Item.text() joins fields with ". ")."""
_PLURAL: frozenset[str] = frozenset({"sneakers", "boots", "trousers"})
_FORMS: tuple[dict[str, tuple[str, ...]], ...] = (CATEGORY_FORMS, COLOUR_FORMS, MATERIAL_FORMS, STYLE_FORMS)
_DRAWS = 7
"""Uniform draws per item: a form of each of the five attributes, a style and a category phrase."""


def surface_forms(attribute: str, value: str) -> tuple[str, ...]:
    """The ways the paraphrased catalog says `value` of `attribute` (one of `ATTRIBUTES`), the
    canonical name first. ValueError for an unknown attribute or value."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute: unknown {attribute!r} (known: {', '.join(ATTRIBUTES)})")
    if value not in VOCABULARIES[ATTRIBUTES.index(attribute)]:
        raise ValueError(f"value: {value!r} is not a {attribute}")
    if attribute == "brand":
        return tuple(form.format(value) for form in BRAND_FORMS)
    return _FORMS[ATTRIBUTES.index(attribute)][value]


def _pick(options: tuple[str, ...], draw: float) -> str:
    return options[min(int(draw * len(options)), len(options) - 1)]


def _article(phrase: str) -> str:
    return "an" if phrase[0] in "aeiou" else "a"


def _values(row: list[int], name: str, draws: list[float]) -> dict[str, str]:
    """Template values for one item: attribute codes `row` (ATTRIBUTES order), its product-line
    name and its `_DRAWS` uniform draws in [0, 1)."""
    category, colour, material, style, brand = (vocab[c] for vocab, c in zip(VOCABULARIES, row, strict=True))
    forms = [_pick(surface_forms(a, v), d) for a, v, d in zip(ATTRIBUTES, (category, colour, material, style, brand),
                                                               draws, strict=False)]
    plural = category in _PLURAL
    return {
        "category": forms[0], "colour": forms[1], "material": forms[2], "style": forms[3], "Brand": forms[4],
        "Name": name, "this": "these" if plural else "this", "is": "are" if plural else "is",
        "a_style": "" if plural else _article(forms[3]), "an_style": _article(forms[3]),
        "a_colour": "" if plural else _article(forms[1]), "piece": "pair" if plural else "piece",
        "style_phrase": _pick(_STYLE_PHRASES[style], draws[5]),
        "category_phrase": _pick(_CATEGORY_PHRASES[category], draws[6]),
    }


def paraphrase_texts(codes: npt.NDArray[np.int64], rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Titles and descriptions of every row of codes int64[n, 5] (ATTRIBUTES order), each item's
    attributes said with surface forms drawn from `rng` (one form per attribute per item, used in
    both its title and its description)."""
    n = len(codes)
    names = _names(n, rng)
    title_of = rng.integers(len(TITLE_TEMPLATES), size=n).tolist()
    description_of = rng.integers(len(_DESCRIPTIONS), size=n).tolist()
    draws = rng.random((n, _DRAWS)).tolist()
    titles: list[str] = []
    descriptions: list[str] = []
    for row, name, t, d, item_draws in zip(codes.tolist(), names, title_of, description_of, draws, strict=True):
        values = _values(row, name, item_draws)
        titles.append(_sentences(TITLE_TEMPLATES[t].format(**values)))
        descriptions.append(_sentences(_DESCRIPTIONS[d].format(**values)))
    return titles, descriptions


def paraphrase_catalog(catalog: Catalog, rng: np.random.Generator) -> Catalog:
    """`catalog` with paraphrased titles and descriptions drawn from `rng`; the attribute codes
    and the quality (the ground truth) are the same arrays."""
    titles, descriptions = paraphrase_texts(catalog.codes, rng)
    return dataclasses.replace(catalog, titles=tuple(titles), descriptions=tuple(descriptions))

