"""The item embedding `slatestream evaluate` scores with: the worker's by default.

The worker projects its encoder's vectors to d with the projection agreed through the
`<prefix>projection` topic (streams.projection); a policy evaluated with another projection
scores items in another space than the served one, and a snapshot of the worker's state would
not even be comparable. `--projection` chooses (`PROJECTION_HELP`):

- `auto` (the default): the published one when a broker is configured (SLATESTREAM_BROKER_URL
  set); when the topic holds none for this encoder and d, the report says so and the projection
  is fitted on the log's items; with no broker configured, fitted on the log's items, said too;
- `topic`: the published one, or an error;
- `fit`: fitted on the log's items (seeded), as before the worker shared one;
- `FILE`: a projection saved by `slatestream projection show --out FILE` (offline).

An encoder as wide as d needs no projection. `ProjectionUsed` is what the report records.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from encoders.base import Encoder
from encoders.embedding import ItemEmbedding
from online.config import SlatestreamConfig
from online.events import Item
from slatestream.options import encoder_for, item_embedding

BROKER_ENV = "SLATESTREAM_BROKER_URL"
PROJECTION_HELP = ("Projection from the encoder's width to d: auto (the worker's, read from <prefix>projection when "
                   f"{BROKER_ENV} is set, else fitted on the log), topic (the worker's, or an error), fit (on the "
                   "log's items), or a FILE saved by `slatestream projection show --out`  [default: auto]")


@dataclass(frozen=True)
class ProjectionUsed:
    """Which projection the evaluation embedded with, for the report.

    source: "topic", "file", "fitted" (on the log's items) or "none" (the encoder is d wide);
    key: "<encoder fingerprint>/d<d>"; version: the projection's version (None without one);
    offset, fitted_on, fitted_at: of the published record (topic, file); where: the topic or
    the file; note: one sentence saying what was used and why."""

    source: str
    key: str
    version: str | None
    note: str
    offset: int | None = None
    fitted_on: int | None = None
    fitted_at: str | None = None
    where: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluation_embedding(config: SlatestreamConfig, choice: str, fit_items: list[Item], seed: int,
                         model: Path | None = None) -> tuple[ItemEmbedding, ProjectionUsed]:
    """The configuration's embedding with the projection `choice` names (see the module doc),
    and what was used; ClickException when the choice cannot be honoured."""
    encoder = encoder_for(config, model)
    dim = config.embedding.dim
    key = f"{encoder.fingerprint}/d{dim}"
    if encoder.dim <= dim:  # as wide: no projection; narrower: ItemEmbedding's error
        embed = item_embedding(config, fit_items, seed, encoder=encoder)
        return embed, ProjectionUsed("none", key, None, f"no projection: the encoder is {encoder.dim} wide, d = {dim}")
    if choice == "fit":
        return _fitted(config, encoder, fit_items, seed, key, "--projection fit")
    if choice not in ("auto", "topic"):
        return _from_file(encoder, dim, Path(choice), key)
    if choice == "auto" and not os.environ.get(BROKER_ENV):
        return _fitted(config, encoder, fit_items, seed, key,
                       f"no broker configured ({BROKER_ENV} unset), so not the worker's: --projection topic or FILE "
                       "for the served one")
    from slatestream.projection import served_projection
    from streams.projection import projection_topic

    found, settings = served_projection(key)
    topic = projection_topic(settings)
    if found is None:
        if choice == "topic":
            raise click.ClickException(f"--projection topic: no projection published for {key} in {topic} (the "
                                       "worker settles it on its first items; --projection fit fits one on the log)")
        return _fitted(config, encoder, fit_items, seed, key, f"none published for {key} in {topic}")
    embed = ItemEmbedding(encoder, dim, found.projection)
    return embed, ProjectionUsed("topic", key, found.projection.version,
                                 f"the worker's: read from {topic} at offset {found.offset}, fitted on "
                                 f"{found.fitted_on} items", found.offset, found.fitted_on, found.fitted_at, topic)


def _fitted(config: SlatestreamConfig, encoder: Encoder, fit_items: list[Item], seed: int, key: str,
            why: str) -> tuple[ItemEmbedding, ProjectionUsed]:
    embed = item_embedding(config, fit_items, seed, encoder=encoder)
    version = None if embed.projection is None else embed.projection.version
    return embed, ProjectionUsed("fitted", key, version, f"fitted on the log's {len(fit_items)} items ({why})",
                                 fitted_on=len(fit_items))


def _from_file(encoder: Encoder, dim: int, path: Path, key: str) -> tuple[ItemEmbedding, ProjectionUsed]:
    from streams.projection import ProjectionError, load_projection

    if not path.is_file():
        raise click.BadParameter(f"{path}: not auto, topic, fit or a file", param_hint="--projection")
    try:
        found, topic = load_projection(path)
    except (ProjectionError, OSError) as error:
        raise click.BadParameter(f"{path}: {error}", param_hint="--projection") from error
    if found.key != key:
        raise click.BadParameter(f"{path} holds the projection of {found.key}; this evaluation embeds with {key} "
                                 "(use the encoder and --dim it was fitted for)", param_hint="--projection")
    embed = ItemEmbedding(encoder, dim, found.projection)
    return embed, ProjectionUsed("file", key, found.projection.version,
                                 f"the worker's, saved to {path}: read from {topic or 'the projection topic'} at "
                                 f"offset {found.offset}, fitted on {found.fitted_on} items",
                                 found.offset, found.fitted_on, found.fitted_at, str(path))
