"""Request text for cold users: linear TS with and without the request's text, paired seeds.

    OMP_NUM_THREADS=1 .venv/bin/python bench/request_text.py [--seeds 4] [--requests 3000] [--weights 0,0.05,0.1]

The simulator sends, with every request, a short query naming values its user likes
(`SimulatorConfig.request_text = 1`, online/simulation/request_text.py). Each weight is
`EngineConfig.text_weight` (0: the text is ignored); the engine shifts every candidate's score by
weight * evidence / (evidence + the user's exposures) * (item . query) (online/request_text.py).
Printed per weight: CTR over all requests, and over "cold" requests (a user's first --cold
requests), with the paired change against weight 0 and a 95% t-interval over seeds. Item vectors
and query vectors come from the same embedding (BERT by default; --encoder hashing).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encoders.embedding import ItemEmbedding, open_encoder  # noqa: E402
from online.engine import EngineConfig  # noqa: E402
from online.evaluation.sweep import paired_change  # noqa: E402
from online.experiment import ExperimentConfig, run_policy  # noqa: E402
from online.policies import make_policy  # noqa: E402
from online.simulation import Simulator, SimulatorConfig  # noqa: E402
from online.state import InMemoryStore  # noqa: E402


def cold_mask(config: SimulatorConfig, requests: int, cold: int) -> np.ndarray:
    """bool[requests]: request t is among its user's first `cold` requests (the request stream does
    not depend on the slates, so a fresh simulator replays it)."""
    simulator, seen, mask = Simulator(config), {}, np.zeros(requests, dtype=bool)
    for step in range(requests):
        request, _ = simulator.next_request()
        seen[request.user_id] = seen.get(request.user_id, 0) + 1
        mask[step] = seen[request.user_id] <= cold
    return mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--weights", default="0,0.1,0.4,0.8")
    parser.add_argument("--cold", type=int, default=5, help="a user's first N requests count as cold")
    parser.add_argument("--encoder", choices=["bert", "hashing"], default="bert")
    parser.add_argument("--dim", type=int, default=32)
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    encoder = open_encoder(args.encoder)
    cache = ROOT / ".data" / "bench-embedding-cache" if args.encoder == "bert" else None
    figures: dict[float, dict[str, list[float]]] = {w: {"ctr": [], "cold_ctr": []} for w in weights}
    for seed in range(args.seeds):
        config = SimulatorConfig(horizon=args.requests, seed=seed, request_text=1.0)
        embedding = ItemEmbedding.fitted(encoder, args.dim, Simulator(config).initial_items(), seed, cache)
        mask = cold_mask(config, args.requests, args.cold)
        for weight in weights:
            experiment = ExperimentConfig(n_requests=args.requests, engine=EngineConfig(text_weight=weight))
            run = run_policy(make_policy("linear_ts"), Simulator(config), embedding, InMemoryStore(), args.dim,
                             experiment, np.random.default_rng([seed, 0]), embed_text=embedding.text)
            figures[weight]["ctr"].append(float(run.clicks.sum() / run.shown.sum()))
            figures[weight]["cold_ctr"].append(float(run.clicks[mask].sum() / run.shown[mask].sum()))
            print(f"seed {seed} weight {weight:g}: CTR {figures[weight]['ctr'][-1]:.4f}, cold CTR "
                  f"{figures[weight]['cold_ctr'][-1]:.4f}", flush=True)
        embedding.close()
    print(f"\nlinear TS, {args.seeds} paired seeds x {args.requests} requests, every request with its user's "
          f"query, encoder {encoder.name} -> d={args.dim}; cold = a user's first {args.cold} requests")
    base = figures[weights[0]]
    for weight in weights:
        ctr, cold = figures[weight]["ctr"], figures[weight]["cold_ctr"]
        line = f"text_weight {weight:5g}: CTR {np.mean(ctr):.4f}, cold CTR {np.mean(cold):.4f}"
        if weight != weights[0]:
            line += (f"; change vs {weights[0]:g}: CTR {paired_change(base['ctr'], ctr).describe()}, cold CTR "
                     f"{paired_change(base['cold_ctr'], cold).describe()}")
        print(line)


if __name__ == "__main__":
    main()
