"""Linear TS hyperparameters from data (empirical Bayes), checked on the simulator and on OBD.

    OMP_NUM_THREADS=1 .venv/bin/python bench/empirical_bayes.py [--seeds 6] [--requests 3000]
        [--tune-seeds 100,101,102] [--obd PATH] [--no-sim]

Simulator: linear TS with its default hyperparameters runs on the tuning seeds; from each run's
end state (the population sums and every user's sums, read back from the store) type-II maximum
likelihood (online/policies/empirical_bayes.py) estimates user_prior_precision and noise_var, and
the pooled sums pop_prior_precision; the estimates are combined over the tuning seeds (geometric
mean). Then, on the held-out seeds 0..seeds-1 (paired), linear TS with the defaults and with the
estimates runs closed-loop: CTR and regret with 95% t-intervals of the paired differences, and the
held-out users' log evidence under both (from the default runs' end states: which hyperparameters
explain unseen users' clicks better). Then hybrid TS's item prior precision, by the method of
moments from its item sums on the tuning seeds of the "hidden" quality world (bench/hybrid_quality.py),
and the held-out regret with it against the default.

OBD (--obd, the obp 0.4.1 sample's random/all log): linear TS's sums over the whole log (item
vectors from item_context.csv, crossed with the user context as `slatestream evaluate` does) give
type-II ML pop_prior_precision and noise_var (a log without user ids has only the population level);
checked by the predictive log likelihood of the log's second half given its first half,
log p(second | first) = evidence(all) - evidence(first), per exposure, under the defaults and under
the estimates fitted on the first half alone.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from scipy import stats

from encoders.embedding import ItemEmbedding
from encoders.hashing import HashingEncoder
from online.experiment import ExperimentConfig, run_policy
from online.policies.empirical_bayes import fit_population_prior, fit_user_prior, item_prior_precision, log_evidence
from online.policies.hybrid_stats import HybridGlobal
from online.policies.hybrid_ts import HybridThompsonSampling, HybridTSParams
from online.policies.linear_stats import LinearStats
from online.policies.linear_ts import LinearThompsonSampling, LinearTSParams
from online.simulation import Simulator, SimulatorConfig, TasteConfig
from online.state import InMemoryStore

DIM = 32
ENCODER = HashingEncoder(dim=256)


def interval(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    if len(array) < 2:
        return float(array.mean()), float("nan")
    return float(array.mean()), float(stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array)))


def simulate(params: LinearTSParams, seed: int, requests: int) -> tuple[dict[str, float], LinearStats,
                                                                          list[LinearStats], LinearThompsonSampling]:
    """(summary, population sums, user sums, policy) of one closed-loop linear TS run."""
    config = SimulatorConfig(horizon=requests, seed=seed)
    embed = ItemEmbedding.fitted(ENCODER, DIM, Simulator(config).initial_items(), seed)
    policy, store = LinearThompsonSampling(params), InMemoryStore()
    run = run_policy(policy, Simulator(config), embed, store, DIM, ExperimentConfig(n_requests=requests),
                     np.random.default_rng([seed, 0]))
    blob = store.get("linear_ts/global")
    assert blob is not None
    users = [policy.decode_user(value) for _, value in store.scan_prefix("linear_ts/user/")]
    return run.summary(), policy.decode_global(blob), users, policy


def estimate(policy: LinearThompsonSampling, population: LinearStats, users: list[LinearStats]) -> LinearTSParams:
    user_fit = fit_user_prior(users, policy.population_mean(population))
    pooled_fit = fit_population_prior(population)
    return replace(policy.params, user_prior_precision=user_fit.prior_precision, noise_var=user_fit.noise_var,
                   pop_prior_precision=pooled_fit.prior_precision)


def geometric_mean(values: list[float]) -> float:
    return float(math.exp(np.mean(np.log(values))))


def simulator_check(args: argparse.Namespace) -> None:
    defaults = LinearTSParams()
    fits = []
    for seed in (int(s) for s in args.tune_seeds.split(",")):
        _, population, users, policy = simulate(defaults, seed, args.requests)
        fits.append(estimate(policy, population, users))
        f = fits[-1]
        print(f"  tuning seed {seed}: user_prior_precision {f.user_prior_precision:.1f}, noise_var {f.noise_var:.4f}, "
              f"pop_prior_precision {f.pop_prior_precision:.2f} ({len(users)} users)", flush=True)
    fitted = replace(defaults, **{name: geometric_mean([getattr(f, name) for f in fits])
                                  for name in ("user_prior_precision", "noise_var", "pop_prior_precision")})
    print(f"estimate: user_prior_precision {fitted.user_prior_precision:.1f} (default "
          f"{defaults.user_prior_precision}), noise_var {fitted.noise_var:.4f} ({defaults.noise_var}), "
          f"pop_prior_precision {fitted.pop_prior_precision:.2f} ({defaults.pop_prior_precision})")
    figures: dict[str, dict[str, list[float]]] = {"default": {}, "empirical Bayes": {}}
    for seed in range(args.seeds):
        for label, params in (("default", defaults), ("empirical Bayes", fitted)):
            summary, population, users, policy = simulate(params, seed, args.requests)
            for name in ("ctr", "regret"):
                figures[label].setdefault(name, []).append(summary[name])
            if label == "default":
                mean = policy.population_mean(population)
                n = sum(u.n_exposures for u in users)
                for tag, p in (("evidence default", defaults), ("evidence EB", fitted)):
                    value = log_evidence(users, mean, p.user_prior_precision, p.noise_var) / n
                    figures[label].setdefault(tag, []).append(value)
        print(f"  held-out seed {seed}: CTR default {figures['default']['ctr'][-1]:.4f}, "
              f"EB {figures['empirical Bayes']['ctr'][-1]:.4f}", flush=True)
    print(f"\nheld-out seeds 0..{args.seeds - 1}, {args.requests} requests, paired (EB minus default):")
    for name in ("ctr", "regret"):
        base = figures["default"][name]
        mean, half = interval(np.subtract(figures["empirical Bayes"][name], base).tolist())
        print(f"  {name:7s} default {np.mean(base):.4f}  EB {np.mean(figures['empirical Bayes'][name]):.4f}  "
              f"difference {mean:+.4f} [{mean - half:+.4f}, {mean + half:+.4f}] ({100 * mean / np.mean(base):+.1f}%)")
    gain = np.subtract(figures["default"]["evidence EB"], figures["default"]["evidence default"]).tolist()
    mean, half = interval(gain)
    print(f"  held-out users' log evidence per exposure, EB minus default: {mean:+.4f} [{mean - half:+.4f}, "
          f"{mean + half:+.4f}] nats (default {np.mean(figures['default']['evidence default']):.4f})")


def hybrid_run(params: HybridTSParams, seed: int, requests: int, taste: TasteConfig) -> tuple[float, HybridGlobal]:
    """(regret, end population state) of hybrid TS in a world of `taste`."""
    config = SimulatorConfig(horizon=requests, seed=seed, taste=taste)
    embed = ItemEmbedding.fitted(ENCODER, DIM, Simulator(config).initial_items(), seed)
    policy, store = HybridThompsonSampling(params), InMemoryStore()
    run = run_policy(policy, Simulator(config), embed, store, DIM, ExperimentConfig(n_requests=requests),
                     np.random.default_rng([seed, 0]))
    blob = store.get("hybrid_ts/global")
    assert blob is not None
    return float(run.summary()["regret"]), policy.decode_global(blob)


def item_prior_check(args: argparse.Namespace) -> None:
    """Hybrid TS's item prior precision from its item sums, in the "hidden" quality world of
    bench/hybrid_quality.py (quality std 1.0 in no text), and the held-out regret with it."""
    taste, defaults = TasteConfig(quality_scale=1.0), HybridTSParams(estimate_item_prior=False)
    estimates = []
    for seed in (int(s) for s in args.tune_seeds.split(",")):
        _, state = hybrid_run(defaults, seed, args.requests, taste)
        policy = HybridThompsonSampling(defaults)  # the fixed prior's fit: the estimate's first pass
        value = item_prior_precision(state.items, policy.population_mean(state), defaults.noise_var)
        print(f"  hybrid, hidden-quality world, tuning seed {seed}: item_prior_precision {value}", flush=True)
        if value is not None:
            estimates.append(value)
    if not estimates:
        print("  no item-prior estimate (no spread beyond noise)")
        return
    fitted = replace(defaults, item_prior_precision=geometric_mean(estimates))
    print(f"estimate: item_prior_precision {fitted.item_prior_precision:.0f} "
          f"(default {defaults.item_prior_precision:.0f})")
    differences = []
    for seed in range(args.seeds):
        base, _ = hybrid_run(defaults, seed, args.requests, taste)
        other, _ = hybrid_run(fitted, seed, args.requests, taste)
        differences.append(other - base)
    mean, half = interval(differences)
    print(f"  held-out seeds 0..{args.seeds - 1}, hidden world: regret with the estimate minus with the default "
          f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}]")


def obd_sums(path: Path, stop: int | None) -> LinearStats:
    """Linear TS's population sums over the first `stop` rounds (None: all) of OBD random/all."""
    from online.catalog import Catalog
    from online.datasets import load_obd_arrays, obd_events, obd_items, obd_paths
    from online.engine import Engine
    from online.evaluation.sweep_points import obd_item_embed
    from online.events import Click, Impression
    from online.features import ContextCrossFeatures

    log_csv, item_csv = obd_paths(path, "random", "all")
    arrays = load_obd_arrays(log_csv, item_csv)
    assert arrays.action_context is not None
    dim = min(8, arrays.action_context.shape[1])
    embed = obd_item_embed(arrays.action_context, dim)
    items = list(obd_items(item_csv, SimulatorConfig().start))
    engine = Engine(LinearThompsonSampling(), InMemoryStore(), Catalog(dim=dim), np.random.default_rng(0),
                    ContextCrossFeatures(arrays.context_names))
    engine.add_items(items, embed(items))
    feedback: list[Impression | Click] = []
    rounds = 0
    for event in obd_events(log_csv, item_csv):
        if isinstance(event, Impression):
            rounds += 1
            if stop is not None and rounds > stop:
                break
        if isinstance(event, Impression | Click):
            feedback.append(event)
    for start in range(0, len(feedback), 5000):
        engine.observe(feedback[start : start + 5000])
    pooled: LinearStats = engine.global_state
    return pooled


def obd_check(path: Path) -> None:
    defaults = LinearTSParams()
    whole, first = obd_sums(path, None), obd_sums(path, 5000)
    zero = np.zeros(whole.dim)
    fit_all, fit_first = fit_population_prior(whole), fit_population_prior(first)
    print(f"\nOBD random/all: {whole.n_exposures:.0f} exposures, {whole.reward_total:.0f} clicks, D = {whole.dim}")
    print(f"  estimate (whole log): pop_prior_precision {fit_all.prior_precision:.3g} (default "
          f"{defaults.pop_prior_precision}), noise_var {fit_all.noise_var:.4f} (default {defaults.noise_var})")
    print(f"  estimate (first half): pop_prior_precision {fit_first.prior_precision:.3g}, noise_var "
          f"{fit_first.noise_var:.4f}")
    held_out = whole.n_exposures - first.n_exposures
    for label, precision, noise in (("default", defaults.pop_prior_precision, defaults.noise_var),
                                    ("EB (first half)", fit_first.prior_precision, fit_first.noise_var)):
        predictive = (log_evidence([whole], zero, precision, noise) - log_evidence([first], zero, precision, noise))
        print(f"  {label:16s} log p(second half | first half) per exposure: {predictive / held_out:+.4f} nats")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--tune-seeds", default="100,101,102")
    parser.add_argument("--obd", type=Path, default=None, help="an obp-style obd folder (random/all inside)")
    parser.add_argument("--no-sim", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    if not args.no_sim:
        simulator_check(args)
        item_prior_check(args)
    if args.obd is not None:
        obd_check(args.obd)
    print(f"(all: {time.perf_counter() - started:.0f} s, a shared machine)")


if __name__ == "__main__":
    main()
