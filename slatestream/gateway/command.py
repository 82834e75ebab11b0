"""`slatestream gateway`: serve rank, feedback and items over HTTP (settings from SLATESTREAM_*)."""

from __future__ import annotations

import logging

import click


@click.command("gateway")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--timeout-s", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
              help="How long a rank waits for its slate when the call names no timeout_s.")
@click.option("--max-timeout-s", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="The largest timeout_s a call may ask for.")
@click.option("--threads", type=click.IntRange(1, 4096), default=64, show_default=True,
              help="Ranks waiting for their slates at once (more queue).")
@click.option("--max-body-bytes", type=click.IntRange(1024), default=1024 * 1024, show_default=True)
@click.option("--loglevel", default="info", show_default=True)
def gateway_command(host: str, port: int, timeout_s: float, max_timeout_s: float, threads: int,
                    max_body_bytes: int, loglevel: str) -> None:
    """Serve POST /v1/rank, /v1/feedback, /v1/items and GET /openapi.json over HTTP, with Kafka behind
    (broker, security and topic prefix from SLATESTREAM_* environment variables)."""
    from aiohttp import web
    from kafka.errors import KafkaError

    from slatestream.gateway.app import Gateway, make_app
    from slatestream.options import broker_settings
    from streams.client import SlatestreamClient
    from streams.outages import quiet_outages
    from streams.topics import TopicNames, ensure_topics

    logging.basicConfig(level=loglevel.upper(), format="[%(asctime)s] [%(levelname)s] %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))  # a line per connection
    if timeout_s > max_timeout_s:
        raise click.BadParameter(f"--timeout-s {timeout_s:g} is above --max-timeout-s {max_timeout_s:g}")
    settings = broker_settings(lambda s: TopicNames.from_settings(s).all())
    quiet_outages(settings)  # one line per broker outage, not one per retry
    try:
        ensure_topics(settings)  # the slates topic must exist before the client watches it
        client = SlatestreamClient(settings)
        client.watch_slates()
    except KafkaError as error:
        raise click.ClickException(f"cannot reach the broker at {settings.broker_url}: {error!r} "
                                   "(check SLATESTREAM_BROKER_URL and the security settings)") from None
    gateway = Gateway(client, rank_timeout_s=timeout_s, max_timeout_s=max_timeout_s, threads=threads)
    app = make_app(gateway, max_body_bytes=max_body_bytes)
    app.on_cleanup.append(lambda _: _close(client))
    click.echo(f"gateway on http://{host}:{port} (broker {settings.broker_url}, topics {settings.topic_prefix}*)")
    web.run_app(app, host=host, port=port, print=None, access_log=None)


async def _close(client: object) -> None:
    close = getattr(client, "close", None)
    if close is not None:
        close()
