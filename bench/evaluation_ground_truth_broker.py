"""Off-policy estimates against ground truth through the path users run: the simulator drives the
real worker through a real Kafka broker, `slatestream replay` writes the topics' stretch to an
event file, `slatestream evaluate --data events:FILE` evaluates other policies on it, and each
estimate is compared with that policy's true value in the same world.

    OMP_NUM_THREADS=1 .venv/bin/python bench/evaluation_ground_truth_broker.py [--seeds 2] \
        [--requests 1500] [--partitions 4] [--n-draws 64] [--explore 1.0] [--keep DIR]

Per seed: a fresh `slatestream worker` (WorkerProcess; its configuration file: hashing encoder,
d = 32, engine.n_draws = --n-draws, every other setting the default, so linear TS serves with the
support mix 0.05) on its own topic prefix (--partitions each) of one broker (deploy/kafka). The catalog (initial and
later-released items of `Simulator(SimulatorConfig(horizon=N, seed))`) is published first; then
for each of N requests the bench sends the simulator's RankRequest (its 100 candidates and its
event time) with `SlatestreamClient.request_slate`, lets the simulator respond to the worker's
slate, and publishes `impression_for(slate)` and `click_for(slate, item)` at the simulator's
event times. Then, as a user types them (subprocesses, the console script):

    slatestream replay --since T0 --until T1 --out events.jsonl.gz
    slatestream evaluate --data events:events.jsonl.gz --config evaluate.toml \
        --policies uniform_random,most_popular,linear_ts --freeze-after N/2 --seed SEED --out DIR

evaluate.toml is the worker's file with linear TS's exploration set to --explore (the worker's:
0.3), so `linear_ts@N/2` is linear TS with other hyperparameters; its attribution window is the
events: default (1,800 s), which keeps a replayed round's clicks (1-60 s after its impression)
with it. Compared with the truth (bench/evaluation_ground_truth.py's `true_ctr`: the policy serving
the same requests itself in the same world, exact expected clicks per shown item; the item
embedding is the one evaluate uses: the worker's projection, read from the topic, as its report says):

  uniform_random          whole log;        uniform_random@N/2   second half;
  most_popular@N/2        learned on the log's first half (its impressions and clicks), frozen,
                          on the second half;
  linear_ts@N/2           the same, linear TS with exploration --explore.
The learning variants evaluate also reports (most_popular, linear_ts) have no fixed truth and are
not compared. No fixed snapshot of the worker's state: `--snapshot` reads a `slatestream run
--state` store, not the worker's partitioned tables (see docs/evaluation.md).

Prints per (seed, policy) the truth, the estimate evaluate's report says to read (or none) with
its interval, error and whether it covers, DR, and the reasons when unreliable; then over the
reliable ones the largest relative error and the share of intervals covering the truth (goals
<= 10% and >= 90%), the flagged ones, and the wall time and rounds/s of `slatestream evaluate`
(process start, encoder, six policy variants, 1,000 bootstrap resamples and the report included).
--keep DIR copies each seed's report (evaluation.json, report.md, plots) to DIR/seed<N>.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from bench import evaluation_ground_truth as ground_truth  # noqa: E402
from bench.worker_latency import wait_counts  # noqa: E402
from bench.worker_throughput import load_broker  # noqa: E402
from encoders.embedding import ItemEmbedding  # noqa: E402
from encoders.projection import PcaProjection  # noqa: E402
from online.datasets.logs import load_log  # noqa: E402
from online.engine import EngineConfig  # noqa: E402
from online.evaluation.bootstrap import Estimate  # noqa: E402
from online.events import Click, Impression, Item  # noqa: E402
from online.policies import make_policy  # noqa: E402
from online.simulation import Simulator, SimulatorConfig  # noqa: E402
from online.state import InMemoryStore  # noqa: E402
from slatestream.options import encoder_for, item_embedding, load_config  # noqa: E402
from streams.client import SlatestreamClient, click_for, impression_for  # noqa: E402
from streams.control import ensure_control_topic  # noqa: E402
from streams.projection import read_projection  # noqa: E402
from streams.settings import StreamSettings  # noqa: E402
from streams.testing import WorkerProcess  # noqa: E402
from streams.testing.worker_process import worker_env  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

WORKER_TOML = '[engine]\nn_draws = {n_draws}\n\n[embedding]\nencoder = "hashing"\ndim = {dim}\n'
"""The worker's configuration file: the defaults (support mix 0.05 included) but the encoder."""
EVALUATE_TOML = (WORKER_TOML + '\n[scenarios.default.policy]\nname = "linear_ts"\n'
                 'params = {{ exploration = {explore} }}\n')
"""evaluate's file: the worker's, plus linear TS's exploration (the one scenario serves every request,
as without scenarios)."""


@dataclass
class LiveRun:
    """What one seed's live run left: the feedback published (impressions and clicks, in order)
    and the Kafka-time range that holds every record it sent."""

    feedback: list[Impression | Click]
    since: datetime
    until: datetime
    seconds: float


def all_items(config: SimulatorConfig) -> list[Item]:
    """Every item the world releases over its horizon (a simulator of its own walks the requests)."""
    walker = Simulator(config)
    items = walker.initial_items()
    for _ in range(config.horizon):
        items += walker.next_request()[1]
    return items


def serve_live(settings: StreamSettings, worker: WorkerProcess, config: SimulatorConfig) -> LiveRun:
    """The simulator's requests through the worker: publish the catalog, then per request the
    RankRequest (its candidates and time), the slate back, the simulator's response published as
    the impression and clicks of that slate at the simulator's times."""
    since = datetime.now(UTC) - timedelta(seconds=5)
    started = time.perf_counter()
    items = all_items(config)
    simulator = Simulator(config)
    feedback: list[Impression | Click] = []
    with SlatestreamClient(settings, producer_config={"linger_ms": 2}) as client:
        for item in items:
            client.publish(item)
        client.flush(60)
        wait_counts(worker, len(items), ("items",))
        for _ in range(config.horizon):
            request, _ = simulator.next_request()
            slate = client.request_slate(request, timeout_s=30)
            outcome = simulator.respond(request, slate)
            impression = impression_for(slate, time=outcome.impression.time)
            clicks = [click_for(slate, click.item_id, time=click.time) for click in outcome.clicks]
            for event in (impression, *clicks):
                client.publish(event)
            feedback += [impression, *clicks]
        client.flush(60)
    return LiveRun(feedback, since, datetime.now(UTC) + timedelta(seconds=2), time.perf_counter() - started)


def slatestream_command() -> list[str]:
    """The console script users run (beside this interpreter), else `python -m slatestream`."""
    script = Path(sys.executable).parent / "slatestream"
    return [str(script)] if script.exists() else [sys.executable, "-m", "slatestream"]


def run_command(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run a slatestream command; (wall seconds, its output). RuntimeError with the output on failure."""
    started = time.perf_counter()
    done = subprocess.run([*slatestream_command(), *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = done.stdout[-3000:] + done.stderr[-3000:]
        raise RuntimeError(f"slatestream {args[0]} exited {done.returncode}:\n{output}")
    return time.perf_counter() - started, done.stdout + done.stderr


def truths(events_file: Path, evaluate_config: Path, config: SimulatorConfig, live: LiveRun,
           seed: int, projection: PcaProjection | None = None) -> dict[str, float]:
    """Each compared policy's true CTR (bench/evaluation_ground_truth.true_ctr), with the item
    embedding and engine settings `slatestream evaluate` uses on this file and configuration: the
    worker's `projection` when evaluate read it from the topic, else one fitted on the log."""
    settings = load_config(evaluate_config, dim=None, encoder=None, n_draws=None)
    embed = (item_embedding(settings, load_log(f"events:{events_file}").items, seed) if projection is None
             else ItemEmbedding(encoder_for(settings), settings.embedding.dim, projection))
    n, half = config.horizon, config.horizon // 2
    first_half = [e for e in live.feedback if int(e.request_id[1:]) < half]
    try:
        def truth(policy: Any, start: int, learn_from: list[Any] | None = None) -> float:
            return ground_truth.true_ctr(config, embed, policy, InMemoryStore(), n, start, seed,
                                         None if learn_from is None else list(learn_from), settings.engine)

        return {
            "uniform_random": truth(make_policy("uniform_random"), 0),
            f"uniform_random@{half}": truth(make_policy("uniform_random"), half),
            f"most_popular@{half}": truth(make_policy("most_popular"), half, first_half),
            f"linear_ts@{half}": truth(settings.build_policy("linear_ts"), half, first_half),
        }
    finally:
        embed.close()


def run_seed(broker: Any, seed: int, args: argparse.Namespace, tmp: Path) -> tuple[list[dict[str, Any]], float, int]:
    """One seed end to end: (rows, evaluate's wall seconds, its rounds)."""
    config = SimulatorConfig(horizon=args.requests, seed=seed)
    settings = StreamSettings(broker_url=broker.url, topic_prefix=f"gt{seed}.", partitions=args.partitions,
                              broker_session_timeout_s=6.0)
    ensure_topics(settings)
    ensure_control_topic(settings)
    work = tmp / f"seed{seed}"
    work.mkdir()
    worker_toml, evaluate_toml = work / "worker.toml", work / "evaluate.toml"
    worker_toml.write_text(WORKER_TOML.format(dim=args.dim, n_draws=args.n_draws))
    evaluate_toml.write_text(EVALUATE_TOML.format(dim=args.dim, n_draws=args.n_draws, explore=args.explore))
    with WorkerProcess(settings, work / "store", work / "worker.log",
                       ("--config", str(worker_toml), "--seed", str(seed))) as worker:
        worker.wait_ready()
        live = serve_live(settings, worker, config)
        counts = wait_counts(worker, len(live.feedback), ("learned", "dead_lettered"))
    env = worker_env(settings, work / "store")
    events = work / "events.jsonl.gz"
    replay_s, _ = run_command(["replay", "--since", live.since.isoformat(), "--until", live.until.isoformat(),
                               "--out", str(events)], env)
    evaluate_s, _ = run_command(["evaluate", "--data", f"events:{events}", "--config", str(evaluate_toml),
                                 "--policies", "uniform_random,most_popular,linear_ts", "--freeze-after",
                                 str(args.requests // 2), "--seed", str(seed), "--precision", str(args.precision),
                                 "--out", str(work / "report")], env)
    report = json.loads((work / "report" / "evaluation.json").read_text())
    log = report["counts"]
    rounds = int(log["rounds"])
    print(f"seed {seed}: live {args.requests} requests in {live.seconds:.0f} s (worker: ranked {counts.get('ranked')}, "
          f"learned {counts.get('learned')} of {len(live.feedback)} impressions and clicks, dead-lettered "
          f"{counts.get('dead_lettered')}); replay {replay_s:.1f} s: {log['events']:,} events, {rounds:,} rounds, "
          f"{log['rounds_evaluated']:,} with their impression, {log['stray_feedback']} stray; evaluate "
          f"{evaluate_s:.1f} s = {rounds / evaluate_s:.1f} rounds/s; on-policy CTR {report['on_policy']['value']:.4f}",
          flush=True)
    if args.keep:
        shutil.copytree(work / "report", args.keep / f"seed{seed}", dirs_exist_ok=True)
    used = report["projection"]  # evaluate embeds with the worker's projection, read from the topic
    served = read_projection(settings, used["key"]) if used["source"] == "topic" else None
    projection = None if served is None else served.projection
    return compare(report, truths(events, evaluate_toml, config, live, seed, projection), seed), evaluate_s, rounds


def clipped_note(verdict: dict[str, Any]) -> str:
    """" (clipped from -0.0123)" when the report clipped the estimate to the reward range, else ""."""
    raw = verdict.get("clipped_from")
    return "" if raw is None else f" (clipped from {raw:.4f})"


def compare(report: dict[str, Any], truth: dict[str, float], seed: int) -> list[dict[str, Any]]:
    """A row per compared policy of evaluate's report: truth, what to read, error, coverage."""
    rows = []
    for policy in report["policies"]:
        label = policy["policy"]
        if label not in truth:
            continue
        assessment, estimates = policy["assessment"], policy["estimates"]
        read, dr = assessment["read"], Estimate(**estimates["dr"])
        estimate = None if read is None else Estimate(**estimates[read])
        value = truth[label]
        rows.append({"seed": seed, "policy": label, "truth": value, "estimate": estimate, "dr": dr,
                     "why": assessment["why"]})
        shown = "no reliable estimate" if estimate is None else (
            f"{read} {estimate.value:.4f} [{estimate.ci_low:.4f}, {estimate.ci_high:.4f}] "
            f"err {estimate.value / value - 1:+.1%} {'covers' if estimate.covers(value) else 'MISSES'}"
            + clipped_note(assessment["verdicts"].get(read, {})))
        weights = assessment["diagnostics"]["dr"]
        print(f"seed {seed} {label:22s} truth {value:.4f}  {shown}  | dr {dr.value:.4f} [{dr.ci_low:.4f}, "
              f"{dr.ci_high:.4f}] err {dr.value / value - 1:+.1%} ±{ground_truth.relative_half_width(dr):.0%}; ESS "
              f"{weights['ess']:,.0f}, largest round {weights['max_round_share']:.1%}, mean weight "
              f"{weights['mean_weight']:.2f} [{weights['mean_low']:.2f}, {weights['mean_high']:.2f}]", flush=True)
    return rows


def summarise(rows: list[dict[str, Any]], evaluate_s: list[float], rounds: list[int]) -> None:
    """The goals over the estimates the report calls reliable, the flagged ones, evaluate's speed."""
    ground_truth.print_reliable_goals(rows)
    for r in rows:
        if r["estimate"] is None:
            print(f"flagged unreliable: seed {r['seed']} {r['policy']} (truth {r['truth']:.4f}, DR "
                  f"{r['dr'].value:.4f}, err {r['dr'].value / r['truth'] - 1:+.1%}): {r['why']}")
    ground_truth.print_dr_widths(rows, max(rounds))
    total_s, total_rounds = sum(evaluate_s), sum(rounds)
    print(f"slatestream evaluate (3 policies + 3 frozen variants, 1,000 bootstrap resamples): "
          f"{', '.join(f'{s:.1f}' for s in evaluate_s)} s wall for {', '.join(f'{n:,}' for n in rounds)} rounds = "
          f"{total_rounds / total_s:.1f} rounds/s, {6 * total_rounds / total_s:.0f} policy-rounds/s (process start, "
          "encoder and report included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--partitions", type=int, default=4, help="partitions per topic (StreamSettings' default: 4)")
    parser.add_argument("--n-draws", type=int, default=64, help="engine.n_draws in both files (the default: 64)")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--explore", type=float, default=1.0, help="linear TS's exploration in evaluate's file")
    parser.add_argument("--precision", type=float, default=ground_truth.PRECISION,
                        help="evaluate's --precision: the reliability rule's precision target")
    parser.add_argument("--keep", type=Path, default=None, help="copy each seed's evaluate report under this folder")
    args = parser.parse_args()
    ground_truth.RULE = ground_truth.ReliabilityRule(precision=args.precision)
    if args.seeds < 1 or args.requests < 60:
        parser.error("--seeds >= 1 and --requests >= 60")
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    evaluate_s: list[float] = []
    rounds: list[int] = []
    with load_broker().KafkaBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            seed_rows, seconds, count = run_seed(broker, seed, args, Path(tmp))
            rows += seed_rows
            evaluate_s.append(seconds)
            rounds.append(count)
    print(f"\n{args.seeds} seeds x {args.requests} requests through the broker and worker (linear TS, support mix "
          f"{EngineConfig().support_epsilon}, {args.n_draws} draws, hashing, d={args.dim}, "
          f"{args.partitions} partition(s)); evaluated linear TS exploration {args.explore}; "
          f"{time.perf_counter() - started:.0f} s in all")
    summarise(rows, evaluate_s, rounds)


if __name__ == "__main__":
    main()
