"""How close DR's reward models come to the simulator's true click probabilities, fitted online
on the log as the driver fits them (predict, then update, in log order).

    OMP_NUM_THREADS=1 .venv/bin/python bench/reward_model_fit.py [--seeds 5] [--requests 3000] \
        [--learning-rate 0.01 ...] [--taste-weight 1.0 ...]

The simulator serves N requests through `Engine.rank` with linear TS (the logger of
bench/evaluation_ground_truth.py, same seeds and world). Before each round's clicks are learned,
every reward model predicts q(item, position) for the round's user over all the request's
candidates at positions 0..k-1 (what an evaluated policy could place, which is what DR's
q_expected averages) and the simulator gives the true click probabilities there. Prints per seed
and model the RMSE of q against the truth and the mean log loss on the logged clicks, then over
seeds the paired ratio against log_ctr (the default). `--learning-rate` and `--taste-weight`
add river models for each pair of values (default: the river model's own).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from encoders.embedding import ItemEmbedding, open_encoder
from online.catalog import Catalog
from online.engine import Engine, EngineConfig
from online.evaluation.reward_model import PositionCTRModel, RewardModel
from online.evaluation.river_reward import RiverRewardModel, RiverRewardParams
from online.policies import make_policy
from online.simulation import Simulator, SimulatorConfig
from online.state import InMemoryStore


def fit_seed(seed: int, n: int, encoder: Any, dim: int,
             variants: list[RiverRewardParams]) -> dict[str, tuple[float, float]]:
    """{model: (RMSE of q against the true click probability over candidates x positions, mean log
    loss on the logged clicks)} for one seed's log."""
    config = SimulatorConfig(horizon=n, seed=seed)
    simulator = Simulator(config)
    embed = ItemEmbedding.fitted(encoder, dim, simulator.initial_items(), seed)
    catalog = Catalog(dim=embed.dim)
    engine = Engine(make_policy("linear_ts"), InMemoryStore(), catalog, np.random.default_rng([seed, 7]),
                    config=EngineConfig())
    initial = simulator.initial_items()
    engine.add_items(initial, embed(initial))
    models: dict[str, RewardModel] = {"log_ctr": PositionCTRModel()}
    for params in variants:
        name = f"river lr={params.learning_rate:g} taste={params.taste_weight:g}"
        models[name] = RiverRewardModel(lambda: catalog.vectors, params)
    squared = dict.fromkeys(models, 0.0)
    loss = dict.fromkeys(models, 0.0)
    cells = shown_total = 0
    for _ in range(n):
        request, arrived = simulator.next_request()
        if arrived:
            engine.add_items(arrived, embed(arrived))
        slate = engine.rank(request)
        candidates = list(request.candidates or catalog.ids)
        k = len(slate.items)
        truth = simulator.click_probabilities(request.user_id, candidates * k, np.repeat(np.arange(k), len(candidates)))
        truth = truth.reshape(k, len(candidates)).T
        rows = catalog.rows(candidates)
        outcome = simulator.respond(request, slate)
        clicked = {c.item_id for c in outcome.clicks}
        shown_rows = catalog.rows([s.item_id for s in slate.items])
        positions = np.array([s.position for s in slate.items], dtype=np.int64)
        rewards = np.array([float(s.item_id in clicked) for s in slate.items])
        for name, model in models.items():
            q = model.predict(rows, k, request)
            squared[name] += float(((q - truth) ** 2).sum())
            q_shown = np.clip(model.predict(shown_rows, k, request)[np.arange(k), positions], 1e-6, 1 - 1e-6)
            loss[name] -= float((rewards * np.log(q_shown) + (1 - rewards) * np.log(1 - q_shown)).sum())
            model.update(shown_rows, positions, rewards, request)
        cells += truth.size
        shown_total += k
        engine.observe([outcome.impression, *outcome.clicks])
    return {name: (float(np.sqrt(squared[name] / cells)), loss[name] / shown_total) for name in models}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, nargs="*", default=[RiverRewardParams().learning_rate])
    parser.add_argument("--taste-weight", type=float, nargs="*", default=[RiverRewardParams().taste_weight])
    args = parser.parse_args()
    encoder = open_encoder("hashing")
    started = time.perf_counter()
    results = []
    for seed in range(args.seeds):
        variants = [RiverRewardParams(learning_rate=rate, taste_weight=taste)
                    for rate in args.learning_rate for taste in args.taste_weight]
        fit = fit_seed(seed, args.requests, encoder, args.dim, variants)
        results.append(fit)
        print(f"seed {seed}: " + "; ".join(f"{name} RMSE {rmse:.5f} log loss {ll:.4f}"
                                          for name, (rmse, ll) in fit.items()), flush=True)
    print(f"\n{args.seeds} seeds x {args.requests} requests, {time.perf_counter() - started:.0f} s")
    for name in results[0]:
        rmse = np.array([r[name][0] for r in results])
        ratio = rmse / np.array([r["log_ctr"][0] for r in results])
        ll = np.mean([r[name][1] for r in results])
        print(f"{name:28s} RMSE vs true click probability mean {rmse.mean():.5f} (paired ratio to log_ctr "
              f"{ratio.min():.3f} to {ratio.max():.3f}); log loss on logged clicks {ll:.4f}")


if __name__ == "__main__":
    main()
