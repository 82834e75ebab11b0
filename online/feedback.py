"""From feedback events to the rows a policy learns: one exposure row per shown item, one reward
row per click, each with its item's features in its request's context."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from itertools import chain, repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from online.catalog import Catalog
from online.features import FeatureMap, ItemFeatures
from online.policies.base import FeedbackBatch
from online.wire import FeedbackEvent


class RequestContexts:
    """The contexts of the most recent `capacity` requests (request id -> context), for joining
    clicks to their request's context (0: none kept)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._contexts: OrderedDict[str, Mapping[str, float] | None] = OrderedDict()

    def remember(self, request_id: str, context: Mapping[str, float] | None) -> None:
        if self.capacity == 0:
            return
        self._contexts[request_id] = context
        while len(self._contexts) > self.capacity:
            self._contexts.popitem(last=False)

    def get(self, request_id: str) -> Mapping[str, float] | None:
        return self._contexts.get(request_id)


def _repeat(values: Sequence[Any], counts: Sequence[int]) -> chain[Any]:
    """values[i] repeated counts[i] times, flattened (C-level iteration)."""
    return chain.from_iterable(map(repeat, values, counts))


def feedback_rows(
    events: Sequence[FeedbackEvent], catalog: Catalog, features: FeatureMap, contexts: RequestContexts,
) -> tuple[FeedbackBatch, list[tuple[FeedbackEvent, str]]]:
    """Rows for the learnable events (in order), plus rejected events with a reason.

    An impression gives one exposure row per shown item; a click one reward row (its context the
    one remembered for its request). An impression's context is remembered in `contexts`.
    """
    index = catalog.index
    known = index.__contains__
    recent_contexts = contexts
    rejected: list[tuple[FeedbackEvent, str]] = []
    codes: dict[str, int] = {}
    event_users: list[int] = []
    counts: list[int] = []
    exposures: list[float] = []
    rewards: list[float] = []
    times: list[float] = []
    request_ids: list[str] = []
    scenarios: list[str] = []
    row_contexts: list[Mapping[str, float] | None] = []
    items: list[str] = []
    positions: list[int] = []
    for event in events:  # one pass, appending to flat columns (no per-event lists kept)
        context: Mapping[str, float] | None
        if event.type == "impression":
            shown = event.shown
            item_ids = [s.item_id for s in shown]
            if not all(map(known, item_ids)):
                rejected.append((event, f"unknown item id {next(i for i in item_ids if not known(i))!r}"))
                continue
            items += item_ids
            positions += [s.position for s in shown]
            counts.append(len(item_ids))
            exposures.append(1.0)
            rewards.append(0.0)
            context = event.context
            if context is not None:
                contexts.remember(event.request_id, context)
            else:
                context = recent_contexts.get(event.request_id)
        else:
            if not known(event.item_id):
                rejected.append((event, f"unknown item id {event.item_id!r}"))
                continue
            items.append(event.item_id)
            positions.append(-1)
            counts.append(1)
            exposures.append(0.0)
            rewards.append(event.reward)
            context = recent_contexts.get(event.request_id)
        event_users.append(codes.setdefault(event.user_id, len(codes)))
        times.append(event.time.timestamp())
        request_ids.append(event.request_id)
        scenarios.append(event.scenario)
        row_contexts.append(context)
    rows = np.fromiter(map(index.__getitem__, items), dtype=np.int64, count=len(items))
    batch = FeedbackBatch(
        tuple(codes), np.repeat(np.asarray(event_users, dtype=np.int64), counts), tuple(items),
        tuple(_repeat(request_ids, counts)), tuple(_repeat(scenarios, counts)),
        np.asarray(positions, dtype=np.int64), np.repeat(exposures, counts), np.repeat(rewards, counts),
        _row_features(catalog, features, rows, list(_repeat(row_contexts, counts))), np.repeat(times, counts),
    )
    return batch, rejected

def _row_features(
    catalog: Catalog, features: FeatureMap, rows: npt.NDArray[np.int64], contexts: Sequence[Mapping[str, float] | None]
) -> npt.NDArray[np.float64]:
    vectors = catalog.vectors[rows]
    if isinstance(features, ItemFeatures) or not any(contexts):
        return features.transform(vectors, None)
    out = np.empty((len(rows), features.dim(catalog.dim)))
    for index, context in enumerate(contexts):
        out[index] = features.transform(vectors[index : index + 1], context)[0]
    return out
