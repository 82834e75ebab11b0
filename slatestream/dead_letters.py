"""`slatestream dead-letters list | requeue`: read, filter and re-queue the dead-letter topic
(the library: streams.dead_letter_admin)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click
from kafka.errors import KafkaError

from streams.dead_letter import DeadLetter
from streams.dead_letter_admin import (
    DeadLetterScan,
    LetterFilter,
    StoredLetter,
    read_dead_letters,
    requeue,
    topic_name,
)
from streams.replay import ReplayError, parse_time
from streams.settings import StreamSettings
from streams.topics import TopicNames


def _time_option(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value, f"--{param.name}")
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def filter_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--topic, --error-type, --reason, --since, --until, --limit (both commands)."""
    options = [
        click.option("--topic", default=None,
                     help="Source topic of the rejected records: a short name (requests, impressions, clicks, "
                          "items, control) or a full topic name."),
        click.option("--error-type", default=None, help="Exception class, exactly (e.g. EventDecodeError)."),
        click.option("--reason", default=None, help="Text the reason or the field contains (case-insensitive)."),
        click.option("--since", default=None, callback=_time_option,
                     help="Rejected at or after this ISO-8601 time (with a timezone)."),
        click.option("--until", default=None, callback=_time_option,
                     help="Rejected before this ISO-8601 time (with a timezone)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _scan(topic: str | None, error_type: str | None, reason: str | None, since: datetime | None,
          until: datetime | None, limit: int | None) -> tuple[StreamSettings, DeadLetterScan]:
    from slatestream.options import broker_settings

    settings = broker_settings(lambda s: [TopicNames.from_settings(s).dead_letter])
    try:
        letter_filter = LetterFilter(source_topic=None if topic is None else topic_name(settings, topic),
                                     error_type=error_type, reason=reason, since=since, until=until)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    try:
        scan = read_dead_letters(settings, letter_filter, limit=limit)
    except ReplayError as error:
        raise click.ClickException(str(error)) from None
    except KafkaError as error:
        raise click.ClickException(f"reading the dead-letter topic failed: {error!r} "
                                   "(check SLATESTREAM_BROKER_URL and the security settings)") from None
    for bad in scan.unreadable[:5]:
        click.echo(f"unreadable record {scan.topic}[{bad.partition}]@{bad.offset}: {bad.field}: {bad.reason}",
                   err=True)
    return settings, scan


def describe(stored: StoredLetter) -> str:
    """One line: time, where it is, where it came from, key, error, field: reason, size."""
    letter: DeadLetter = stored.letter
    size = f"{letter.original_size} bytes" + (", truncated" if letter.truncated else "")
    where = f"{letter.source_topic}[{letter.partition}]@{letter.offset}"
    field = f"{letter.field}: " if letter.field else ""
    return (f"{letter.time.isoformat().replace('+00:00', 'Z')}  [{stored.partition}]@{stored.offset}  {where}  "
            f"key={letter.key!r}  {letter.error_type}  {field}{letter.reason}  ({size})")


@click.group("dead-letters")
def dead_letters_group() -> None:
    """Records the worker could not process: list them, re-queue them (SLATESTREAM_* settings)."""


@dead_letters_group.command("list")
@filter_options
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="The most letters shown (the oldest that match).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: dead_letter_partition, dead_letter_offset, letter (the envelope).")
@click.option("--original", is_flag=True, help="Also print each original record's bytes (Python repr).")
def list_command(topic: str | None, error_type: str | None, reason: str | None, since: datetime | None,
                 until: datetime | None, limit: int, as_json: bool, original: bool) -> None:
    """List dead letters, oldest first, with where each record came from and why it was refused."""
    _, scan = _scan(topic, error_type, reason, since, until, limit)
    for stored in scan.letters:
        if as_json:
            click.echo(json.dumps({"dead_letter_partition": stored.partition, "dead_letter_offset": stored.offset,
                                   "letter": stored.letter.model_dump(mode="json")}))
            continue
        click.echo(describe(stored))
        if original:
            click.echo(f"    {stored.letter.original_bytes()!r}")
    click.echo(f"{len(scan.letters)} shown of {scan.matched} matching, {scan.read} read from {scan.topic}"
               f"{f', {len(scan.unreadable)} unreadable' if scan.unreadable else ''}", err=True)


@dead_letters_group.command("requeue")
@filter_options
@click.option("--limit", type=click.IntRange(min=1), default=None, help="The most letters re-queued (the oldest).")
@click.option("--all", "everything", is_flag=True, help="Re-queue every letter (no filter given).")
@click.option("--dry-run", is_flag=True, help="Say what would be re-queued; publish nothing.")
def requeue_command(topic: str | None, error_type: str | None, reason: str | None, since: datetime | None,
                    until: datetime | None, limit: int | None, everything: bool, dry_run: bool) -> None:
    """Publish the original bytes of matching dead letters back to their source topic and partition.

    A truncated original is never re-queued. Re-queueing twice processes the records twice.
    """
    if not everything and all(value is None for value in (topic, error_type, reason, since, until, limit)):
        raise click.UsageError("give a filter (--topic, --error-type, --reason, --since, --until, --limit) or --all")
    settings, scan = _scan(topic, error_type, reason, since, until, limit)
    if dry_run:
        for stored in scan.letters:
            click.echo(f"would re-queue {describe(stored)}")
        click.echo(f"{len(scan.letters)} would be re-queued (dry run; truncated ones would be refused)", err=True)
        return
    try:
        outcomes = requeue(settings, scan.letters, dead_letter_topic=scan.topic)
    except KafkaError as error:
        raise click.ClickException(f"re-queueing failed: {error!r}") from None
    for outcome in outcomes:
        if outcome.requeued_at is not None:
            partition, offset = outcome.requeued_at
            click.echo(f"re-queued [{outcome.stored.partition}]@{outcome.stored.offset} -> "
                       f"{outcome.stored.letter.source_topic}[{partition}]@{offset}")
        else:
            click.echo(f"refused [{outcome.stored.partition}]@{outcome.stored.offset}: {outcome.refused}")
    done = sum(outcome.requeued_at is not None for outcome in outcomes)
    click.echo(f"{done} re-queued, {len(outcomes) - done} refused", err=True)
    if done < len(outcomes):
        raise SystemExit(1)
