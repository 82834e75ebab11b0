"""The embedding a policy's learned state was built with, kept beside that state, so that state
learned over one set of item vectors is never updated with (or ranked against) another.

Linear Thompson sampling learns weights over item vectors: the same weights are meaningless for
vectors from another encoder or another projection. The first write stores the embedding's
version under "<policy>/embedding"; an Engine with another version refuses to rank or learn
(`EmbeddingMismatchError`). To change the embedding, learn into a fresh state (another app id or
topic prefix for the worker, another state directory for `slatestream run`) and let the old one
go: docs/worker.md, "Changing the embedding".
"""

from __future__ import annotations

from collections.abc import Callable

from online.state import StateStore


class EmbeddingMismatchError(RuntimeError):
    """The learned state was built with other item vectors than this process embeds."""


class StateEmbeddingGuard:
    """Checks, then records, the embedding version of one policy's state in a store.

    Args:
        store: where the policy's state lives.
        policy_name: names the key, "<policy>/embedding".
        version: the current embedding version ("" while it is not known yet: nothing is checked).
    """

    def __init__(self, store: StateStore, policy_name: str, version: Callable[[], str]) -> None:
        self.store = store
        self.key = f"{policy_name}/embedding"
        self.version = version
        self._checked: str | None = None

    def check(self) -> list[tuple[str, bytes]]:
        """Raise EmbeddingMismatchError when the stored version differs from the current one;
        returns the write that records the current version when none is stored yet (once)."""
        current = self.version()
        if not current or self._checked == current:
            return []
        stored = self.store.get(self.key)
        if stored is not None and stored.decode() != current:
            raise EmbeddingMismatchError(
                f"the learned state under {self.key!r} was built with item vectors {stored.decode()!r}, this "
                f"process embeds with {current!r}: learn into a fresh state (docs/worker.md, 'Changing the "
                "embedding')")
        self._checked = current
        return [] if stored is not None else [(self.key, current.encode())]
