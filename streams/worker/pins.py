"""The one check both private-name modules make (`faust_private`, `aiokafka_private`): the
installed version of a dependency is the one their private names were read from."""

from __future__ import annotations


def require_pinned(package: str, installed: str, pinned: str, module: str, error: type[RuntimeError]) -> None:
    """Raise `error` unless `installed` is exactly `pinned`, naming `module` (whose private names
    need it) and the install that fixes it."""
    if installed != pinned:
        raise error(f"{package} {installed} is installed; the worker uses private names of {pinned} "
                    f"({module}): install {package}=={pinned}")
