"""A request's text (`RankRequest.context_text`, e.g. a search query) steers what users with
little history see.

The text is embedded like an item (the same encoder and projection: a unit vector q in the
items' space) and, for a request of a user whose own history says little, it

- shifts every candidate's score by w * (x_item . q): for linear Thompson sampling exactly a prior
  mean moved towards the query (x . (mu + w q) = x . mu + w x . q); the shift is the same in every
  Monte Carlo draw, so the slate's propensities stay those of the procedure served;
- and joins the retrieval query (`user vector + w q`, or q alone for a policy without user vectors).

The weight fades with the user's evidence n (`Policy.user_evidence`, exposures):
w = text_weight * text_evidence / (text_evidence + n), so a new user is steered by text_weight (in
reward units per unit of cosine) and a user with `text_evidence` exposures by half of it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

TextEmbed = Callable[[str], npt.NDArray[np.float32]]
"""A text -> float32[d] unit vector in the items' space (None when text is not used)."""


def text_weight(weight: float, evidence: float, user_evidence: float) -> float:
    """The weight of a request's text for a user with `user_evidence` exposures."""
    if weight <= 0:
        return 0.0
    return weight * evidence / (evidence + max(user_evidence, 0.0))


def text_shift(item_vectors: npt.NDArray[np.float32], query: npt.NDArray[np.float32],
               weight: float) -> npt.NDArray[np.float64]:
    """float64[n]: weight * (item_vectors[i] . query), the score shift of each candidate."""
    shift: npt.NDArray[np.float64] = weight * (np.asarray(item_vectors, dtype=np.float64) @ np.asarray(
        query, dtype=np.float64))
    return shift
