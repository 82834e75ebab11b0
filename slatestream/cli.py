"""The `slatestream` command line: one click group, each command in a module of its own.

    slatestream demo | run | worker | status | leaderboard | gateway | evaluate | sweep | replay | forget
    slatestream projection fit/show | dead-letters list/requeue | encoders export | schemas

A command's module is imported when that command runs (or help lists it), not with the group:
`slatestream worker` no longer imports the evaluation's sweep (scipy.stats), the demo or the
gateway, ~0.5 s of every worker's start on the 2-core machine (docs/operations.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

from slatestream.hugepages import no_numpy_hugepages

COMMANDS: Mapping[str, str] = {
    "demo": "slatestream.demo:demo_command",
    "run": "slatestream.run:run_command",
    "worker": "slatestream.worker:worker_command",
    "evaluate": "slatestream.evaluate:evaluate_command",
    "sweep": "slatestream.sweep:sweep_command",
    "replay": "slatestream.replay:replay_command",
    "forget": "slatestream.forget:forget_command",
    "encoders": "slatestream.export:encoders_group",
    "schemas": "slatestream.schemas:schemas_command",
    "projection": "slatestream.projection:projection_group",
    "status": "slatestream.status:status_command",
    "dead-letters": "slatestream.dead_letters:dead_letters_group",
    "gateway": "slatestream.gateway.command:gateway_command",
    "validate": "slatestream.validate:validate_command",
    "leaderboard": "slatestream.leaderboard:leaderboard_command",
}
"""Command name -> "module:attribute" of its click command."""

SERVICES = frozenset({"worker", "gateway"})
"""Commands left with glibc's malloc defaults: the heap tuning showed no gain through the broker
(docs/operations.md, "Memory: the heap tuning"). Their numpy arrays go without the huge-page
advice instead (slatestream/hugepages.py), set before their module imports numpy."""


class LazyGroup(click.Group):
    """A click group whose commands (`commands_at`: name -> "module:attribute") are imported
    on first use, by name (click's documented pattern for lazily loaded subcommands)."""

    def __init__(self, *args: Any, commands_at: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands_at = dict(commands_at)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.commands_at})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.commands_at.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attribute = target.split(":")
        if cmd_name in SERVICES:
            no_numpy_hugepages()  # before the module imports numpy (slatestream/hugepages.py)
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command) or command.name != cmd_name:
            raise TypeError(f"{target} is not the click command {cmd_name!r}")
        return command


@click.group(cls=LazyGroup, commands_at=COMMANDS)
@click.pass_context
def main(context: click.Context) -> None:
    """slatestream: a streaming, online-learning slate recommender."""
    from slatestream.heap import keep_freed_memory
    from slatestream.threads import use_one_blas_thread

    use_one_blas_thread()  # the core's many small linear-algebra calls (slatestream/threads.py)
    if context.invoked_subcommand not in SERVICES:
        keep_freed_memory()  # each batch's arrays reuse freed heap pages (slatestream/heap.py)
