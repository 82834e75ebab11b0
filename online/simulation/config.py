"""Simulator configuration: world size, item arrivals, drift, time (a frozen dataclass)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from online.simulation.satiation import SatiationConfig
from online.simulation.users import TasteConfig


@dataclass(frozen=True)
class SimulatorConfig:
    """World size and dynamics.

    n_items: catalog size, of which initial_item_fraction is live at start and the rest is
    released one by one, every new_item_every requests (None: evenly over `horizon`);
    n_candidates: candidates per request (None: requests carry none, the ranker retrieves
    among all released items), a fresh_fraction of them drawn from the fresh_window most
    recently released new items; eta: position-bias exponent; drift_every: requests
    between drift steps of std drift_scale (logit units); seconds_per_request: simulated
    time between requests starting at `start` (timezone-aware); seed: seeds the simulator
    when it is given no Generator; taste: user model (users.TasteConfig); request_text: share
    of requests whose `context_text` is a query naming what the user likes
    (simulation.request_text; drawn from a stream of its own, so the rest of the world is the
    same with or without it); satiation: users
    who value variety (satiation.SatiationConfig; strength 0, the default: off, clicks on a
    slate's items are independent given their positions); shift_at: request index before which
    a share `shift_share` of the users (chosen at random) get freshly drawn tastes, an abrupt
    preference shift (None, the default: none; the slow drift runs either way); paraphrase:
    item texts say each attribute value in words drawn per item (synonyms, descriptive
    phrases: simulation.paraphrase) instead of its name; the attributes, users and clicks are
    the same as without it.
    """

    n_items: int = 2400
    initial_item_fraction: float = 0.75
    n_users: int = 1000
    k: int = 10
    n_candidates: int | None = 100
    scenario: str = "feed"
    eta: float = 1.0
    drift_every: int = 500
    drift_scale: float = 0.03
    new_item_every: float | None = None
    horizon: int = 20_000
    seconds_per_request: float = 0.5
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    seed: int = 0
    fresh_fraction: float = 0.1
    fresh_window: int = 50
    taste: TasteConfig = field(default_factory=TasteConfig)
    request_text: float = 0.0
    satiation: SatiationConfig = field(default_factory=SatiationConfig)
    shift_at: int | None = None
    shift_share: float = 1.0
    paraphrase: bool = False

    def __post_init__(self) -> None:
        checks = {
            "n_items": self.n_items >= 1, "n_users": self.n_users >= 1, "k": 1 <= self.k <= 100,
            "initial_item_fraction": 0.0 < self.initial_item_fraction <= 1.0,
            "n_candidates": self.n_candidates is None or self.n_candidates >= 1,
            "eta": self.eta >= 0.0, "drift_every": self.drift_every >= 1, "drift_scale": self.drift_scale >= 0.0,
            "new_item_every": self.new_item_every is None or self.new_item_every > 0,
            "horizon": self.horizon >= 1, "seconds_per_request": self.seconds_per_request > 0,
            "start": self.start.tzinfo is not None and self.start.utcoffset() is not None,
            "fresh_fraction": 0.0 <= self.fresh_fraction <= 1.0, "fresh_window": self.fresh_window >= 1,
            "request_text": 0.0 <= self.request_text <= 1.0,
            "shift_at": self.shift_at is None or self.shift_at >= 1, "shift_share": 0.0 <= self.shift_share <= 1.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"SimulatorConfig.{name} is invalid: {getattr(self, name)!r}")

    @property
    def n_initial_items(self) -> int:
        """Items live at start (at least 1)."""
        return max(1, min(self.n_items, round(self.n_items * self.initial_item_fraction)))

    def release_schedule(self) -> npt.NDArray[np.int64]:
        """int64[n_items - n_initial_items]: index of the request just before which each
        held-back item (rows n_initial_items, ... in order) is released; non-decreasing.
        Derived (new_item_every None): evenly spaced, the last just before request horizon-1."""
        n_new = self.n_items - self.n_initial_items
        j = np.arange(1, n_new + 1, dtype=np.int64)
        if self.new_item_every is None:
            derived: npt.NDArray[np.int64] = np.maximum((j * self.horizon + n_new - 1) // max(n_new, 1) - 1, 0)
            return derived
        every: npt.NDArray[np.int64] = (np.ceil(j * self.new_item_every) - 1).astype(np.int64)
        return every
