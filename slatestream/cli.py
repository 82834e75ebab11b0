"""The `slatestream` command line: one click group, each command in a module of its own.

    slatestream demo | run | worker | status | leaderboard | gateway | evaluate | sweep | replay | forget
    slatestream projection fit/show | dead-letters list/requeue | encoders export | schemas
"""

from __future__ import annotations

import click

from slatestream.dead_letters import dead_letters_group
from slatestream.demo import demo_command
from slatestream.evaluate import evaluate_command
from slatestream.export import encoders_group
from slatestream.forget import forget_command
from slatestream.gateway.command import gateway_command
from slatestream.leaderboard import leaderboard_command
from slatestream.projection import projection_group
from slatestream.replay import replay_command
from slatestream.run import run_command
from slatestream.schemas import schemas_command
from slatestream.status import status_command
from slatestream.sweep import sweep_command
from slatestream.validate import validate_command
from slatestream.worker import worker_command

SERVICES = frozenset({"worker", "gateway"})
"""Commands left with glibc's malloc defaults: the heap tuning showed no gain through the broker
(docs/operations.md, "Memory: the heap tuning")."""


@click.group()
@click.pass_context
def main(context: click.Context) -> None:
    """slatestream: a streaming, online-learning slate recommender."""
    from slatestream.heap import keep_freed_memory
    from slatestream.threads import use_one_blas_thread

    use_one_blas_thread()  # the core's many small linear-algebra calls (slatestream/threads.py)
    if context.invoked_subcommand not in SERVICES:
        keep_freed_memory()  # each batch's arrays reuse freed heap pages (slatestream/heap.py)


for _command in (demo_command, run_command, worker_command, evaluate_command, sweep_command, replay_command,
                 forget_command, encoders_group, schemas_command, projection_group, status_command,
                 dead_letters_group, gateway_command, validate_command, leaderboard_command):
    main.add_command(_command)
