"""Which of a partition's feedback events each state learns, and what the learned ones count.

`fold_in_order` reads one engine's list of (record, event) in log order against the applied
offsets of the population and of each user, and against each user's recent event ids (a
producer's duplicates); `live_totals` sums what was learned per scenario for `WorkerCore.live`.
No Faust here: the worker's core (`streams.worker.core`) calls both inside a learn call.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from functools import reduce
from itertools import compress, repeat
from typing import NamedTuple

from online.engine import Engine
from online.wire import FeedbackEvent
from streams.worker.recent_ids import RecentIds, id_key
from streams.worker.records import Counts, Record
from streams.worker.table_store import TOPIC_INDEX, AppliedOffsets

_TYPE, _SCENARIO = operator.attrgetter("type"), operator.attrgetter("scenario")
_SHOWN, _REWARD = operator.attrgetter("shown"), operator.attrgetter("reward")


class Fold(NamedTuple):
    """What a fold of one engine's records decided: the events its users' states learn and those
    the population's learns (two lists, equal element for element in the usual case), the
    population's offsets after it, the keys of states to resend (`replayed`), and how many
    records were skipped as already held or as a producer's duplicates."""

    user_events: list[FeedbackEvent]
    global_events: list[FeedbackEvent]
    global_mark: AppliedOffsets
    replayed: set[str]
    skipped: int
    duplicates: int


def fold_in_order(recent_events: RecentIds, counts: Counts, engine: Engine,
                  decoded: Sequence[tuple[Record, FeedbackEvent]], global_done: AppliedOffsets,
                  user_done: dict[str, tuple[str, AppliedOffsets]], duplicate_ids: set[int] | None) -> Fold:
    """Which events each state learns, record by record. `user_done`: per user id, its state's
    key and a copy of its applied offsets. Every state's offsets move as the list is read (a
    user's in `user_done`, the population's in the fold's `global_mark`), so a record delivered
    twice in one list (Faust's seek back to the committed offsets after a recovery fetches
    again what a lane already holds) is a replay at its second copy, for the population as for
    its user. The ids of events passed as a producer's duplicates go to `duplicate_ids`; new
    events' ids to the users' recent ids."""
    partition = decoded[0][0].partition
    global_mark = dict(global_done)  # the population's offsets as of the record in hand
    user_events: list[FeedbackEvent] = []
    global_events: list[FeedbackEvent] = []
    replayed: set[str] = set()
    skipped = duplicates = 0
    seen: dict[str, tuple[dict[bytes, float], dict[bytes, float]]] = {}  # per user: (this batch's ids, recent ids)
    for record, event in decoded:
        topic, offset, user_id = TOPIC_INDEX[record.kind], record.offset, event.user_id
        done = user_done[user_id][1]
        user_new, global_new = offset > done.get(topic, -1), offset > global_mark.get(topic, -1)
        if user_new and global_new:
            ids = seen.get(user_id)
            if ids is None:
                ids = seen[user_id] = ({}, recent_events.of(partition, user_id))
            event_key = id_key(event.event_id)
            if event_key in ids[1] or event_key in ids[0]:  # a producer's duplicate
                done[topic], global_mark[topic] = offset, offset  # passed, never learned
                duplicates += 1
                if duplicate_ids is not None:
                    duplicate_ids.add(id(event))
                counts.tally(record.kind, "skipped")
                continue
            ids[0][event_key] = event.time.timestamp()
        if user_new:
            user_events.append(event)
            done[topic] = offset
        if global_new:
            global_events.append(event)
            global_mark[topic] = offset
        if not (user_new or global_new):
            skipped += 1
            counts.tally(record.kind, "skipped")
        if not (user_new and global_new):
            replayed.update(engine.user_keys(user_id))  # the user's state and recent items
    _remember_events(recent_events, partition, seen)
    return Fold(user_events, global_events, global_mark, replayed, skipped, duplicates)


def _remember_events(recent_events: RecentIds, partition: int,
                     seen: dict[str, tuple[dict[bytes, float], dict[bytes, float]]]) -> None:
    """Add each user's new event ids (this batch's, with their times) to its recent ids."""
    for user_id, (ids, known) in seen.items():
        recent_events.extend(partition, user_id, known, ids)


def live_totals(events: Sequence[FeedbackEvent]) -> tuple[dict[str, tuple[float, float]], int]:
    """({scenario: (items shown by its impressions, rewards of its clicks)}, the clicks among
    `events`), sums in event order; a list of one scenario (the usual case) by C-level maps,
    with no Python step per event (rewards added one at a time, as the loop does: `sum` of
    floats is compensated since Python 3.12)."""
    kinds = list(map(_TYPE, events))
    scenarios = set(map(_SCENARIO, events))
    if len(scenarios) != 1:
        return _by_scenario(events), kinds.count("click")
    impressions = compress(events, map(operator.eq, kinds, repeat("impression")))
    clicks = compress(events, map(operator.eq, kinds, repeat("click")))
    totals = (float(sum(map(len, map(_SHOWN, impressions)))), reduce(operator.add, map(_REWARD, clicks), 0.0))
    return {scenarios.pop(): totals}, kinds.count("click")


def _by_scenario(events: Sequence[FeedbackEvent]) -> dict[str, tuple[float, float]]:
    """Per scenario of the events: (items shown by its impressions, the rewards of its clicks),
    each summed in event order."""
    exposures: dict[str, float] = {}
    clicks: dict[str, float] = {}
    for event in events:
        if event.type == "impression":
            exposures[event.scenario] = exposures.get(event.scenario, 0.0) + len(event.shown)
        else:
            clicks[event.scenario] = clicks.get(event.scenario, 0.0) + event.reward
    return {scenario: (exposures.get(scenario, 0.0), clicks.get(scenario, 0.0))
            for scenario in exposures.keys() | clicks.keys()}
