"""`slatestream status`: what a running worker reports about itself (its /status and /readyz)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import click


def fetch(url: str, timeout_s: float) -> tuple[int, bytes]:
    """(HTTP status, body) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - the operator's own URL
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


@click.command("status")
@click.option("--url", default="http://127.0.0.1:9464", show_default=True,
              help="The worker's endpoints (SLATESTREAM_METRICS_PORT on its host).")
@click.option("--timeout", "timeout_s", type=float, default=5.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
def status_command(url: str, timeout_s: float, as_json: bool) -> None:
    """Print a worker's assignment, lag, last commit and counts; exit 1 when it is not ready."""
    base = url.rstrip("/")
    try:
        code, body = fetch(f"{base}/status", timeout_s)
        ready_code, ready = fetch(f"{base}/readyz", timeout_s)
    except (urllib.error.URLError, OSError) as error:
        raise click.ClickException(f"no worker answers at {base}: {error} (is it running, with "
                                   "SLATESTREAM_METRICS_PORT set to this port?)") from error
    if code != 200:
        raise click.ClickException(f"{base}/status answered {code}: {body.decode(errors='replace')[:200]}")
    status = json.loads(body)
    if as_json:
        click.echo(json.dumps(status, indent=2))
    else:
        counts = status.get("counts", {})
        click.echo(f"ready: {ready.decode().strip()}")
        click.echo(f"assigned partitions: {status.get('assigned_partitions')}")
        click.echo(f"lag: {status.get('lag') or 'none'}")
        click.echo(f"last commit: {status.get('last_commit_s_ago')} s ago, {status.get('committed')} records committed")
        click.echo(f"catalog: {status.get('catalog_items')} items (caught up: {status.get('catalog_caught_up')})")
        click.echo("counts: " + ", ".join(f"{k}={v}" for k, v in counts.items() if k != "by_reason"))
        if counts.get("by_reason"):
            click.echo("dead letters by reason: " + ", ".join(f"{k}={v}" for k, v in counts["by_reason"].items()))
        click.echo(f"embedding: {status.get('embedding_version')}")
    if ready_code != 200:
        raise SystemExit(1)
