"""Linear TS on BERT against linear TS on text hashing, on the plain and the paraphrased catalog.

    OMP_NUM_THREADS=1 .venv/bin/python bench/encoder_quality.py [--seeds 5] [--requests 3000]
        [--encoders bert,hashing] [--catalogs plain,paraphrase] [--json FILE]

For every catalog and seed, linear Thompson sampling serves the same simulator (same users, items,
requests and click stream; `SimulatorConfig.paraphrase` changes only the item texts) with the same
policy generator, once per encoder, through `online.experiment.run_policy` (the demo's path). Item
vectors: `open_encoder(kind)` ("bert": all-MiniLM-L6-v2 on ONNX Runtime, exported on first use;
"bert-int8": its int8 variant; "hashing": 256 hashed word and bigram buckets), projected to d by
`ItemEmbedding.fitted` (PCA on the initial items with the seed); BERT texts are cached under
.data/bench-embedding-cache. uniform_random on the same simulators gives the CTR baseline.

Printed per catalog and encoder: CTR per shown item, regret (oracle minus policy expected clicks,
summed over the run), CTR of items in their first 50 impressions (new-item CTR), mean and 95%
t-interval over seeds, CTR against uniform_random, and a linear probe: the held-out R² of users'
true attribute logits fitted linearly from the d-wide bandit vectors and from the encoder's own
D-wide vectors (how much of the ground truth each representation carries for new items); then,
paired by seed, each encoder's change against hashing in percent of hashing's mean, with its 95%
t-interval, for those figures and for the regret saved against uniform_random (what learning
with the encoder's vectors gains over not learning).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encoders.base import Encoder  # noqa: E402
from encoders.embedding import ItemEmbedding, item_texts, open_encoder  # noqa: E402
from online.evaluation.sweep import paired_change  # noqa: E402
from online.experiment import ExperimentConfig, run_policy  # noqa: E402
from online.policies import make_policy  # noqa: E402
from online.simulation import Simulator, SimulatorConfig  # noqa: E402
from online.simulation.catalog import n_values, value_columns  # noqa: E402
from online.state import InMemoryStore  # noqa: E402

FIGURES = ("ctr", "regret", "new_item_ctr")
PROBES = ("probe_d", "probe_raw")
PROBE_USERS = 200
"""Users whose taste logits the probe predicts (the first ones, before any drift)."""
BASELINE = "uniform_random"
CACHE = ROOT / ".data" / "bench-embedding-cache"
Results = dict[str, dict[str, dict[str, list[float]]]]
"""catalog -> encoder (or the baseline) -> figure -> one value per seed."""


def open_kind(kind: str) -> Encoder:
    """The encoder named `kind`: bert, bert-int8 or hashing."""
    if kind == "bert-int8":
        return open_encoder("bert", int8=True)
    if kind in ("bert", "hashing"):
        return open_encoder(kind)
    raise ValueError(f"--encoders: unknown encoder {kind!r} (bert, bert-int8, hashing)")


def linear_probe(vectors: np.ndarray, targets: np.ndarray, train: np.ndarray) -> float:
    """Held-out R² of a least-squares fit (with intercept) of targets float[n, t] from vectors
    float[n, v], fitted on the rows where bool[n] `train` holds, scored on the others (pooled
    over the t targets): 1 when the targets are linear in the vectors, about 0 when unrelated."""
    design = np.hstack([vectors, np.ones((len(vectors), 1))]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design[train], targets[train], rcond=None)
    held = targets[~train]
    residual = ((held - design[~train] @ coef) ** 2).sum()
    return float(1.0 - residual / ((held - held.mean(axis=0)) ** 2).sum())


def probe(embedding: ItemEmbedding, simulator: Simulator) -> dict[str, float]:
    """How much of the ground truth the item vectors carry linearly: `linear_probe` of the first
    PROBE_USERS users' attribute logits (one-hot attribute values @ their weights) from the bandit
    vectors (probe_d) and from the encoder's own D-wide vectors (probe_raw), fitted on the
    initial items, scored on the items released later (the new items a policy must judge)."""
    catalog, start = simulator.catalog, simulator.config.start
    items = [catalog.item(row, start) for row in range(len(catalog))]
    onehot = np.zeros((len(items), n_values()))
    for column in value_columns(catalog.codes).T:
        onehot[np.arange(len(items)), column] = 1.0
    logits = onehot @ simulator.population.weights[:PROBE_USERS].T
    train = np.arange(len(items)) < simulator.config.n_initial_items
    raw = embedding.encode_texts(item_texts(items))
    return {"probe_d": linear_probe(embedding(items), logits, train), "probe_raw": linear_probe(raw, logits, train)}


def serve(policy: str, encoder: Encoder, config: SimulatorConfig, seed: int, requests: int, dim: int,
          cache: Path | None, probed: bool = False) -> dict[str, float]:
    """One run of `policy` on the simulator of `config` with `encoder`'s vectors projected to `dim`:
    its figures (FIGURES), the seconds it took (embedding arriving items included) and, when
    `probed`, the PROBES of its vectors."""
    embedding = ItemEmbedding.fitted(encoder, dim, Simulator(config).initial_items(), seed, cache)
    try:
        run = run_policy(make_policy(policy), Simulator(config), embedding, InMemoryStore(), dim,
                         ExperimentConfig(n_requests=requests), np.random.default_rng([seed, 0]))
        probes = probe(embedding, Simulator(config)) if probed else {}
    finally:
        embedding.close()
    summary = run.summary()
    return {**{figure: float(summary[figure]) for figure in FIGURES}, "seconds": run.elapsed_s, **probes}


def measure(encoders: dict[str, Encoder], catalogs: list[str], seeds: int, requests: int, dim: int,
            cache: Path | None, log: bool = True) -> Results:
    """Every encoder (and the baseline) on every catalog and seed; see the module doc."""
    results: Results = {c: {e: {f: [] for f in (*FIGURES, "seconds")} for e in (*encoders, BASELINE)}
                        for c in catalogs}
    for by_encoder in results.values():
        for kind in encoders:
            by_encoder[kind].update({p: [] for p in PROBES})
    hashing = open_encoder("hashing")
    for catalog in catalogs:
        for seed in range(seeds):
            config = SimulatorConfig(horizon=requests, seed=seed, paraphrase=catalog == "paraphrase")
            runs = {kind: (encoder, "linear_ts") for kind, encoder in encoders.items()}
            runs[BASELINE] = (hashing, BASELINE)
            for kind, (encoder, policy) in runs.items():
                figures = serve(policy, encoder, config, seed, requests, dim, cache, probed=kind != BASELINE)
                for figure, value in figures.items():
                    results[catalog][kind][figure].append(value)
                if log:
                    print(f"{catalog:10s} seed {seed} {kind:15s} CTR {figures['ctr']:.4f} regret "
                          f"{figures['regret']:7.1f} new-item CTR {figures['new_item_ctr']:.4f} "
                          f"({figures['seconds']:.0f} s)", flush=True)
    return results


def interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval) over seeds (NaN half-width for one seed)."""
    array = np.asarray(values, dtype=np.float64)
    if len(array) < 2:
        return float(array.mean()), float("nan")
    return float(array.mean()), float(stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array)))


def report(results: Results, reference: str = "hashing") -> list[str]:
    """The printed table: per catalog and encoder mean ± 95% half-width, CTR / random; then
    every other encoder's paired change against `reference`."""
    lines = [f"{'catalog':10s} {'encoder':15s} {'CTR':>17s} {'regret':>17s} {'new-item CTR':>17s}  CTR/random"
             "  probe R² d / D"]
    for catalog, by_encoder in results.items():
        random_ctr = float(np.mean(by_encoder[BASELINE]["ctr"]))
        for kind, figures in by_encoder.items():
            cells = []
            for figure in FIGURES:
                mean, half = interval(figures[figure])
                cells.append(f"{mean:9.1f} ±{half:6.1f}" if figure == "regret" else f"{mean:8.4f} ±{half:7.4f}")
            probes = " / ".join(f"{np.mean(figures[p]):.3f}" for p in PROBES) if PROBES[0] in figures else "-"
            lines.append(f"{catalog:10s} {kind:15s} {' '.join(cells)}  {np.mean(figures['ctr']) / random_ctr:9.2f}x"
                         f"  {probes}")
    for catalog, by_encoder in results.items():
        if reference not in by_encoder:
            continue
        for kind in by_encoder:
            if kind in (reference, BASELINE):
                continue
            changes = [f"{figure} {paired_change(by_encoder[reference][figure], by_encoder[kind][figure]).describe()}"
                       for figure in FIGURES]
            random_regret = np.asarray(by_encoder[BASELINE]["regret"])
            saved = [random_regret - np.asarray(by_encoder[k]["regret"]) for k in (reference, kind)]
            changes.append(f"regret saved against {BASELINE} {paired_change(*saved).describe()}")
            lines.append(f"{catalog:10s} {kind} vs {reference}, paired by seed: " + ", ".join(changes))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--encoders", default="bert,hashing", help="comma list of bert, bert-int8, hashing")
    parser.add_argument("--catalogs", default="plain,paraphrase", help="comma list of plain, paraphrase")
    parser.add_argument("--json", type=Path, default=None, help="also write every per-seed figure here")
    args = parser.parse_args()
    catalogs = args.catalogs.split(",")
    if not set(catalogs) <= {"plain", "paraphrase"} or args.seeds < 1 or args.requests < 1:
        parser.error("--catalogs: plain and/or paraphrase; --seeds, --requests: >= 1")
    encoders = {kind: open_kind(kind) for kind in args.encoders.split(",")}
    started, load = time.perf_counter(), os.getloadavg()
    results = measure(encoders, catalogs, args.seeds, args.requests, args.dim, CACHE)
    print(f"\nlinear TS, {args.seeds} paired seeds x {args.requests} requests, d={args.dim} "
          f"(encoders: {', '.join(f'{k} = {e.name} D={e.dim}' for k, e in encoders.items())}); "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average "
          f"{load[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end, {time.perf_counter() - started:.0f} s")
    print("\n".join(report(results)))
    if args.json:
        meta: dict[str, Any] = {"seeds": args.seeds, "requests": args.requests, "dim": args.dim}
        args.json.write_text(json.dumps({"settings": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
