"""Loads this folder's helper module `synthetic_world` once, by path, so that its tests can
`import synthetic_world` (tests are not a package under --import-mode=importlib)."""

import importlib.util
import sys
from pathlib import Path


def _register(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


_register("synthetic_world")
