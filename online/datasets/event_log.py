"""The project's own event files: JSON lines, one event per line (online.events codec).

Lines are written by `encode_event` and read back with `decode_event`; blank lines are
skipped. A bad line raises `EventLogError` naming the source, the 1-based line number,
the offending field and the reason. Paths ending in ".gz" are gzip-compressed.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TypeAlias

from online.events import (
    Click,
    EventDecodeError,
    Impression,
    Item,
    RankRequest,
    Slate,
    decode_event,
    encode_event,
)

AnyEvent: TypeAlias = RankRequest | Slate | Impression | Click | Item
"""Any domain event (the union `decode_event` returns)."""


class EventLogError(ValueError):
    """A line of an event file that is not a valid event."""

    def __init__(self, source: str, line: int, field: str, reason: str) -> None:
        super().__init__(f"{source}:{line}: {field}: {reason}")
        self.source = source
        self.line = line
        self.field = field
        self.reason = reason


def parse_event_lines(lines: Iterable[bytes | str], source: str = "<lines>") -> Iterator[AnyEvent]:
    """Decode JSON-lines events lazily, in order; `source` names them in errors."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            yield decode_event(raw)
        except EventDecodeError as error:
            raise EventLogError(source, number, error.field, error.reason) from error


def _open(path: Path, write: bool) -> IO[bytes] | gzip.GzipFile:
    if path.suffix == ".gz":
        return gzip.GzipFile(path, "wb" if write else "rb")
    return path.open("wb" if write else "rb")


def read_events(path: str | Path) -> Iterator[AnyEvent]:
    """Events of a JSON-lines file (".gz" decompressed), lazily, in file order."""
    file_path = Path(path)
    with _open(file_path, write=False) as handle:
        yield from parse_event_lines(handle, source=str(file_path))


def write_events(path: str | Path, events: Iterable[AnyEvent]) -> int:
    """Write events as JSON lines (".gz" compressed), replacing the file; return the count."""
    count = 0
    with _open(Path(path), write=True) as handle:
        for event in events:
            handle.write(encode_event(event) + b"\n")
            count += 1
    return count
