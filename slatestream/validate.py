"""`slatestream validate --config FILE [--data EVENTS]`: check a configuration, and an events file
against it, before a worker or a run uses them.

    slatestream validate --config deploy/slatestream.toml
    slatestream validate --config deploy/slatestream.toml --data day.jsonl

The configuration is loaded as every command loads it (one error listing every bad key). Then it
prints what would be served: each scenario's slate size, candidate source, policy, objectives and
filters, and the fallback. With `--data`, every line of the JSON-lines file is decoded (bad lines
named with their line number) and the file is checked against the configuration the way the
engine would serve it: requests whose scenario is not served or that need candidates and bring
none, and scenarios whose filters no item of the file passes (their slates would be empty).
Feedback naming items the file never declares is counted (a warning: the catalog may come from
elsewhere). Exit status 1 when anything would be refused, else 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from online.catalog import Catalog
from online.config import ScenarioConfig, SlatestreamConfig
from online.engine import RankError
from online.events import Click, Impression, Item, RankRequest
from online.objectives.filters import catalog_mask
from online.runner import Event
from online.scenarios import ScenarioRouter
from online.state import InMemoryStore
from slatestream.options import config_option, load_config
from slatestream.run import read_event_file

EXAMPLES = 3
"""Request ids quoted per problem."""


@dataclass
class Findings:
    """What validation found: problems (the configuration would refuse or fail on them) and
    warnings (worth a look, not refused)."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def describe_scenario(name: str, settings: ScenarioConfig) -> str:
    """One line: what a scenario serves and how."""
    params = ", ".join(f"{key}={value}" for key, value in sorted(settings.policy.params.items())) or "defaults"
    objectives = settings.objectives.model_dump(mode="json", exclude_defaults=True)
    filters = settings.filters.model_dump(mode="json", exclude_defaults=True)
    return (f"scenario {name}: {settings.slate_size} items, candidates {settings.candidates}, policy "
            f"{settings.policy.name} ({params}), objectives {objectives or 'relevance only'}, "
            f"filters {filters or 'none'}")


def describe(config: SlatestreamConfig) -> list[str]:
    """What the configuration serves, line by line."""
    lines = [describe_scenario(name, settings) for name, settings in config.scenarios.items()]
    lines.append(f"fallback scenario: {config.fallback_scenario or 'none (undeclared scenarios are refused)'}")
    lines.append(f"embedding: {config.embedding.encoder}, d={config.embedding.dim}, device {config.embedding.device}; "
                 f"engine: {config.engine.n_draws} draws, retrieval {config.engine.retrieval_size}")
    for shadow in config.shadows:
        params = ", ".join(f"{key}={value}" for key, value in sorted(shadow.policy.params.items())) or "defaults"
        covered = ", ".join(shadow.scenarios) if shadow.scenarios else "every scenario"
        lines.append(f"shadow {shadow.name}: policy {shadow.policy.name} ({params}) on {covered}, never served")
    if config.shadows:
        board = config.leaderboard
        lines.append(f"leaderboard: the last {board.window_rounds} rounds within {board.window_s:g} s, "
                     f"a record every {board.publish_interval_s:g} s on <prefix>leaderboard")
    return lines


def check_requests(config: SlatestreamConfig, requests: Sequence[RankRequest], findings: Findings) -> None:
    """Requests the configuration's router would refuse (by reason, with example ids)."""
    router = ScenarioRouter(config, InMemoryStore(), Catalog(dim=config.embedding.dim), np.random.default_rng(0))
    refused: dict[str, list[str]] = {}
    for request in requests:
        try:
            router.shape(request)
        except RankError as error:
            reason = str(error).split(": ", 1)[-1]
            refused.setdefault(reason, []).append(request.request_id)
    for reason, ids in refused.items():
        findings.problems.append(f"{len(ids)} request(s) refused: {reason} (e.g. {', '.join(ids[:EXAMPLES])})")


def check_filters(config: SlatestreamConfig, items: Sequence[Item], findings: Findings) -> None:
    """Scenarios whose filters pass none of the file's active items."""
    active = [item for item in items if item.active]
    if not active:
        return
    catalog = Catalog(dim=1)
    catalog.upsert(active, np.ones((len(active), 1), dtype=np.float32))
    for name, settings in config.scenarios.items():
        if settings.filters.active and not catalog_mask(catalog, settings.filters).any():
            findings.problems.append(f"scenario {name}: its filters pass none of the file's {len(active)} active "
                                     "items (every retrieved slate would be refused)")


def check_feedback(events: Sequence[Event], items: Sequence[Item], findings: Findings) -> None:
    """Feedback naming items the file does not declare (a warning)."""
    declared = {item.item_id for item in items}
    unknown: Counter[str] = Counter()
    for event in events:
        if isinstance(event, Impression):
            unknown.update(shown.item_id for shown in event.shown if shown.item_id not in declared)
        elif isinstance(event, Click) and event.item_id not in declared:
            unknown[event.item_id] += 1
    if unknown and declared:
        examples = ", ".join(item_id for item_id, _ in unknown.most_common(EXAMPLES))
        findings.warnings.append(f"{sum(unknown.values())} feedback reference(s) to {len(unknown)} item(s) the file "
                                 f"never declares (e.g. {examples}): learned only if the catalog has them")


def validate_events(config: SlatestreamConfig, events: Sequence[Event], bad_lines: int) -> tuple[list[str], Findings]:
    """Counts by event type, and the findings of checking `events` against `config`."""
    findings = Findings()
    if bad_lines:
        findings.problems.append(f"{bad_lines} line(s) could not be decoded (listed above)")
    kinds = Counter(type(event).__name__ for event in events)
    items = [event for event in events if isinstance(event, Item)]
    check_requests(config, [event for event in events if isinstance(event, RankRequest)], findings)
    check_filters(config, items, findings)
    check_feedback(events, items, findings)
    counts = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "no events"
    return [f"events: {counts}"], findings


@click.command("validate")
@config_option
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A JSON-lines events file (the format of `slatestream run`) to check against the configuration.")
def validate_command(config_path: Path | None, data: Path | None) -> None:
    """Check a configuration (and, with --data, an events file against it): prints what would be
    served and every problem; exit status 1 when anything would be refused."""
    config = load_config(config_path)
    for line in describe(config):
        click.echo(line)
    if data is None:
        click.echo("configuration: ok")
        return
    events, bad_lines = read_event_file(data)
    lines, findings = validate_events(config, events, bad_lines)
    for line in lines:
        click.echo(line)
    for warning in findings.warnings:
        click.echo(f"warning: {warning}")
    for problem in findings.problems:
        click.echo(f"problem: {problem}", err=True)
    if findings.problems:
        raise SystemExit(1)
    click.echo(f"{data}: ok")
