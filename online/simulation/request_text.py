"""What a simulated user types: a short query naming values they like ("red wool sweater").

For each of category, colour and material the query names, with probability `detail`, the value
the user weighs most among a few of that attribute's values drawn at random (a user says what
they want, not everything they like), the category always. A text encoder maps the query near
the items whose texts name those values, so it says something about a user nobody has seen yet.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from online.simulation.catalog import VOCABULARIES, value_offsets

QUERY_ATTRIBUTES = (1, 2, 0)
"""colour, material, category: the order a query names them in ("red wool sweater")."""


def user_query(weights: npt.NDArray[np.float64], rng: np.random.Generator, detail: float = 0.7,
               shortlist: int = 4) -> str:
    """A query for a user with value weights float64[n_values] (`Population.weights[user]`)."""
    offsets = value_offsets()
    words = []
    for attribute in QUERY_ATTRIBUTES:
        if attribute != 0 and rng.random() >= detail:
            continue
        vocab = VOCABULARIES[attribute]
        shown = rng.choice(len(vocab), size=min(shortlist, len(vocab)), replace=False)
        best = shown[int(np.argmax(weights[offsets[attribute] + shown]))]
        words.append(vocab[best])
    return " ".join(words)
