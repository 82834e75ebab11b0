"""A linear model's weights by name as a persistent table: an update costs what it changes.

`Weights` values are immutable to their users, yet a new version shares the dict of the
version it came from (online.policies.versioned, as online.policies.arm_table does for arms):
the newest version holds the live table (name -> float64 weight, the intercept and the
optimizer's step count), older ones the undo records of the changes since. So an SGD step
that touches the weights of the features present in its examples costs O(examples),
however many weights (one per item) the model has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from online.policies.versioned import Version, Versioned


class Table:
    """The live weights: `weights` name -> value (every name), `shared` the names that do not
    start with `part_prefix` (the few weights every example has a say in: they go in a stored
    state's head, the others one part per weight), `intercept`, `n_iterations` (SGD steps)."""

    def __init__(self, part_prefix: str) -> None:
        self.part_prefix = part_prefix
        self.weights: dict[str, float] = {}
        self.shared: dict[str, None] = {}  # an ordered set
        self.intercept = 0.0
        self.n_iterations = 0

    def set(self, name: str, value: float) -> None:
        if name not in self.weights and not name.startswith(self.part_prefix):
            self.shared[name] = None
        self.weights[name] = value

    def remove(self, name: str) -> None:
        del self.weights[name]
        self.shared.pop(name, None)


@dataclass
class _Undo:
    """How to turn the live table into another version's: set each name of `values` to its
    value (None: the name is absent there), the intercept and the step count."""

    values: dict[str, float | None]
    intercept: float
    n_iterations: int

    def apply(self, table: Table) -> _Undo:
        """Apply to `table` (holding the other version); returns the record that undoes it."""
        redo = _Undo({name: table.weights.get(name) for name in self.values}, table.intercept, table.n_iterations)
        for name, value in self.values.items():
            if value is None:
                table.remove(name)
            else:
                table.set(name, value)
        table.intercept, table.n_iterations = self.intercept, self.n_iterations
        return redo


class Weights(Versioned[Table]):
    """Named float64 weights, an intercept and a step count. Immutable: `update` returns a new
    version sharing this one's table (module doc). Weights are never removed."""

    __slots__ = ("_changed",)

    def __init__(self, weights: Mapping[str, float], intercept: float, n_iterations: int, part_prefix: str) -> None:
        table = Table(part_prefix)
        for name, value in weights.items():
            table.set(name, float(value))
        table.intercept, table.n_iterations = float(intercept), int(n_iterations)
        self._version = Version(table)
        self._changed: tuple[str, ...] = tuple(table.weights)

    def read(self) -> Table:
        """This version's table: O(1) for the newest version, else O(changes since). Do not
        change it, nor keep it past a read of another version (it is shared)."""
        return self._version.read()

    @property
    def intercept(self) -> float:
        return self.read().intercept

    @property
    def n_iterations(self) -> int:
        return self.read().n_iterations

    def __len__(self) -> int:
        return len(self.read().weights)

    def to_dict(self) -> dict[str, float]:
        """A copy of every weight (O(weights): for codecs of the whole state and inspection)."""
        return dict(self.read().weights)

    def update(self, step: Callable[[Table], tuple[Mapping[str, float], float, int]]) -> Weights:
        """A new version: `step(table)` reads this version's table (without changing it) and
        returns (the changed weights by name, the new intercept, the new step count)."""
        changed: list[tuple[str, ...]] = []

        def change(table: Table) -> _Undo:
            values, intercept, n_iterations = step(table)
            undo = _Undo({name: table.weights.get(name) for name in values}, table.intercept, table.n_iterations)
            for name, value in values.items():
                table.set(name, value)
            table.intercept, table.n_iterations = intercept, n_iterations
            changed.append(tuple(values))
            return undo

        new = Weights.__new__(Weights)
        new._version = self._version.derive(change)
        new._changed = changed[0]
        return new

    def changed(self) -> tuple[str, ...]:
        """The names `update` set making this version (every name for one built from scratch)."""
        return self._changed

    def __repr__(self) -> str:
        return f"Weights({len(self)} weights)"
