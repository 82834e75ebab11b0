"""A seeded click simulator: synthetic fashion catalog with real texts, users with latent
tastes, position-biased clicks, new items over time, drifting preferences, exact regret.

Pure: numpy, the standard library and `online.events` only.
"""

from online.simulation.catalog import ATTRIBUTES, VOCABULARIES, Catalog, item_id, make_catalog
from online.simulation.config import SimulatorConfig
from online.simulation.satiation import SatiationConfig
from online.simulation.simulator import SimulatedOutcome, Simulator, examination
from online.simulation.users import Population, TasteConfig, user_id

__all__ = [
    "ATTRIBUTES",
    "VOCABULARIES",
    "Catalog",
    "Population",
    "SatiationConfig",
    "SimulatedOutcome",
    "Simulator",
    "SimulatorConfig",
    "TasteConfig",
    "examination",
    "item_id",
    "make_catalog",
    "user_id",
]
