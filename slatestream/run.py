"""`slatestream run EVENTS`: a JSON-lines event file through the embedded engine (no Kafka).

Items are embedded with the configuration's embedding (its projection fitted on the file's
items), requests answered (slates optionally written to --slates), impressions and clicks
learned in batches; the state is kept in a rocksdict directory between runs. Bad lines and
events that cannot be processed are reported and counted, never fatal.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from encoders.embedding import ItemEmbedding
from encoders.projection import PcaProjection
from online.catalog import Catalog
from online.config import SlatestreamConfig
from online.events import EventDecodeError, Item, Slate, decode_event, encode_event
from online.policies import POLICIES
from online.runner import EmbeddedRunner, Event
from online.scenarios import ScenarioRouter
from online.state_version import EmbeddingMismatchError
from slatestream.options import (
    DIM_HELP,
    ENCODER_CHOICE,
    ENCODER_HELP,
    config_option,
    configured,
    encoder_for,
    item_embedding,
    load_config,
    retriever_for,
)
from slatestream.store import RocksDictStore


def read_event_file(path: Path) -> tuple[list[Event], int]:
    """The events of a JSON-lines file, and how many lines were rejected (each reported)."""
    decoded: list[Event] = []
    bad_lines = 0
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                decoded.append(decode_event(line))
            except EventDecodeError as error:
                bad_lines += 1
                click.echo(f"{path}:{number}: rejected: {error}", err=True)
    return decoded, bad_lines


def kept_embedding(config: SlatestreamConfig, items: list[Item], seed: int, store: RocksDictStore) -> ItemEmbedding:
    """The configuration's embedding with the projection this state directory was learned with
    (stored beside the state under `embedding/projection/<encoder>/d<d>`), fitted on `items` and
    stored on the first run, so later runs over other files keep learning the same state."""
    encoder = encoder_for(config)
    dim = config.embedding.dim
    key = f"embedding/projection/{encoder.fingerprint}/d{dim}"
    stored = store.get(key)
    if stored is None or encoder.dim <= dim:
        embed = item_embedding(config, items, seed, encoder=encoder)
        if embed.projection is not None:
            store.put(key, embed.projection.to_bytes())
        return embed
    return ItemEmbedding(encoder, dim, PcaProjection.from_bytes(stored))


@click.command("run")
@click.argument("events", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--state", type=click.Path(path_type=Path), default=Path(".data/embedded"), show_default=True,
              help="rocksdict directory of the learned state (kept between runs).")
@click.option("--slates", "slates_out", type=click.Path(path_type=Path), default=None,
              help="Write the slates answered to this JSON-lines file.")
@click.option("--policy", default=None, type=click.Choice(list(POLICIES)),
              help="The policy of every scenario when no configuration is given  [default: linear_ts]")
@config_option
@click.option("--encoder", "encoder_kind", type=ENCODER_CHOICE, default=None, help=ENCODER_HELP)
@click.option("--dim", type=int, default=None, help=DIM_HELP)
@click.option("--batch-size", type=int, default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def run_command(events: Path, state: Path, slates_out: Path | None, policy: str | None, config_path: Path | None,
                encoder_kind: str | None, dim: int | None, batch_size: int, seed: int) -> None:
    """Feed a JSON-lines EVENTS file through the embedded engine (no Kafka), serving the
    scenarios of the configuration (default: one scenario with --policy)."""
    if policy is not None and configured(config_path):
        raise click.UsageError("--policy and a configuration file both set the policy: give one of them")
    config = load_config(config_path, dim=dim, encoder=encoder_kind)
    if policy is not None:
        config = config.with_policy(policy)
    decoded, bad_lines = read_event_file(events)
    items = [event for event in decoded if isinstance(event, Item)]
    store = RocksDictStore(state)
    embed = kept_embedding(config, items, seed, store) if items else None
    width = config.embedding.dim if embed is None else embed.dim
    out = slates_out.open("wb") if slates_out else None
    try:
        catalog = Catalog(dim=width)
        engine = ScenarioRouter(config, store, catalog, np.random.default_rng(seed),
                                retriever=retriever_for(config)(catalog),
                                embedding_version=None if embed is None else (lambda: embed.version),
                                embed_text=None if embed is None else embed.text)

        def write_slate(slate: Slate) -> None:  # emit's type returns None, a file's write its count
            if out:  # always, once handed over; the check narrows `out` for mypy
                out.write(encode_event(slate) + b"\n")

        runner = EmbeddedRunner(
            engine, embed or (lambda batch: np.zeros((0, width), np.float32)),
            emit=write_slate if out else None,
            reject=lambda event, reason: click.echo(f"rejected {event.type}: {reason}", err=True),
            batch_size=batch_size,
        )
        try:
            counts = runner.run(decoded)
        except EmbeddingMismatchError as error:
            raise click.ClickException(f"{error} (here: another --state directory)") from None
    finally:
        store.close()
        if out:
            out.close()
        if embed is not None:
            embed.close()
    click.echo(f"events: {counts.seen + bad_lines} in = {counts.ranked} ranked + {counts.learned} learned + "
               f"{counts.items} items + {counts.ignored} ignored + {counts.rejected + bad_lines} rejected")
