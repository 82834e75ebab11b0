"""Where a consumer fetches a partition from: moved back to records fetched and not taken.

Plain aiokafka (no Faust): `streams.worker.faust_private.BatchDrainConsumer` calls these in its
consumer's thread when records it fetched were not handed on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError


def first_offsets(fetches: Iterable[tuple[Any, Sequence[Any]]]) -> dict[Any, int]:
    """{partition: offset of its first record} of (partition, records) pairs (empty ones left out)."""
    return {tp: fetched[0].offset for tp, fetched in fetches if fetched}


async def rewind_positions(consumer: Any, firsts: Mapping[Any, int]) -> dict[Any, tuple[int, int]]:
    """Move each partition of `firsts` that `consumer` (an AIOKafkaConsumer, called in its own
    thread) still has assigned and whose position lies past `firsts[tp]` back to it; never
    forward: a position at or before it delivers those records anyway (a reset by a new
    assignment, a seek to the committed offset), and moving back only delivers records again,
    which the worker skips by their offsets. Returns {partition: (old position, new position)}
    of those moved."""
    assigned = consumer.assignment()
    moved: dict[Any, tuple[int, int]] = {}
    for tp, first in firsts.items():
        partition = TopicPartition(tp.topic, tp.partition)
        if partition not in assigned:
            continue  # its next owner reads it from the committed offset
        try:
            position = await consumer.position(partition)
        except IllegalStateError:
            continue  # revoked meanwhile
        if position > first:
            consumer.seek(partition, first)
            moved[partition] = (position, first)
    return moved


def partitions_at(offsets: Mapping[Any, int]) -> str:
    """"topic[partition]@offset, ..." of {partition: offset}, sorted (for log lines)."""
    return ", ".join(f"{tp.topic}[{tp.partition}]@{offset}" for tp, offset in sorted(offsets.items()))
