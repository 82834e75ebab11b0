"""`slatestream evaluate`: counterfactual evaluation of policies on real logs, and its report.

    slatestream evaluate --data obd:PATH --policies linear_ts,bernoulli_ts,uniform_random --out DIR
    slatestream evaluate --sweep --data sim|obd:PATH --out DIR     # objective weights (streams/sweep.py)

--data names the log: `obd:PATH` (PATH = obp's obd folder, with --behavior-policy and
--campaign), `mind:PATH` (a folder with behaviors.tsv and news.tsv), or `events:PATH` (the
project's JSON-lines event file). With --config (or $SLATESTREAM_CONFIG) the policies named
in the configuration are evaluated with its hyperparameters. The pure driver (`online.evaluation.driver`) does the
work; this module loads the data, shows a progress bar and writes DIR/evaluation.json,
DIR/report.md and its PNG plots.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import numpy as np
from tqdm import tqdm

from online.config import CONFIG_ENV
from online.evaluation.driver import DriverConfig, evaluate_log
from online.evaluation.rounds import AnyEvent
from online.evaluation.summary import EvaluationResult
from online.events import Item, RankRequest
from online.features import ContextCrossFeatures, FeatureMap, ItemFeatures
from online.policies import POLICIES
from online.policies.base import Policy

OBD_CAVEAT = (
    "The OBD sample shipped with obp has 10,000 rows per log and only ~35-40 clicks, so these "
    "intervals validate the estimators (the logging policy's own estimate must cover its on-policy "
    "CTR) but are far too wide to rank learning policies. Policy quality is shown on the simulator "
    "(`slatestream demo`)."
)
ESTIMATOR_ORDER = ("replay", "ips", "snips", "dr", "dm", "slate_iips", "slate_rips", "slate_sips")


@dataclass(frozen=True)
class LoadedLog:
    """A log ready for the driver: events (lazy), items to fit the projection on, the
    feature map, the expected number of rounds (for the progress bar), a description,
    the default logging policy for the sanity check, and caveats for the report."""

    events: Iterable[AnyEvent]
    items: list[Item]
    features: FeatureMap
    rounds: int | None
    description: str
    logging_policy: str | None
    caveats: tuple[str, ...] = ()



def _pyplot():  # type: ignore[no-untyped-def]
    """matplotlib's pyplot on the Agg backend, imported on first use (it costs ~1 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def load_log(data: str, behavior_policy: str = "random", campaign: str = "all") -> LoadedLog:
    """Parse --data ("obd:PATH", "mind:PATH" or "events:PATH") into a `LoadedLog`."""
    kind, sep, raw_path = data.partition(":")
    if not sep or kind not in {"obd", "mind", "events"} or not raw_path:
        raise click.BadParameter("want obd:PATH, mind:PATH or events:PATH", param_hint="--data")
    path = Path(raw_path)
    if not path.exists():
        raise click.BadParameter(f"{path} does not exist", param_hint="--data")
    if kind == "obd":
        from online.datasets import load_obd_arrays, obd_events, obd_items, obd_paths

        log_csv, item_csv = obd_paths(path, behavior_policy, campaign)
        if not log_csv.exists():
            raise click.BadParameter(f"no OBD log at {log_csv}", param_hint="--data")
        arrays = load_obd_arrays(log_csv)
        items = list(obd_items(item_csv, datetime.now(UTC)))
        return LoadedLog(
            obd_events(log_csv, item_csv), items, ContextCrossFeatures(arrays.context_names), len(arrays.rewards),
            f"OBD {behavior_policy}/{campaign} ({log_csv})", "uniform_random" if behavior_policy == "random" else None,
            (OBD_CAVEAT,),
        )
    if kind == "mind":
        from online.datasets import mind_events, read_mind_news

        behaviors, news = (path / "behaviors.tsv", path / "news.tsv") if path.is_dir() else (path, path.with_name(
            "news.tsv"))
        with behaviors.open(encoding="utf-8") as handle:
            rounds = sum(1 for line in handle if line.strip())
        items = list(read_mind_news(news, datetime.now(UTC)))
        caveat = "MIND logs carry no propensities: only replay and the metrics apply (no IPS, SNIPS or DR)."
        return LoadedLog(mind_events(behaviors, news), items, ItemFeatures(), rounds, f"MIND ({behaviors})", None,
                         (caveat,))
    from online.datasets import read_events

    events = list(read_events(path))
    items = [event for event in events if isinstance(event, Item)]
    rounds = sum(1 for event in events if isinstance(event, RankRequest))
    return LoadedLog(events, items, ItemFeatures(), rounds, f"event log ({path})", None)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def plot_estimates(result: EvaluationResult, path: Path) -> Path:
    """Point estimates with their intervals, one group per policy, the on-policy CTR as a line."""
    names = [n for n in ESTIMATOR_ORDER if any(n in p.estimates and not n.startswith("slate") for p in
                                                 result.policies)]
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(result.policies) * max(len(names), 1) / 3), 4.5))
    width = 0.8 / max(len(names), 1)
    for j, name in enumerate(names):
        xs, values, low, high = [], [], [], []
        for i, evaluation in enumerate(result.policies):
            estimate = evaluation.estimates.get(name)
            if estimate is None or math.isnan(estimate.value):
                continue
            xs.append(i + (j - (len(names) - 1) / 2) * width)
            values.append(estimate.value)
            low.append(estimate.value - estimate.ci_low if not math.isnan(estimate.ci_low) else 0.0)
            high.append(estimate.ci_high - estimate.value if not math.isnan(estimate.ci_high) else 0.0)
        axes.errorbar(xs, values, yerr=[low, high], fmt="o", capsize=3, label=name)
    axes.axhline(result.on_policy.value, color="grey", linestyle="--", label="logged (on-policy) CTR")
    axes.axhspan(result.on_policy.ci_low, result.on_policy.ci_high, color="grey", alpha=0.15)
    axes.set_xticks(range(len(result.policies)), [p.policy for p in result.policies])
    axes.set(ylabel="reward per shown item (CTR)", title="Counterfactual estimates, 95% bootstrap intervals")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_ctr_over_log(result: EvaluationResult, path: Path) -> Path:
    """Rolling logged CTR over the log, and each policy's running DR estimate."""
    rewards = result.logged_rewards
    window = max(1, min(1000, rewards.size // 10))
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 4.5))
    rolling = np.convolve(rewards, np.ones(window), mode="valid") / window
    axes.plot(np.arange(window, rewards.size + 1), rolling, color="grey", label=f"logged CTR (rolling {window})")
    for evaluation in result.policies:
        if evaluation.dr_running.size:
            axes.plot(np.arange(1, evaluation.dr_running.size + 1), evaluation.dr_running,
                      label=f"{evaluation.policy}: running DR")
    axes.set(xlabel="logged observation (log order)", ylabel="CTR", title="CTR over the log")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _estimate_table(result: EvaluationResult) -> list[str]:
    names = [n for n in ESTIMATOR_ORDER if any(n in p.estimates for p in result.policies)]
    lines = ["| policy | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for evaluation in result.policies:
        cells = []
        for name in names:
            e = evaluation.estimates.get(name)
            cells.append("—" if e is None else f"{_fmt(e.value)} [{_fmt(e.ci_low)}, {_fmt(e.ci_high)}]")
        lines.append(f"| {evaluation.policy} | " + " | ".join(cells) + " |")
    return lines


def _metric_table(result: EvaluationResult) -> list[str]:
    names = list(result.policies[0].metrics)
    lines = ["| policy | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for evaluation in result.policies:
        lines.append(f"| {evaluation.policy} | " + " | ".join(_fmt(evaluation.metrics[n], 3) for n in names) + " |")
    return lines


def write_evaluation_report(result: EvaluationResult, out_dir: Path, description: str,
                            caveats: Sequence[str] = (), extra: dict[str, Any] | None = None) -> Path:
    """Write evaluation.json, estimates.png, ctr_over_log.png and report.md; return report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"data": description, **(extra or {}), **result.to_dict()}
    (out_dir / "evaluation.json").write_text(json.dumps(payload, indent=2, allow_nan=False))
    plots = [plot_estimates(result, out_dir / "estimates.png"), plot_ctr_over_log(result, out_dir / "ctr_over_log.png")]
    counts, on_policy = result.counts, result.on_policy
    lines = [
        "# slatestream evaluate: counterfactual evaluation on a logged stream", "",
        f"Data: {description}.", "",
        *[f"> **Note.** {caveat}\n" for caveat in caveats],
        "Settings: " + ", ".join(f"{k}={v}" for k, v in result.settings.items()), "",
        f"Events: {counts.events} = {counts.items} items + {counts.requests} requests + {counts.impressions} "
        f"impressions + {counts.clicks} clicks + {counts.slates} slates; rounds evaluated: {counts.rounds_evaluated} "
        f"of {counts.rounds}.", "",
        f"Logging policy's on-policy CTR (mean logged reward per shown item): **{_fmt(on_policy.value)}** "
        f"[{_fmt(on_policy.ci_low)}, {_fmt(on_policy.ci_high)}], n = {on_policy.n}.", "",
    ]
    if result.sanity is not None:
        verdict = ", ".join(f"{k}: {'covers' if v else 'MISSES'}" for k, v in result.sanity["covers"].items())
        lines += [f"Sanity check — the logging policy `{result.sanity['policy']}` evaluated on its own log: "
                  f"{verdict} the on-policy CTR.", ""]
    lines += ["## Estimates (value [95% interval])", "",
              "Position-level estimates are reward per shown item; slate_* are reward per slate.", "",
              *_estimate_table(result), "", "## Metrics on the policies' own slates", "", *_metric_table(result), "",
              *[f"- {note}" for note in result.notes], "",
              *[f"![{p.stem}]({p.name})" for p in plots], ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report


@click.command("evaluate")
@click.option("--data", required=True, help="obd:PATH (obp's obd folder), mind:PATH or events:PATH.")
@click.option("--policies", default=None,
              help="Comma-separated policies  [default: the configuration's, else linear_ts,bernoulli_ts,"
                   "uniform_random]")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Configuration file: the policies named in it are evaluated with its hyperparameters "
                   "(default: $SLATESTREAM_CONFIG, else built-in defaults).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option("--n-draws", type=int, default=None, help="Monte Carlo draws per round  [default: 256; --sweep: 64 on "
              "logs, 32 on sim]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-rounds", type=int, default=None, help="Evaluate only the first N rounds.")
@click.option("--behavior-policy", type=click.Choice(["random", "bts"]), default="random", show_default=True)
@click.option("--campaign", type=click.Choice(["all", "men", "women"]), default="all", show_default=True)
@click.option("--encoder", "encoder_kind", type=click.Choice(["auto", "onnx", "hashing"]), default="auto",
              show_default=True, help="Item text encoder (auto: the exported ONNX model when present).")
@click.option("--model", type=click.Path(path_type=Path), default=None, help="An exported .onnx file.")
@click.option("--dim", type=int, default=None, help="Item vector dimension d  [default: 8; --sweep on sim: 32, "
              "the demo's]")
@click.option("--learn-every", type=int, default=1, show_default=True, help="Rounds per learning batch.")
@click.option("--learn-from", type=click.Choice(["all", "matched"]), default="all", show_default=True)
@click.option("--reward-model", type=click.Choice(["log_ctr", "policy"]), default="log_ctr", show_default=True)
@click.option("--n-bootstrap", type=int, default=1000, show_default=True)
@click.option("--sweep", is_flag=True, help="Sweep a grid of objective weights instead (see streams/sweep.py); "
              "--data may then also be `sim` (the simulator).")
@click.option("--diversity", "diversity_weights", default="0,2,5,10", show_default=True,
              help="--sweep: diversity weights.")
@click.option("--novelty", "novelty_weights", default="0", show_default=True, help="--sweep: novelty weights.")
@click.option("--fairness", "fairness_weights", default="0,1", show_default=True,
              help="--sweep: exposure-fairness weights (per item).")
@click.option("--method", type=click.Choice(["mmr", "ild", "dpp"]), default="mmr", show_default=True,
              help="--sweep: re-ranking method (MMR: max similarity, ILD: mean similarity, DPP).")
@click.option("--position-power", "position_powers", default="0", show_default=True,
              help="--sweep: position-aware diversity, the weight at slate position p is w * (1 + p) ** power; "
              "comma-separated powers, each crossed with every diversity weight > 0 (0 = flat).")
@click.option("--from-position", "from_positions", default="0", show_default=True,
              help="--sweep: positions before this are ranked by relevance alone; comma-separated, crossed too.")
@click.option("--shortlist", type=int, default=5, show_default=True,
              help="--sweep: re-rank the top shortlist x k items per draw (0 = all).")
@click.option("--score-units", type=click.Choice(["standardised", "score"]), default="standardised",
              show_default=True, help="--sweep: units of the weights (ObjectiveSettings.score_units).")
@click.option("--slate-order", type=click.Choice(["greedy", "utility"]), default="greedy", show_default=True,
              help="--sweep: serve the diversified picks in greedy order or by utility "
              "(ObjectiveSettings.slate_order).")
@click.option("--requests", type=int, default=1500, show_default=True, help="--sweep on sim: requests per run.")
@click.option("--seeds", type=int, default=1, show_default=True, help="--sweep on sim: simulator seeds (paired).")
def evaluate_command(data: str, policies: str | None, config_path: Path | None, out: Path, n_draws: int | None,
                     seed: int,
                     max_rounds: int | None, behavior_policy: str, campaign: str, encoder_kind: str,
                     model: Path | None, dim: int | None, learn_every: int, learn_from: str, reward_model: str,
                     n_bootstrap: int, sweep: bool, diversity_weights: str, novelty_weights: str,
                     fairness_weights: str, method: str, position_powers: str, from_positions: str, shortlist: int,
                     score_units: str, slate_order: str, requests: int, seeds: int) -> None:
    """Evaluate POLICIES counterfactually on a logged stream and write a report to OUT."""
    from streams.cli import _config, _encoder
    from streams.demo import make_embed

    if sweep:
        from streams.sweep import SweepOptions, run_sweep_command

        on_sim = data == "sim"
        run_sweep_command(SweepOptions(
            data, policies, out, n_draws or (32 if on_sim else 64), seed, max_rounds, behavior_policy, campaign,
            encoder_kind, model, dim or (32 if on_sim else 8), learn_every, n_bootstrap, diversity_weights,
            novelty_weights, fairness_weights, method, shortlist, requests, seeds, position_powers, from_positions,
            score_units, slate_order))
        return
    if data == "sim":
        raise click.BadParameter("`sim` is only for --sweep", param_hint="--data")
    n_draws, dim = n_draws or 256, dim or 8

    configured = config_path is not None or bool(os.environ.get(CONFIG_ENV))
    config = _config(config_path)
    if policies is None:
        policies = ",".join(config.policy_groups()) if configured else "linear_ts,bernoulli_ts,uniform_random"
    names = [name.strip() for name in policies.split(",") if name.strip()]
    unknown = [name for name in names if name not in POLICIES]
    if unknown or not names:
        raise click.BadParameter(f"unknown policies {unknown}; known: {list(POLICIES)}", param_hint="--policies")
    groups = config.policy_groups() if configured else {}
    chosen: list[Policy[Any, Any] | str] = [config.build_policy(n) if n in groups else n for n in names]
    loaded = load_log(data, behavior_policy, campaign)
    if not loaded.items:
        raise click.ClickException(f"{data}: the log has no catalog items")
    encoder = _encoder(encoder_kind, model)
    embed = make_embed(encoder, dim, loaded.items, seed)
    logging_policy = loaded.logging_policy if loaded.logging_policy in names else None
    try:
        config = DriverConfig(n_draws=n_draws, learn_from=learn_from, learn_every=learn_every,  # type: ignore[arg-type]
                              reward_model=reward_model, n_bootstrap=n_bootstrap,  # type: ignore[arg-type]
                              max_rounds=max_rounds, seed=seed, logging_policy=logging_policy)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    total = loaded.rounds if max_rounds is None or loaded.rounds is None else min(loaded.rounds, max_rounds)
    click.echo(f"{loaded.description}: policies {', '.join(names)}; encoder {encoder.name} -> d={dim}")
    with tqdm(total=total, unit="round", desc="evaluate", dynamic_ncols=True) as bar:
        done = [0]

        def advance(rounds: int) -> None:
            bar.update(rounds - done[0])
            done[0] = rounds

        result = evaluate_log(loaded.events, chosen, embed, dim, features=loaded.features, config=config,
                              progress=advance)
    extra = {"encoder": encoder.name, "dim": dim, "behavior_policy": behavior_policy, "campaign": campaign,
             "config": str(config_path or os.environ.get(CONFIG_ENV) or "defaults")}
    report = write_evaluation_report(result, out, loaded.description, loaded.caveats, extra)
    click.echo(f"on-policy CTR {_fmt(result.on_policy.value)}; report: {report}")
