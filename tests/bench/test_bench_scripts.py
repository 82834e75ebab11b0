"""Every benchmark's imports from the project still resolve (a benchmark whose imports broke when
the code moved is found here, not by the next person who runs it): each `from online|encoders|
streams|slatestream... import name` names a module that imports and a name it has."""

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
PROJECT = ("online", "encoders", "streams", "slatestream")


def project_imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name or None) for every import of a project module in the file, nested ones too."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PROJECT:
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.split(".")[0] in PROJECT]
    return found


@pytest.mark.parametrize("script", sorted(path.name for path in BENCH.glob("*.py")))
def test_the_benchmarks_project_imports_resolve(script: str) -> None:
    for module_name, name in project_imports(BENCH / script):
        module = importlib.import_module(module_name)
        if name is not None and not hasattr(module, name):
            importlib.import_module(f"{module_name}.{name}")  # a submodule, or ModuleNotFoundError


def test_a_moved_name_is_caught(tmp_path: Path) -> None:
    script = tmp_path / "old.py"
    script.write_text("from streams.rocks_store import RocksDictStore\n")
    (module_name, _), = project_imports(script)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(module_name)
