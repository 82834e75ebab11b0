"""Off-policy estimates against ground truth: the simulator serves N requests with a logging
policy through `Engine.rank` (linear TS with the support mix: the code the worker runs), the log
(items, requests, slates, impressions, clicks) is evaluated for other policies, and each estimate
is compared with that policy's true value in the same world: the simulator's exact expected
clicks per shown item when the policy serves the same requests itself.

    OMP_NUM_THREADS=1 .venv/bin/python bench/evaluation_ground_truth.py [--seeds 5] [--first-seed 0] [--requests 3000] \
        [--n-draws 64] [--reward-model log_ctr,river] [--precision 0.10]

--n-draws sets the Monte Carlo draws of the logger and of the evaluated policies (the worker's
default: 64). The logged propensities are shares of them: where a served item's probability times
n_draws is small their inverse is biased low, which the report sees as a mean weight below 1.
--reward-model names DR's reward model(s) (`DriverConfig.reward_model`), comma-separated: each
evaluates the same log against the same truths, and with two the DR errors are compared per
(seed, policy) (paired).

Evaluated policies, all fixed, so that the online truth is what the estimate targets (a learning
policy evaluated on a log learns from the logger's feedback, online from its own):
  uniform_random             over the whole log;
  snapshot@N/2               the logger's own state at request N/2 (a state-store snapshot),
                             on the requests from then on (before, its state holds their rewards);
  most_popular@N/2           learned on the log's first half, frozen, on the second half;
  linear_ts_explore1@N/2     linear TS with exploration 1.0 (the logger's: 0.3), the same.
The requests carry the simulator's 100 candidates each; clicks follow its position-based model,
so the per-position estimators apply. Prints per (seed, policy) the truth, the estimate the
report says to read (or none) with its interval, DR, and the verdicts; then, over the estimates
the report calls reliable, the largest relative error and the share of intervals covering the
truth (goals: <= 10% and >= 90%), and the unreliable ones flagged with their reasons; and per
policy DR's interval half-width and the requests that would bring it within --precision (the
reliability rule's precision target, `ReliabilityRule.precision`).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from encoders.embedding import ItemEmbedding, open_encoder
from online.catalog import Catalog
from online.engine import Engine, EngineConfig
from online.evaluation.assessment import PRECISION, ReliabilityRule, relative_half_width
from online.evaluation.driver import DriverConfig, PolicyVariant, evaluate_log
from online.evaluation.snapshots import OverlayStore
from online.events import Click, Impression
from online.policies import make_policy
from online.policies.base import Policy
from online.policies.linear_ts import LinearTSParams
from online.simulation import Simulator, SimulatorConfig
from online.state import InMemoryStore, StateStore

RULE = ReliabilityRule()  # --precision sets its precision
ENGINE = EngineConfig()  # the defaults the worker serves with: 64 draws, support mix 0.05 (--n-draws sets draws)


def logged_run(config: SimulatorConfig, embed: ItemEmbedding, n: int,
               seed: int) -> tuple[list[Any], InMemoryStore, datetime]:
    """The log of linear TS serving n requests (learning after each), a copy of its state store
    at request n // 2, and that request's time."""
    simulator = Simulator(config)
    engine = Engine(make_policy("linear_ts"), InMemoryStore(), Catalog(dim=embed.dim), np.random.default_rng([seed, 7]),
                    config=ENGINE)
    initial = simulator.initial_items()
    engine.add_items(initial, embed(initial))
    events: list[Any] = list(initial)
    snapshot, taken = InMemoryStore(), config.start
    for step in range(n):
        request, arrived = simulator.next_request()
        if step == n // 2:
            snapshot.put_many(engine.store.scan_prefix(""))
            taken = request.time
        if arrived:
            engine.add_items(arrived, embed(arrived))
            events += arrived
        slate = engine.rank(request)
        outcome = simulator.respond(request, slate)
        events += [request, slate, outcome.impression, *outcome.clicks]
        engine.observe([outcome.impression, *outcome.clicks])
    return events, snapshot, taken


def true_ctr(config: SimulatorConfig, embed: ItemEmbedding, policy: Policy[Any, Any], store: StateStore,
             n: int, start: int, seed: int, learn_from: list[Any] | None = None,
             engine_config: EngineConfig | None = None) -> float:
    """Exact expected clicks per shown item of `policy` (state in `store`, plus `learn_from`
    events learned once, then fixed) serving requests start..n-1 of the world, with
    `engine_config` (default: this bench's ENGINE)."""
    simulator = Simulator(config)
    engine = Engine(policy, OverlayStore(store), Catalog(dim=embed.dim), np.random.default_rng([seed, 99]),
                    config=engine_config or ENGINE)
    initial = simulator.initial_items()
    engine.add_items(initial, embed(initial))
    expected = shown = 0.0
    for step in range(n):
        request, arrived = simulator.next_request()
        if arrived:
            engine.add_items(arrived, embed(arrived))
        if step == start and learn_from:
            engine.observe(learn_from)
        if step >= start:
            slate = engine.rank(request)
            expected += simulator.respond(request, slate).expected_clicks
            shown += len(slate.items)
    return expected / shown


def first_half_feedback(events: list[Any], n: int) -> list[Any]:
    """The impressions and clicks of requests 0 .. n/2 - 1 (request ids r000000 ...)."""
    return [e for e in events if isinstance(e, Impression | Click) and int(e.request_id[1:]) < n // 2]


def evaluate_seed(seed: int, n: int, encoder: Any, dim: int, reward_models: list[str]) -> list[dict[str, Any]]:
    config = SimulatorConfig(horizon=n, seed=seed)
    embed = ItemEmbedding.fitted(encoder, dim, Simulator(config).initial_items(), seed)
    events, snapshot, taken = logged_run(config, embed, n, seed)
    explore = LinearTSParams(exploration=1.0)
    variants = [
        PolicyVariant("uniform_random"),
        PolicyVariant("linear_ts", label=f"snapshot@{n // 2}", state=snapshot, since=taken),
        PolicyVariant("most_popular", label=f"most_popular@{n // 2}", freeze_after=n // 2),
        PolicyVariant(make_policy("linear_ts", explore), label=f"linear_ts_explore1@{n // 2}", freeze_after=n // 2),
    ]
    half = first_half_feedback(events, n)
    truths = {
        "uniform_random": true_ctr(config, embed, make_policy("uniform_random"), InMemoryStore(), n, 0, seed),
        f"snapshot@{n // 2}": true_ctr(config, embed, make_policy("linear_ts"), snapshot, n, n // 2, seed),
        f"most_popular@{n // 2}": true_ctr(config, embed, make_policy("most_popular"), InMemoryStore(), n, n // 2,
                                           seed, copy.copy(half)),
        f"linear_ts_explore1@{n // 2}": true_ctr(config, embed, make_policy("linear_ts", explore), InMemoryStore(),
                                                 n, n // 2, seed, copy.copy(half)),
    }
    rows = []
    for reward_model in reward_models:
        config = DriverConfig(engine=ENGINE, seed=seed, reward_model=reward_model,  # type: ignore[arg-type]
                              reliability=RULE)
        result = evaluate_log(events, variants, embed, embed.dim, config=config)
        rows += report_seed(seed, reward_model, result, truths)
    return rows


def report_seed(seed: int, reward_model: str, result: Any, truths: dict[str, float]) -> list[dict[str, Any]]:
    """Print and return one row per evaluated policy of one seed's evaluation."""
    rows = []
    for evaluation in result.policies:
        truth, read = truths[evaluation.policy], evaluation.assessment.read
        estimate = None if read is None else evaluation.estimates[read]
        dr = evaluation.estimates["dr"]
        rows.append({"seed": seed, "reward_model": reward_model, "policy": evaluation.policy, "truth": truth,
                     "read": read, "estimate": estimate, "dr": dr, "on_policy": result.on_policy.value,
                     "reasons": [f"{name}: {r}" for name in ("dr", "replay") if name in evaluation.assessment.verdicts
                                 for r in evaluation.assessment.verdicts[name].reasons]})
        shown = "no reliable estimate" if estimate is None else (
            f"{read} {estimate.value:.4f} [{estimate.ci_low:.4f}, {estimate.ci_high:.4f}] "
            f"err {estimate.value / truth - 1:+.1%} {'covers' if estimate.covers(truth) else 'MISSES'}")
        weights = evaluation.assessment.diagnostics["dr"]
        print(f"seed {seed} {reward_model:7s} {evaluation.policy:24s} truth {truth:.4f}  {shown}  | dr {dr.value:.4f} "
              f"[{dr.ci_low:.4f}, {dr.ci_high:.4f}] err {dr.value / truth - 1:+.1%} ±{relative_half_width(dr):.0%}; "
              f"ESS {weights.ess:,.0f} ({weights.ess_share:.1%}), largest round {weights.max_round_share:.1%} "
              f"(weight {weights.max_weight:.3g}), mean weight {weights.mean_weight:.2f} [{weights.mean_low:.2f}, "
              f"{weights.mean_high:.2f}]", flush=True)
    return rows


def print_reliable_goals(rows: list[dict[str, Any]]) -> None:
    """Over the estimates the report calls reliable (rows whose "estimate" is not None): their
    relative error, interval coverage and widths against the issue's goals."""
    reliable = [r for r in rows if r["estimate"] is not None]
    if not reliable:
        print(f"reliable: 0 of {len(rows)} (seed, policy) pairs")
        return
    errors = [abs(r["estimate"].value / r["truth"] - 1) for r in reliable]
    covered = sum(r["estimate"].covers(r["truth"]) for r in reliable)
    widths = [relative_half_width(r["estimate"]) for r in reliable]
    print(f"reliable: {len(reliable)} of {len(rows)} (seed, policy) pairs; relative error max {max(errors):.1%}, "
          f"median {float(np.median(errors)):.1%} (goal <= 10%); intervals covering the truth {covered} of "
          f"{len(reliable)} = {covered / len(reliable):.0%} (goal >= 90%); interval half-widths "
          f"{min(widths):.0%} to {max(widths):.0%} of the value (median {float(np.median(widths)):.0%})")
    within = sum(e <= RULE.precision for e in errors)
    print(f"reliable within {RULE.precision:.0%} of the truth: {within} of {len(reliable)}")


def print_dr_widths(rows: list[dict[str, Any]], n: int) -> None:
    """Per policy, DR's interval half-width over its value (median over seeds) and the requests
    that would bring it to the precision target (it shrinks as 1 / sqrt(rounds))."""
    for policy in dict.fromkeys(r["policy"] for r in rows):
        widths = [relative_half_width(r["dr"]) for r in rows if r["policy"] == policy]
        width = float(np.median(widths))
        print(f"DR width {policy:24s} ±{width:.0%} (median of {len(widths)}); about "
              f"{n * (width / RULE.precision) ** 2:,.0f} requests would reach ±{RULE.precision:.0%}")


def summarise_reads(rows: list[dict[str, Any]], n: int) -> None:
    """The estimates the report calls reliable: their error, coverage and widths; the flagged
    ones with DR's error and reasons; DR's widths per policy."""
    print_reliable_goals(rows)
    for r in rows:
        if r["estimate"] is None:
            print(f"flagged unreliable: seed {r['seed']} {r['policy']} (truth {r['truth']:.4f}, DR "
                  f"{r['dr'].value:.4f}, err {r['dr'].value / r['truth'] - 1:+.1%}): {'; '.join(r['reasons'])}")
    print_dr_widths(rows, n)


def dr_errors(rows: list[dict[str, Any]]) -> dict[tuple[int, str], float]:
    """{(seed, policy): |DR / truth - 1|}."""
    return {(r["seed"], r["policy"]): abs(r["dr"].value / r["truth"] - 1) for r in rows}


def summarise_dr(by_model: dict[str, list[dict[str, Any]]]) -> None:
    """DR per reward model (every (seed, policy), reliable or not): relative error and coverage,
    and with two or more models the paired comparison against the first."""
    for name, rows in by_model.items():
        errors = list(dr_errors(rows).values())
        covered = sum(r["dr"].covers(r["truth"]) for r in rows)
        print(f"DR with reward model {name}: relative error median {float(np.median(errors)):.1%}, max "
              f"{max(errors):.1%}, mean {float(np.mean(errors)):.1%}; intervals covering the truth {covered} of "
              f"{len(rows)} = {covered / len(rows):.0%}")
    names = list(by_model)
    base = dr_errors(by_model[names[0]])
    for name in names[1:]:
        other = dr_errors(by_model[name])
        ratio = [other[key] / base[key] if base[key] > 0 else float("inf") for key in base]
        closer = sum(other[key] < base[key] for key in base)
        print(f"paired, {name} vs {names[0]}: closer to the truth in {closer} of {len(base)} (seed, policy) pairs; "
              f"ratio of DR relative errors median {float(np.median(ratio)):.2f}; mean error "
              f"{float(np.mean(list(other.values()))):.2%} vs {float(np.mean(list(base.values()))):.2%}")


def main() -> None:
    global ENGINE, RULE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--encoder", choices=["auto", "onnx", "hashing"], default="hashing")
    parser.add_argument("--n-draws", type=int, default=ENGINE.n_draws)
    parser.add_argument("--reward-model", default="log_ctr",
                        help="DR's reward model(s), comma-separated: log_ctr, river, policy (default log_ctr)")
    parser.add_argument("--precision", type=float, default=PRECISION,
                        help="the reliability rule's precision target (interval half-width / value)")
    args = parser.parse_args()
    RULE = ReliabilityRule(precision=args.precision)
    reward_models = [name.strip() for name in args.reward_model.split(",") if name.strip()]
    for name in reward_models:
        DriverConfig(reward_model=name)  # type: ignore[arg-type]  # rejects an unknown name now
    ENGINE = EngineConfig(n_draws=args.n_draws)
    encoder = open_encoder(args.encoder)  # type: ignore[arg-type]
    started = time.perf_counter()
    rows = [row for seed in range(args.seeds)
            for row in evaluate_seed(seed + args.first_seed, args.requests, encoder, args.dim, reward_models)]
    print(f"\n{args.seeds} seeds x {args.requests} requests, logger linear TS (support mix {ENGINE.support_epsilon}, "
          f"{ENGINE.n_draws} draws), encoder {encoder.name}, d={args.dim}, {time.perf_counter() - started:.0f} s")
    by_model = {name: [r for r in rows if r["reward_model"] == name] for name in reward_models}
    for name, model_rows in by_model.items():
        print(f"\n--- reward model {name}: the estimates the report reads")
        summarise_reads(model_rows, args.requests)
    print()
    summarise_dr(by_model)


if __name__ == "__main__":
    main()
