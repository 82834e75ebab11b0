"""What several commands share: the configuration file, the item embedding, the policy list,
a progress bar, the checked broker settings. Plain errors from the library become click errors
here, nowhere else."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from tqdm import tqdm

from encoders.base import Encoder
from encoders.embedding import EncoderUnavailableError, ItemEmbedding, open_encoder
from encoders.retrieval import ScorerRetriever
from encoders.scoring import make_scorer
from online.catalog import Catalog
from online.config import CONFIG_ENV, ConfigError, SlatestreamConfig, resolve_config
from online.events import Item
from online.policies import POLICIES
from online.retrieval import Retriever

if TYPE_CHECKING:
    from streams.settings import StreamSettings

CONFIG_HELP = "A slatestream configuration file (.toml/.yaml); default: $SLATESTREAM_CONFIG, else built-in defaults."
ENCODER_CHOICE = click.Choice(["bert", "hashing"])
ENCODER_HELP = "Item text encoder: bert (all-MiniLM-L6-v2 on ONNX Runtime, exported on first use) or hashing  " \
               "[default: the configuration's embedding.encoder, bert]"
DEVICE_CHOICE = click.Choice(["auto", "cpu", "cuda"])
DIM_HELP = "Bandit item dimension d  [default: the configuration's embedding.dim, 32]"
N_DRAWS_HELP = "Monte Carlo draws per slate  [default: the configuration's engine.n_draws, 64]"


def config_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """--config FILE (an existing .toml/.yaml file), passed as `config_path`."""
    return click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        default=None, help=CONFIG_HELP)(function)


def configured(config_path: Path | None) -> bool:
    """Whether a configuration file is given (--config or $SLATESTREAM_CONFIG)."""
    return config_path is not None or bool(os.environ.get(CONFIG_ENV))


def load_config(config_path: Path | None, *, dim: int | None = None, encoder: str | None = None,
                n_draws: int | None = None, device: str | None = None) -> SlatestreamConfig:
    """The configuration from --config, else $SLATESTREAM_CONFIG, else the defaults, with the
    command line's overrides of embedding.dim, .encoder, .device and engine.n_draws applied."""
    try:
        config = resolve_config(config_path)
        overrides = (("dim", dim), ("encoder", encoder), ("device", device))
        embedding: dict[str, Any] = {k: v for k, v in overrides if v is not None}
        engine: dict[str, Any] = {} if n_draws is None else {"n_draws": n_draws}
        if embedding or engine:
            data = config.model_dump()
            data["embedding"].update(embedding)
            data["engine"].update(engine)
            config = SlatestreamConfig.model_validate(data)
        return config
    except (ConfigError, ValueError) as error:
        raise click.ClickException(str(error)) from error


def encoder_for(config: SlatestreamConfig, model: Path | None = None) -> Encoder:
    """The configuration's text encoder (ClickException when it cannot be opened); a first use of
    BERT exports it into the per-user cache behind a progress bar."""
    settings = config.embedding
    chosen = model or (Path(settings.model) if settings.model else None)
    try:
        with export_progress() as progress:
            return open_encoder(settings.encoder, chosen, device=settings.device, int8=settings.int8,
                                progress=progress)
    except EncoderUnavailableError as error:
        raise click.ClickException(str(error)) from error


@contextmanager
def export_progress() -> Iterator[Callable[[str], None]]:
    """A progress callback: the first message starts a bar that shows the time spent (an export
    has no known length), the next ones are written above it."""
    bar: list[tqdm[Any]] = []
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.5):
            bar[0].refresh()

    def progress(message: str) -> None:
        if not bar:
            bar.append(tqdm(total=None, desc=message, bar_format="{desc} {elapsed}", file=sys.stderr))
            threading.Thread(target=tick, daemon=True).start()
        else:
            bar[0].write(message, file=sys.stderr)

    try:
        yield progress
    finally:
        stop.set()
        if bar:
            bar[0].close()


def item_embedding(config: SlatestreamConfig, fit_items: list[Item], seed: int, model: Path | None = None,
                   cache_dir: Path | None = None, encoder: Encoder | None = None) -> ItemEmbedding:
    """The configuration's embedding step (over `encoder` when one is open already), its projection
    fitted on `fit_items`."""
    try:
        return ItemEmbedding.fitted(encoder or encoder_for(config, model), config.embedding.dim, fit_items, seed,
                                    cache_dir)
    except ValueError as error:
        raise click.ClickException(str(error)) from error


def retriever_for(config: SlatestreamConfig) -> Callable[[Catalog], Retriever]:
    """Retrieval for requests without candidates on the scoring backend of the configured device
    (torch on CUDA when present, numpy otherwise), as the worker retrieves."""
    device = config.embedding.device

    def make(catalog: Catalog) -> Retriever:
        try:
            return ScorerRetriever(make_scorer(device), catalog)
        except ValueError as error:
            raise click.ClickException(str(error)) from error

    return make


def policy_names(text: str, param_hint: str = "--policies") -> list[str]:
    """Comma-separated registered policy names (BadParameter naming the unknown ones)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in POLICIES]
    if unknown or not names:
        raise click.BadParameter(f"unknown policies {unknown}; known: {list(POLICIES)}", param_hint=param_hint)
    return names


@contextmanager
def progress(total: int | None, unit: str, desc: str) -> Iterator[Callable[[int], None]]:
    """A progress bar; yields `advance(done)`, which moves it to `done` units."""
    with tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True, mininterval=1.0) as bar:
        done = [0]

        def advance(count: int) -> None:
            bar.update(count - done[0])
            done[0] = count

        yield advance


def stream_settings() -> StreamSettings:
    """StreamSettings from the SLATESTREAM_* environment; ClickException naming what is wrong."""
    from pydantic import ValidationError

    from streams.settings import StreamSettings

    try:
        return StreamSettings()
    except ValidationError as error:
        problems = "; ".join(f"SLATESTREAM_{'_'.join(str(p) for p in e['loc']).upper() or '*'}: {e['msg']}"
                             for e in error.errors())
        raise click.ClickException(f"broker settings: {problems}") from None


def broker_settings(topics: Callable[[StreamSettings], Sequence[str]] | None = None,
                    group: Callable[[StreamSettings], str] | None = None) -> StreamSettings:
    """`stream_settings()` with the broker checked first (streams.preflight, within
    SLATESTREAM_PREFLIGHT_TIMEOUT_S, 5 s): an unreachable broker, a failed authentication or
    missing rights on `topics(settings)` or the consumer group `group(settings)` become a
    ClickException that names the cause and the settings to check. Warns on stderr when
    kafka-python's checksums run in pure Python (streams.checksums)."""
    from streams.checksums import checksum_warning
    from streams.preflight import BrokerCheckError, check_broker

    if (warning := checksum_warning()) is not None:
        click.echo(f"warning: {warning}", err=True)
    settings = stream_settings()
    try:
        check_broker(settings, topics(settings) if topics else (), group(settings) if group else None)
    except BrokerCheckError as error:
        raise click.ClickException(str(error)) from None
    return settings
