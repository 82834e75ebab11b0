"""`slatestream forget USER`: ask the workers to delete a user's learned state.

Publishes a ForgetUser control record (streams.control) on the user's partition of the
control topic; the worker that owns the partition deletes the user's state key, which
writes a tombstone to the state changelog. `--wait S` blocks until that tombstone is
there (the state is then gone from the table, its changelog, and every recovery).
"""

from __future__ import annotations

import click

from online.policies import POLICIES


@click.command("forget")
@click.argument("user_id")
@click.option("--wait", "wait_s", type=float, default=0.0, show_default=True,
              help="Seconds to wait for the tombstone in the state changelog (0: do not wait).")
@click.option("--policy", default="linear_ts", show_default=True, type=click.Choice(list(POLICIES)),
              help="The workers' policy (names the state key).")
def forget_command(user_id: str, wait_s: float, policy: str) -> None:
    """Delete USER_ID's learned state (settings from SLATESTREAM_* environment variables)."""
    from slatestream.options import broker_settings
    from streams.control import control_topic, ensure_control_topic, publish_forget
    from streams.state_changelog import end_offset, state_changelog_topic, wait_for_tombstone

    settings = broker_settings(lambda s: [control_topic(s), state_changelog_topic(s)])
    ensure_control_topic(settings)
    key = f"{policy}/user/{user_id}".encode()
    ends = {p: end_offset(settings, p) for p in range(settings.partitions)} if wait_s > 0 else {}
    partition, offset = publish_forget(settings, user_id)
    click.echo(f"forget {user_id}: control record at partition {partition}, offset {offset}")
    if wait_s > 0:
        try:
            at = wait_for_tombstone(settings, key, partition, after_offset=ends[partition] - 1, timeout_s=wait_s)
        except TimeoutError as error:
            raise click.ClickException(f"{error} (is a worker running?)") from error
        click.echo(f"forgotten: tombstone for {key.decode()} at changelog offset {at}")
