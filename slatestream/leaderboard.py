"""`slatestream leaderboard`: the latest live standings of the shadow policies, as every worker
last published them to `<prefix>leaderboard` (the library: streams.leaderboard)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from kafka.errors import KafkaError

from streams.leaderboard import leaderboard_topic, read_leaderboard
from streams.settings import StreamSettings


def _interval(estimate: dict[str, Any] | None) -> str:
    if estimate is None or estimate.get("value") is None:
        return "n/a"
    low, high = estimate.get("ci_low"), estimate.get("ci_high")
    span = "" if low is None or high is None else f" [{low:.4f}, {high:.4f}]"
    return f"{estimate['value']:.4f}{span}"


def _time(seconds: float | None) -> str:
    return "?" if seconds is None else datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _versus(versus: dict[str, Any]) -> str:
    """'better: +0.0040 [+0.0010, +0.0070] vs served (+12% [+3%, +21%])'."""
    difference, relative = versus.get("difference") or {}, versus.get("relative") or {}
    if difference.get("value") is None:
        return f"{versus.get('verdict')}: no difference"
    low, high = difference.get("ci_low"), difference.get("ci_high")
    span = "" if low is None or high is None else f" [{low:+.4f}, {high:+.4f}]"
    shares = ""
    if relative.get("value") is not None:
        share_span = ("" if relative.get("ci_low") is None or relative.get("ci_high") is None
                      else f" [{relative['ci_low']:+.0%}, {relative['ci_high']:+.0%}]")
        shares = f" ({relative['value']:+.0%}{share_span})"
    return f"{versus.get('verdict')}: {difference['value']:+.4f}{span} vs served{shares}"


def _shadow_lines(rank: int, shadow: dict[str, Any]) -> list[str]:
    read = shadow.get("read")
    diagnostics = shadow.get("diagnostics", {}).get(read or "dr", {})
    support = shadow.get("support")
    weights = (f"ESS {diagnostics.get('ess', 0):,.0f}, largest weight {diagnostics.get('max_weight', 0):.3g}"
               if diagnostics else "no weights")
    where = f"support {support:.0%}" if support is not None else "support unknown"
    unranked = shadow.get("unranked_rounds")
    tail = f"; {weights}; {where}" + (f"; {unranked} rounds unranked" if unranked else "")
    versus = shadow.get("versus_served")
    place = f"{rank}." if rank else "-."
    if versus is not None:  # a record with the comparison (`online.evaluation.versus`)
        dr = shadow.get("estimates", {}).get("dr")
        value = f"{read.upper()} {_interval(shadow.get('estimate'))}" if read else f"DR {_interval(dr)}"
        return [f"  {place} {shadow['name']:<16} {_versus(versus)}; {value}{tail}",
                f"      {versus.get('reason', '')}"]
    if read is None:
        dr = shadow.get("estimates", {}).get("dr")
        shown = f"unreliable (DR {_interval(dr)})" if dr else "no estimate"
        return [f"  -. {shadow['name']:<16} {shown}; {weights}; {where}", f"      {shadow.get('why', '')}"]
    return [f"  {rank}. {shadow['name']:<16} {read.upper()} {_interval(shadow.get('estimate'))}{tail}"]


def format_record(record: dict[str, Any], scenario: str | None = None, now: datetime | None = None) -> list[str]:
    """The lines `slatestream leaderboard` prints for one worker's record (one scenario, or all)."""
    now = now or datetime.now(UTC)
    published = datetime.fromisoformat(record["time"])
    counts = record.get("shadows", {})
    lines = [f"worker {record['worker']}: published {record['time']} ({(now - published).total_seconds():.0f} s ago), "
             f"partitions {record.get('partitions')}; slates scored {counts.get('scored', 0):,}, dropped "
             f"{counts.get('dropped', 0):,}, failures {counts.get('failed', 0):,}"]
    for name, board in record.get("scenarios", {}).items():
        if scenario is not None and name != scenario:
            continue
        window = board.get("counts", {})
        lines.append(f"scenario {name}: {board['rounds']:,} rounds, {board['observations']:,} shown items, event time "
                     f"{_time(board.get('since'))} to {_time(board.get('until'))} (pending {window.get('pending', 0)}, "
                     f"late clicks {window.get('late_clicks', 0)}, inconsistent {window.get('inconsistent', 0)})")
        lines.append(f"  served, on-policy CTR   {_interval(board.get('on_policy'))}")
        rank = 0
        for shadow in board.get("shadows", []):
            versus = shadow.get("versus_served")
            ranked = shadow.get("read") is not None if versus is None else versus.get("verdict") != "unreliable"
            rank += ranked
            lines.extend(_shadow_lines(rank if ranked else 0, shadow))
    return lines


@click.command("leaderboard")
@click.option("--scenario", default=None, help="Only this scenario's standings.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON, one per line.")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True)
def leaderboard_command(scenario: str | None, as_json: bool, timeout_s: float) -> None:
    """Print the shadow policies' live standings: each worker's latest record on <prefix>leaderboard
    (off-policy estimates over the worker's sliding window, with intervals and verdicts; broker and
    prefix from SLATESTREAM_*)."""
    settings = StreamSettings()
    try:
        records = read_leaderboard(settings, timeout_s)
    except (KafkaError, TimeoutError) as error:
        raise click.ClickException(f"reading {leaderboard_topic(settings)} failed: {error!r} "
                                   "(check SLATESTREAM_BROKER_URL and the security settings)") from None
    if not records:
        raise click.ClickException(f"no leaderboard on {leaderboard_topic(settings)} yet: configure `shadows` "
                                   "(docs/configuration.md) and run a worker with SLATESTREAM_TOPIC_PREFIX="
                                   f"{settings.topic_prefix}")
    for record in records:
        if as_json:
            click.echo(json.dumps(record))
        else:
            for line in format_record(record, scenario):
                click.echo(line)
