"""What shadow policies cost the worker: `WorkerCore` ranking, scoring the shadows and learning, in
one process, with 0 and with 2 shadows over the same records (no Kafka).

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/shadow_cost.py [--requests 2000] [--repeats 3]

Per repeat and configuration, a fresh core (dict tables, hashing encoder, d = 32, 64 draws, the
support mix): 300 items; requests of 2,000 users, each with 100 candidates, k = 10, served by
`WorkerCore.rank` in lists of 64 (the request lane's); the served slates' impressions (every
item, propensities copied) and a click on about half, learned by `WorkerCore.learn` in lists of
1,000 records (the feedback lane's). With shadows the core only queues each served slate; the
shadows are scored when the feedback lane next learns (`WorkerShadows.score_queued`, timed apart
here) and then learn the same feedback; the leaderboard's standings over the window (2,000
rounds, 200 resamples) are timed once per repeat. Shadows: linear TS with exploration 1.0 and
Bernoulli TS. Prints per configuration the medians over repeats: requests/s of `rank`, scoring
ms per request, feedback events/s of `learn`, requests + events per second of all the worker's
work, and the ratios of 2 shadows to none measured in the same process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from encoders.hashing import HashingEncoder
from online.config import SlatestreamConfig, parse_config
from online.events import Item
from streams.testing import SharedTables
from streams.testing.served import RecordMaker, feedback_records, item_records, request_records
from streams.worker.core import WorkerCore
from streams.worker.shadows import build_standings

ENCODER = HashingEncoder(dim=32)
SHADOWS = [{"name": "explore", "policy": {"name": "linear_ts", "params": {"exploration": 1.0}}},
           {"name": "beta", "policy": {"name": "bernoulli_ts"}}]
N_ITEMS, N_CANDIDATES, K, N_USERS = 300, 100, 10, 2000
REQUEST_LIST, FEEDBACK_LIST = 64, 1000


def embed(items: list[Item]) -> Any:
    return ENCODER.encode([i.text() for i in items])


def run(config: SlatestreamConfig, n_requests: int, seed: int) -> dict[str, float]:
    """One pass: seconds of rank, shadow scoring, learn and standings; requests and events."""
    core = WorkerCore(config, SharedTables(), embed, dim=32, seed=seed)
    make = RecordMaker()
    core.add_items(item_records(make, N_ITEMS, seed=seed))
    candidates = [f"i{n}" for n in np.random.default_rng(seed).choice(N_ITEMS, N_CANDIDATES, replace=False)]
    requests = request_records(make, n_requests, N_USERS, K, seed=seed, candidates=candidates)
    seconds = {"rank": 0.0, "score": 0.0, "learn": 0.0, "standings": 0.0}
    slates = []
    started = time.perf_counter()
    for start in range(0, len(requests), REQUEST_LIST):
        answers, dead = core.rank(requests[start : start + REQUEST_LIST])
        assert not dead
        slates += answers
    seconds["rank"] = time.perf_counter() - started
    if core.shadows is not None:
        started = time.perf_counter()
        core.shadows.score_queued()
        seconds["score"] = time.perf_counter() - started
    feedback = feedback_records(make, slates, seed=seed, click_rate=0.5)  # type: ignore[arg-type]
    started = time.perf_counter()
    for start in range(0, len(feedback), FEEDBACK_LIST):
        assert core.learn(feedback[start : start + FEEDBACK_LIST]) == []
    seconds["learn"] = time.perf_counter() - started
    if core.shadows is not None:
        started = time.perf_counter()
        boards = build_standings(core.shadows.snapshot(), core.shadows.versions(), config.leaderboard.n_bootstrap)
        seconds["standings"] = time.perf_counter() - started
        assert boards["default"]["rounds"] == n_requests, boards["default"]["counts"]
    return {**seconds, "requests": float(n_requests), "events": float(len(feedback))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configs = {"no shadows": SlatestreamConfig(),
               "2 shadows": parse_config({"shadows": SHADOWS, "leaderboard": {"close_after_s": 0}})}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    for repeat in range(args.repeats):
        for name, config in configs.items():  # alternated: the machine's load hits both alike
            results[name].append(run(config, args.requests, seed=repeat))
    print(f"{args.requests} requests ({N_CANDIDATES} candidates, k = {K}, {N_USERS} users), their impressions and "
          f"clicks; medians of {args.repeats} repeats; d = 32, 64 draws")
    rates: dict[str, dict[str, float]] = {}
    for name, runs in results.items():
        def median(key: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        total = median("rank") + median("score") + median("learn")
        rates[name] = {"rank": median("requests") / median("rank"), "learn": median("events") / median("learn"),
                       "all": (median("requests") + median("events")) / total}
        print(f"{name:>10}: rank {rates[name]['rank']:8.0f} requests/s; shadow scoring "
              f"{1000 * median('score') / median('requests'):6.2f} ms/request; learn {rates[name]['learn']:8.0f} "
              f"events/s; all work {rates[name]['all']:8.0f} requests+events/s; standings of the window "
              f"{median('standings'):.2f} s")
    base, shadowed = rates["no shadows"], rates["2 shadows"]
    print(f"ratio 2 shadows / none (same process): rank {shadowed['rank'] / base['rank']:.2f}, learn "
          f"{shadowed['learn'] / base['learn']:.2f}, all work {shadowed['all'] / base['all']:.2f}")


if __name__ == "__main__":
    main()
