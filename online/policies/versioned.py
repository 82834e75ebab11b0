"""Persistent versions of one mutable value: an update costs what it changes, every version
stays readable.

The newest version holds the live value; every older version holds only an undo record: how
to turn the live value back into it (Baker's rerooting persistent arrays). Reading a version
first moves the live value to it, applying the undo records on the path and leaving redo
records behind, so all versions stay valid and immutable to their holders while an update
never copies what it does not change. The version an engine reads and extends, the newest,
costs nothing to reach; an older one costs the changes between them. A version keeps only
newer ones alive, never older ones. Not thread-safe (nor is anything an Engine holds).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import count
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)

_IDS = count()


class Undo(Protocol[T_contra]):
    """A record that turns the live value into another version's."""

    def apply(self, live: T_contra) -> Undo[T_contra]:
        """Change `live` into the recorded version; return the record that changes it back."""
        ...


class Version(Generic[T]):
    """One version of a value (see the module doc)."""

    __slots__ = ("_live", "_parent", "_undo", "derived_from", "version_id")

    def __init__(self, live: T) -> None:
        self._live: T | None = live
        self._parent: Version[T] | None = None
        self._undo: Undo[T] | None = None
        self.version_id = next(_IDS)
        self.derived_from: int | None = None
        """The version_id of the version `derive` made this one from (None: built from
        scratch): an id, not a reference, so that no version keeps an older one alive."""

    def read(self) -> T:
        """The value of this version. Callers must not change it (use `derive`)."""
        path: list[Version[T]] = []
        node = self
        while node._live is None:
            path.append(node)
            assert node._parent is not None
            node = node._parent
        for child in reversed(path):  # from the live value's neighbour down to self
            parent, undo = child._parent, child._undo
            assert parent is not None and undo is not None and parent._live is not None
            redo = undo.apply(parent._live)
            child._live, child._parent, child._undo = parent._live, None, None
            parent._live, parent._parent, parent._undo = None, child, redo
        assert self._live is not None
        return self._live

    def derive(self, change: Callable[[T], Undo[T]]) -> Version[T]:
        """A new version: `change` updates the live value in place and returns the record that
        undoes it; this version keeps that record."""
        live = self.read()
        undo = change(live)
        new: Version[T] = Version(live)
        new.derived_from = self.version_id
        self._live, self._parent, self._undo = None, new, undo
        return new


class Versioned(Generic[T]):
    """Base of a value kept as `Version`s: `_version` is the version this object reads."""

    __slots__ = ("_version",)

    _version: Version[T]

    @property
    def version_id(self) -> int:
        """This version's id (unique in the process)."""
        return self._version.version_id

    @property
    def derived_from(self) -> int | None:
        """The version_id of the version this one was made from by an update (None: built from
        scratch)."""
        return self._version.derived_from
