"""Fail if the pure learning core imports an I/O library.

Usage: python tools/check_purity.py online
Walks every .py file under the given folder with the ast module and reports each
import of a forbidden top-level module (Kafka clients, Faust, rocksdict, onnxruntime).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

FORBIDDEN = frozenset(
    {"faust", "aiokafka", "kafka", "rocksdict", "onnxruntime", "streams", "mode"}
)


def forbidden_imports(root: Path) -> list[str]:
    """Return 'path:line: module' for every forbidden import under root."""
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in FORBIDDEN:
                    problems.append(f"{path}:{node.lineno}: imports {name}")
    return problems


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "online")
    problems = forbidden_imports(root)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"{root}/ must stay pure: {len(problems)} forbidden import(s)", file=sys.stderr)
        return 1
    print(f"{root}/ is pure: no Kafka, Faust, rocksdict or onnxruntime imports")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
