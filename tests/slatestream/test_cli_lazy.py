"""The command line imports a command's module only when that command runs or help lists it."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from slatestream.cli import COMMANDS, main

WORKER_HELP = """
import json, sys
from slatestream.cli import main
try:
    main(["worker", "--help"])
except SystemExit as stop:
    code = stop.code
print(json.dumps([code, sorted(name for name in sys.modules if name.startswith(("slatestream.", "scipy")))]))
"""


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_name_loads_the_click_command_of_that_name(name: str) -> None:
    with click.Context(main) as context:
        command = main.get_command(context, name)
    assert isinstance(command, click.Command) and command.name == name


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(COMMANDS)


def test_the_worker_starts_without_the_other_commands_modules() -> None:
    """`slatestream worker` imports the worker's modules, not the sweep's (scipy.stats), the
    demo's or the gateway's (each ~0.1-0.3 s of a worker's start)."""
    out = subprocess.run([sys.executable, "-c", WORKER_HELP], capture_output=True, text=True, check=True)
    code, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert code == 0
    assert "slatestream.worker" in loaded
    assert not {"slatestream.sweep", "slatestream.demo", "slatestream.gateway.command", "scipy.stats"} & set(loaded)
