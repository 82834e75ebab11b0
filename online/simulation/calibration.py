"""How hard the simulated world is: CTR of random, non-personalised and oracle slates.

    python -m online.simulation [--requests 2000] [--seed 0] [--eta 1.0]

For each request the same candidates are ranked three ways: uniformly at random, by the
best non-personalised order (activity-weighted mean user logit plus quality: what
population-level learning could reach at best) and by the oracle (the user's true
relevance). CTR is expected clicks per shown item, from the true probabilities; the
random slates are also shown to the simulator to count sampled clicks.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from online.events import RankRequest, Slate, SlateItem
from online.simulation.catalog import item_id, value_columns
from online.simulation.config import SimulatorConfig
from online.simulation.simulator import Simulator


def make_slate(
    request: RankRequest, item_ids: Sequence[str], policy: str = "scripted", propensity: float = 1.0
) -> Slate:
    """A Slate showing item_ids in this order (positions 0..), each with `propensity`."""
    items = tuple(
        SlateItem(item_id=item, position=p, score=0.0, mean=0.0, std=0.0, explored=False, propensity=propensity)
        for p, item in enumerate(item_ids)
    )
    return Slate(request_id=request.request_id, user_id=request.user_id, scenario=request.scenario, items=items,
                 policy=policy, policy_version="0", time=request.time)


def measure(config: SimulatorConfig, n_requests: int, rng: np.random.Generator) -> dict[str, float]:
    """Expected CTR per shown item of random, population-best and oracle slates over
    `n_requests` requests of a simulator of `config`, plus the sampled CTR of the random
    slates; `rng` shuffles the random slates."""
    simulator = Simulator(config)
    mean_weights = simulator.population.activity @ simulator.population.weights
    population_score = mean_weights[value_columns(simulator.catalog.codes)].sum(axis=1) + simulator.catalog.quality
    expected = {"random": 0.0, "population": 0.0, "oracle": 0.0}
    clicks = shown = 0
    for _ in range(n_requests):
        request, _ = simulator.next_request()
        candidates = list(request.candidates or (item_id(row) for row in range(simulator.n_released)))
        random_ids = [candidates[int(i)] for i in rng.permutation(len(candidates))[: request.k]]
        rows = np.array([int(c[1:]) for c in candidates])
        population_ids = [candidates[int(i)] for i in np.argsort(-population_score[rows], kind="stable")[: request.k]]
        outcome = simulator.respond(request, make_slate(request, random_ids, "random"))
        clicks += sum(outcome.item_clicked)
        shown += len(random_ids)
        expected["random"] += outcome.expected_clicks
        expected["oracle"] += outcome.oracle_expected_clicks
        positions = list(range(len(population_ids)))
        expected["population"] += float(simulator.click_probabilities(request.user_id, population_ids, positions).sum())
    result = {f"{name}_ctr": value / shown for name, value in expected.items()}
    result["random_sampled_ctr"] = clicks / shown
    ctr = result["random_sampled_ctr"]
    result["random_sampled_se"] = float(np.sqrt(ctr * (1 - ctr) / shown))
    result["oracle_over_random"] = result["oracle_ctr"] / result["random_ctr"]
    result["population_over_random"] = result["population_ctr"] / result["random_ctr"]
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """Print the figures of `measure` for the default config (see module doc)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eta", type=float, default=SimulatorConfig.eta)
    args = parser.parse_args(argv)
    config = replace(SimulatorConfig(), seed=args.seed, eta=args.eta)
    figures = measure(config, args.requests, np.random.default_rng([args.seed, 1]))
    print(f"python -m online.simulation --requests {args.requests} --seed {args.seed} --eta {args.eta}")
    for name, value in figures.items():
        print(f"{name:24s} {value:.4f}")
