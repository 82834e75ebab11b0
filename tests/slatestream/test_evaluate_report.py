"""The report says which estimate to read and never prints an unreliable one as a plain number.

A replayed live run as the issue found it: a logger that always serves the same order of its
10 candidates (no support mix), slates with their propensities and candidates in the log;
`uniform_random` evaluated on it puts most of its mass where the log has none. Then the same
world logged with the support mix at 1 (uniformly random slates): everything is readable.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from click.testing import CliRunner

from online.catalog import Catalog
from online.datasets import write_events
from online.engine import Engine, EngineConfig
from online.events import Click, Impression, Item, RankRequest, ShownItem
from online.policies.arms import ArmStats, UniformRandom
from online.policies.base import RankContext, ScoreDraws
from online.state import InMemoryStore
from slatestream.cli import main

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FAST = ["--encoder", "hashing", "--dim", "4", "--n-draws", "32", "--n-bootstrap", "100", "--seed", "1"]


class ByIdOrder(UniformRandom):
    """Always the same order (largest id number first): a logger with no exploration."""

    name = "by_id_order"

    def sample_scores(self, global_state: ArmStats, user_state: None, context: RankContext,
                      rng: np.random.Generator, n_draws: int) -> ScoreDraws:
        scores = np.array([float(i[1:]) for i in context.item_ids])
        return ScoreDraws(np.tile(scores, (n_draws, 1)), scores / 20, np.zeros(len(scores)))


def write_log(path: Path, epsilon: float, rounds: int = 400) -> None:
    items = [Item(item_id=f"i{j}", fields={"title": f"item {j}"}, time=T0) for j in range(10)]
    engine = Engine(ByIdOrder(), InMemoryStore(), Catalog(dim=2), np.random.default_rng(0),
                    config=EngineConfig(n_draws=16, support_epsilon=epsilon))
    engine.add_items(items, np.ones((10, 2), dtype=np.float32))
    rng = np.random.default_rng(1)
    events: list[Any] = list(items)
    for r in range(rounds):
        time = T0 + timedelta(seconds=r)
        request = RankRequest(request_id=f"r{r}", user_id=f"u{r % 3}", k=3, time=time)
        slate = engine.rank(request)
        events += [request, slate, Impression(event_id=f"e{r}", request_id=request.request_id, user_id="u", time=time,
                                              shown=tuple(ShownItem(item_id=i.item_id, position=i.position)
                                                          for i in slate.items))]
        events += [Click(event_id=f"c{r}{i.position}", request_id=request.request_id, user_id="u", item_id=i.item_id,
                         time=time) for i in slate.items if rng.random() < 0.1 + 0.03 * int(i.item_id[1:])]
    write_events(path, events)


def evaluate(tmp_path: Path, epsilon: float, *options: str) -> tuple[dict[str, Any], str]:
    write_log(tmp_path / "log.jsonl", epsilon)
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["evaluate", "--data", f"events:{tmp_path / 'log.jsonl'}", "--policies",
                                       "uniform_random", "--out", str(out), *FAST, *options])
    assert result.exit_code == 0, result.output
    return json.loads((out / "evaluation.json").read_text()), (out / "report.md").read_text()


def test_a_policy_without_support_gets_no_plain_number(tmp_path: Path) -> None:
    payload, report = evaluate(tmp_path, epsilon=0.0)
    assessment = payload["policies"][0]["assessment"]
    assert assessment["read"] is None
    for name in ("ips", "snips", "dr", "dm", "replay"):
        assert not assessment["verdicts"][name]["reliable"], name
    assert "no reliable estimate" in report
    assert "not uniformly random" in " ".join(assessment["verdicts"]["replay"]["reasons"])
    row = next(line for line in report.splitlines() if line.startswith("| uniform_random |"))
    assert "[" not in row and row.count("unreliable (") >= 4  # no interval printed for any of them
    assert "an average over its learning" in report


def test_a_uniformly_random_log_reads_dr_and_replay(tmp_path: Path) -> None:
    payload, report = evaluate(tmp_path, 1.0, "--precision", "0.5")  # a short log: intervals of ±20-40%
    assessment = payload["policies"][0]["assessment"]
    assert assessment["read"] == "dr" and payload["settings"]["precision"] == 0.5
    assert assessment["verdicts"]["replay"]["reliable"] and assessment["support"] == 1.0
    assert "read **dr = " in report


def test_an_estimate_wider_than_the_precision_target_is_flagged_with_its_width(tmp_path: Path) -> None:
    payload, report = evaluate(tmp_path, 1.0)  # the default target ±10%: this log's intervals are wider
    assessment = payload["policies"][0]["assessment"]
    assert assessment["read"] is None
    dr = assessment["verdicts"]["dr"]
    assert not dr["reliable"] and dr["imprecise"] and dr["reasons"][-1].startswith("imprecise: its interval spans ±")
    assert "The closest: **dr = " in report and "wider than the precision target ±10%" in report


def test_snapshot_and_freeze_after_from_the_command_line(tmp_path: Path) -> None:
    """`slatestream run` learns a state store; `evaluate --snapshot` scores that fixed state,
    `--freeze-after` a copy of each policy frozen after the first rounds."""
    write_log(tmp_path / "log.jsonl", epsilon=1.0, rounds=200)
    runner = CliRunner()
    learned = runner.invoke(main, ["run", str(tmp_path / "log.jsonl"), "--state", str(tmp_path / "state"),
                                   "--policy", "bernoulli_ts", "--encoder", "hashing", "--dim", "4"])
    assert learned.exit_code == 0, learned.output
    out = tmp_path / "report"
    result = runner.invoke(main, ["evaluate", "--data", f"events:{tmp_path / 'log.jsonl'}", "--policies",
                                  "bernoulli_ts", "--snapshot", f"prod=bernoulli_ts:{tmp_path / 'state'}",
                                  "--freeze-after", "50", "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "evaluation.json").read_text())
    kinds = {p["policy"]: (p["learning"], p["evaluated_from"], p["counters"]["learned_events"])
             for p in payload["policies"]}
    assert kinds["bernoulli_ts"][:2] == (True, 0)
    assert kinds["bernoulli_ts@50"][:2] == (False, 50) and kinds["bernoulli_ts@50"][2] > 0
    assert kinds["prod"] == (False, 0, 0)
    report = (out / "report.md").read_text()
    assert "**prod** (fixed snapshot, on the whole log: biased upward if its state learned" in report
    assert "fixed after learning on the first 50 rounds, evaluated on the rest" in report
    bad = runner.invoke(main, ["evaluate", "--data", f"events:{tmp_path / 'log.jsonl'}", "--snapshot", "prod=nope:x",
                               "--out", str(out), *FAST])
    assert bad.exit_code != 0 and "unknown policies" in bad.output
