"""What the simulator's world allows: the ILD / CTR frontier of a ranker that knows every true
click probability.

    OMP_NUM_THREADS=1 .venv/bin/python bench/oracle_frontier.py [--seeds 6] [--requests 2000]
        [--weights 0.05,0.1,0.2,0.3,0.5,1,3] [--positions 0:0,1:2] [--satiation 0] [--json PATH]

For each seed, the request stream of `bench/objectives_sweep.py` (same `SimulatorConfig`: 100
candidates, k = 10, eta = 1; the stream does not depend on the slates) is ranked by the true
relevance of every candidate. The baseline is the oracle slate (relevance order: the most
expected clicks any slate of these candidates has). Every other setting is greedy ILD
re-ranking (`online.objectives.rerank`) of the true relevance in its own units (click
probability minus the request's mean: `score_units="score"`), at each weight and position
variant ("power:from", the weight at position p being w * (1 + p) ** power from position `from`
on), served in greedy order and by relevance (`slate_order="utility"`). ILD is measured on the
raw MiniLM embeddings, as the sweep does.

Printed per setting: expected CTR (the slate's exact click probability per shown item) and ILD,
and their changes against the oracle baseline, pooled over all requests of all seeds (no
learning, no click sampling: the figures are exact for the seeds). Then the largest ILD gain
within the issue's 5% CTR budget, per order, and the highest ILD any setting reached (the
greedy's plateau). The closed-loop sweep's policy ranks by estimates, not by these
probabilities; this bench measures the world's own price of diversity.

`--satiation S`: the same in a world of users who value variety (`SatiationConfig(strength=S)`):
expected clicks then include each item's satiation by the items above it (`Simulator.
click_probabilities`), and one more row, "oracle-satiation", is the simulator's own oracle slate
(the better of the relevance order and the greedy satiation-aware slate).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import numpy.typing as npt

from online.evaluation.metrics import intra_list_diversity
from online.objectives.rerank import Order, rerank
from online.simulation import SatiationConfig, Simulator, SimulatorConfig
from online.simulation.satiation import satiation_factors
from online.simulation.simulator import examination

MAX_CTR_LOSS = 0.05
ILD_GOAL = 0.30
ORDERS: tuple[Order, ...] = ("greedy", "utility")
FloatArray = npt.NDArray[np.float64]


def parse_floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part.strip())


def parse_positions(text: str) -> tuple[tuple[float, int], ...]:
    """"power:from" pairs, e.g. "0:0,1:2"."""
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        power, start = part.split(":")
        pairs.append((float(power), int(start)))
    return tuple(pairs)


def unit_embeddings(sim: Simulator, n_items: int) -> FloatArray:
    """float64[n_items, 384] unit MiniLM embeddings of every catalog row (cached as the sweep does)."""
    from objectives_sweep import embedding_for  # the sweep's encoder and embedding cache

    embedding = embedding_for("bert", 32, sim.config.seed)
    try:
        start = sim.config.start
        vectors = embedding.encode_texts([sim.catalog.item(row, start).text() for row in range(n_items)])
    finally:
        embedding.close()
    rows = np.asarray(vectors, dtype=np.float64)
    out: FloatArray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def setting_label(weight: float, power: float, start: int, order: str) -> str:
    if weight == 0:
        return "oracle"
    return (f"ild{weight:g}" + (f"^{power:g}" if power else "") + (f">{start}" if start else "")
            + ("+sorted" if order == "utility" else ""))


def expected_ctr(sim: Simulator, rows: npt.NDArray[np.int64], relevance: FloatArray, look: FloatArray) -> float:
    """Expected clicks per shown item of a slate of catalog rows (best first) with true relevance
    float64[k], in the simulator's click model (satiation included when it is on)."""
    value = relevance
    if sim.config.satiation.active:
        value = relevance * satiation_factors(sim.catalog.codes[rows], np.arange(len(rows)), sim.config.satiation)
    return float(look[: len(rows)] @ value) / len(rows)


def run_seed(seed: int, requests: int, settings: list[tuple[float, float, int, Order]],
             satiation: SatiationConfig) -> FloatArray:
    """float64[len(settings) + 1, 2]: per setting, then for the simulator's own oracle slate,
    (expected CTR per shown item, mean ILD) over the requests."""
    config = SimulatorConfig(horizon=requests, seed=seed, satiation=satiation)
    sim = Simulator(config)
    unit = unit_embeddings(sim, config.n_items)
    row_of = {sim.catalog.item(row, config.start).item_id: row for row in range(config.n_items)}
    look = examination(np.arange(config.k), config.eta)
    ctr = np.empty((len(settings) + 1, requests))
    slates = np.empty((len(settings) + 1, requests, config.k), dtype=np.int64)  # catalog rows
    for index in range(requests):
        request, _ = sim.next_request()
        assert request.candidates is not None
        rows = np.fromiter((row_of[c] for c in request.candidates), dtype=np.int64)
        relevance = sim.relevance(request.user_id, request.candidates)
        utility = (relevance - relevance.mean())[None, :]
        vectors = unit[rows]
        for position, (weight, power, start, order) in enumerate(settings):
            slate = rerank(utility, vectors, config.k, weight, "ild", 0, power, start, order)[0]
            ctr[position, index] = expected_ctr(sim, rows[slate], relevance[slate], look)
            slates[position, index] = rows[slate]
        own = sim.oracle_slate(request)
        slates[-1, index] = [row_of[i] for i in own]
        ctr[-1, index] = expected_ctr(sim, slates[-1, index], sim.relevance(request.user_id, own), look)
    out: FloatArray = np.array([(ctr[p].mean(), intra_list_diversity(slates[p], unit)) for p in range(len(ctr))])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--weights", default="0.05,0.1,0.15,0.2,0.3,0.5,1,3",
                        help="greedy ILD weights in click-probability units")
    parser.add_argument("--positions", default="0:0,1:2", help='"power:from" position variants')
    parser.add_argument("--satiation", type=float, default=0.0,
                        help="users who value variety: the simulator's satiation strength (0 = off)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    satiation = SatiationConfig(strength=args.satiation)
    settings: list[tuple[float, float, int, Order]] = [(0.0, 0.0, 0, "greedy")]
    settings += [(w, p, s, o) for p, s in parse_positions(args.positions) for w in parse_floats(args.weights)
                 for o in ORDERS]
    started = time.perf_counter()
    per_seed = []
    for seed in range(args.seeds):
        per_seed.append(run_seed(seed, args.requests, settings, satiation))
        print(f"  seed {seed} done after {time.perf_counter() - started:.0f} s", flush=True)
    figures = np.mean(per_seed, axis=0)  # float64[settings + 1, 2]: every seed has the same number of requests
    base_ctr, base_ild = figures[0]
    print(f"\noracle ranking, {args.seeds} seeds x {args.requests} requests, satiation {args.satiation:g}: "
          f"expected CTR {base_ctr:.4f}, ILD {base_ild:.3f} (raw MiniLM space)")
    print(f"{'setting':22s} {'exp.CTR':>8s} {'change':>8s} {'ILD':>7s} {'change':>8s}")
    rows = []
    labelled = [(setting_label(*setting), setting[3]) for setting in settings] + [("oracle-satiation", "own")]
    for (label, order), (ctr, ild) in zip(labelled, figures, strict=True):
        ctr_change, ild_change = ctr / base_ctr - 1, ild / base_ild - 1
        rows.append({"label": label, "order": order, "expected_ctr": ctr, "ild": ild,
                     "ctr_change": ctr_change, "ild_change": ild_change})
        print(f"{label:22s} {ctr:8.4f} {100 * ctr_change:+7.1f}% {ild:7.3f} {100 * ild_change:+7.1f}%")
    print()
    for order in ORDERS:
        within = [r for r in rows[1:] if r["order"] == order and r["ctr_change"] >= -MAX_CTR_LOSS]
        best = max(within, key=lambda r: r["ild_change"], default=None)
        if best is not None:
            print(f"{order:8s} order: most ILD within {100 * MAX_CTR_LOSS:.0f}% CTR loss: {best['label']} "
                  f"ILD {100 * best['ild_change']:+.1f}% at CTR {100 * best['ctr_change']:+.1f}%")
    top = max(rows, key=lambda r: r["ild"])
    print(f"highest ILD reached: {top['label']} {top['ild']:.3f} ({100 * top['ild_change']:+.1f}%) at CTR "
          f"{100 * top['ctr_change']:+.1f}%; the goal is ILD {100 * ILD_GOAL:+.0f}% within "
          f"{100 * MAX_CTR_LOSS:.0f}% CTR loss")
    print(f"(all seeds: {time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
