"""What the worker core takes and tells: a consumed record, the counts that prove counts in =
counts out, and the reasons a valid-looking record is refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Record(NamedTuple):
    """One consumed Kafka record. `kind` is the topic's role: requests, impressions, ...
    (A named tuple: the worker builds one per record, ~3x cheaper than a frozen dataclass.)"""

    kind: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class UnknownRequestError(ValueError):
    """A click whose request was never ranked here."""


class UnknownScenarioError(ValueError):
    """Feedback for a scenario the configuration does not serve (and no fallback does)."""


class UnknownItemError(ValueError):
    """Feedback on an item the catalog does not hold."""


class KeyMismatchError(ValueError):
    """A record whose Kafka key is not its user id (items: its item id)."""


@dataclass
class Counts:
    """Records in, by outcome: in == ranked + learned + items + skipped + dead_lettered."""

    received: int = 0
    ranked: int = 0
    learned: int = 0
    items: int = 0
    skipped_duplicates: int = 0
    dead_lettered: int = 0
    controls: int = 0
    forgotten: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    by_topic: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)
    """(topic role, outcome) -> records: what each topic's records became."""

    def tally(self, kind: str, outcome: str, n: int = 1) -> None:
        """Count n records of topic role `kind` with `outcome` in `by_topic`."""
        if n:
            self.by_topic[kind, outcome] = self.by_topic.get((kind, outcome), 0) + n

    def balanced(self) -> bool:
        done = (self.ranked + self.learned + self.items + self.skipped_duplicates + self.dead_lettered
                + self.controls)
        return self.received == done


def check_key(record: Record, expected: str, field: str) -> None:
    """KeyMismatchError unless the record's key is the event's `field` (UTF-8): a record keyed
    otherwise lands on another partition than its user's, which would split the user's state."""
    if record.key != expected.encode():
        shown = "no key" if record.key is None else f"key {record.key[:64]!r}"
        raise KeyMismatchError(f"{shown}, but {field} {expected[:64]!r}: {record.kind} records are keyed by "
                               f"{field} (streams.client.SlatestreamClient does it)")
