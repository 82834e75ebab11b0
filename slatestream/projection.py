"""`slatestream projection show | fit`: the projection every worker shares (streams.projection).

    slatestream projection show                      # the one published for the configured encoder and d
    slatestream projection show --out proj.bin       # ... saved to a file (`evaluate --projection proj.bin`)
    slatestream projection fit --items catalog.jsonl # fit it on an event file's items, publish it (first wins)

Without `fit`, the first worker fits it on the first items it sees; `fit` settles it beforehand,
on a catalogue of your choosing (up to `embedding.projection_items` items, by item id).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from encoders.projection import PcaProjection
from online.datasets import read_events
from online.events import Item
from slatestream.options import (
    DIM_HELP,
    ENCODER_CHOICE,
    ENCODER_HELP,
    broker_settings,
    config_option,
    encoder_for,
    load_config,
    stream_settings,
)

if TYPE_CHECKING:
    from streams.projection import PublishedProjection
    from streams.settings import StreamSettings


def served_projection(key: str) -> tuple[PublishedProjection | None, StreamSettings]:
    """(the projection published for `key` in the settings' projection topic, or None when the
    topic or the key has none; the settings); the broker checked first (ClickException naming
    what is wrong when it cannot be reached or read)."""
    from streams.preflight import BrokerCheckError, check_broker
    from streams.projection import ProjectionError, projection_topic, read_projection

    settings = stream_settings()
    topic = projection_topic(settings)
    try:
        check = check_broker(settings, [topic])
    except BrokerCheckError as error:
        raise click.ClickException(str(error)) from None
    if topic in check.missing_topics:
        return None, settings
    try:
        return read_projection(settings, key), settings
    except (ProjectionError, TimeoutError) as error:
        raise click.ClickException(f"{topic}: {error}") from error


@click.group("projection")
def projection_group() -> None:
    """The projection from the encoder's width to d that every worker shares (via Kafka)."""


@projection_group.command("show")
@config_option
@click.option("--encoder", "encoder_kind", type=ENCODER_CHOICE, default=None, help=ENCODER_HELP)
@click.option("--dim", type=int, default=None, help=DIM_HELP)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also save it to this file (for `slatestream evaluate --projection FILE`, away from the broker).")
def show_command(config_path: Path | None, encoder_kind: str | None, dim: int | None, out: Path | None) -> None:
    """Print the published projection of the configured encoder and d."""
    from streams.projection import projection_topic, save_projection

    config = load_config(config_path, dim=dim, encoder=encoder_kind)
    encoder = encoder_for(config)
    key = f"{encoder.fingerprint}/d{config.embedding.dim}"
    found, settings = served_projection(key)
    if found is None:
        raise click.ClickException(f"no projection published for {key} in {projection_topic(settings)} (the first "
                                   "worker fits one on its first items)")
    ratio = float(found.projection.explained_variance_ratio.sum())
    click.echo(f"{key}: projection {found.projection.version} at offset {found.offset}, fitted on {found.fitted_on} "
               f"items, {found.projection.input_dim} -> {found.projection.dim} dims, {ratio:.1%} of the variance")
    if out is not None:
        try:
            save_projection(out, found, projection_topic(settings))
        except OSError as error:
            raise click.ClickException(f"{out}: {error}") from error
        click.echo(f"saved to {out}")


@projection_group.command("fit")
@click.option("--items", "items_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="A JSON-lines event file; its item events are the catalogue to fit on.")
@config_option
@click.option("--encoder", "encoder_kind", type=ENCODER_CHOICE, default=None, help=ENCODER_HELP)
@click.option("--dim", type=int, default=None, help=DIM_HELP)
def fit_command(items_file: Path, config_path: Path | None, encoder_kind: str | None, dim: int | None) -> None:
    """Fit the projection on ITEMS and publish it, unless one is published already (the first wins)."""
    from streams.projection import agree_on_projection, projection_topic

    settings = broker_settings(lambda s: [projection_topic(s)])
    config = load_config(config_path, dim=dim, encoder=encoder_kind)
    items = sorted((e for e in read_events(items_file) if isinstance(e, Item)), key=lambda item: item.item_id)
    items = items[: config.embedding.projection_items]
    if len(items) < 2:
        raise click.ClickException(f"{items_file}: at least 2 items are needed, found {len(items)}")
    encoder = encoder_for(config)
    key = f"{encoder.fingerprint}/d{config.embedding.dim}"

    def fit() -> tuple[PcaProjection, int]:
        vectors = encoder.encode([item.text() for item in items])
        return PcaProjection.fit(vectors, config.embedding.dim, 0), len(items)

    agreed = agree_on_projection(settings, key, fit)
    click.echo(f"{key}: projection {agreed.projection.version} at offset {agreed.offset} (fitted on "
               f"{agreed.fitted_on} items)")
