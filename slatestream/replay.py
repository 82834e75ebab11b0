"""`slatestream replay`: a time range of the Kafka topics into one event file for
`slatestream evaluate --data events:FILE` (the library: streams.replay)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from kafka.errors import KafkaError

from slatestream.options import broker_settings
from streams.replay import REPLAY_TOPICS, ReplayError, format_counts, parse_time, replay
from streams.topics import TopicNames


def _time_option(ctx: click.Context, param: click.Parameter, value: str) -> datetime:
    try:
        return parse_time(value, f"--{param.name}")
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@click.command("replay")
@click.option("--since", required=True, callback=_time_option, help="ISO-8601 start (inclusive), with a timezone.")
@click.option("--until", required=True, callback=_time_option, help="ISO-8601 end (exclusive), with a timezone.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="JSON-lines event file to write (.gz: compressed).")
@click.option("--topics", default=",".join(REPLAY_TOPICS), show_default=True,
              help="Comma-separated topics to read.")
def replay_command(since: datetime, until: datetime, out: Path, topics: str) -> None:
    """Write the events of [SINCE, UNTIL) (Kafka record timestamps) to OUT for `evaluate --data events:OUT`.

    Broker and topic prefix come from SLATESTREAM_* (see StreamSettings).
    """
    chosen = [topic.strip() for topic in topics.split(",") if topic.strip()]
    try:
        settings = broker_settings(lambda s: [getattr(TopicNames.from_settings(s), name, name) for name in chosen])
        result = replay(settings, since, until, out, chosen)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    except ReplayError as error:
        raise click.ClickException(str(error)) from None
    except KafkaError as error:
        raise click.ClickException(f"replay failed: {error!r}") from None
    for line in format_counts(result):
        click.echo(line)
