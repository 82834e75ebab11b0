"""MIND news-recommendation adapter (behaviors.tsv and news.tsv, tab-separated, no header).

behaviors.tsv: impression_id, user_id, time ("11/11/2019 9:05:03 AM"), history (space-
separated news ids, possibly empty), impressions ("N123-1 N456-0 ...": news id and click
label; the test split has ids without labels). news.tsv: news_id, category, subcategory,
title, abstract, url, title_entities, abstract_entities.

Each behavior line becomes, at its time: a RankRequest whose candidates are the shown
news (k = min(count, 100)), an Impression showing them at positions 0.. in list order
(MIND does not record display positions or propensities, so propensity is None), and one
Click per news labelled 1. A news id repeated within one line is kept once (first
position; clicked if any copy was). MIND times carry no zone; they are read as UTC.
Events come in file order (MIND files are not sorted by time).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from online.datasets.event_log import AnyEvent
from online.events import Click, Impression, Item, RankRequest, ShownItem

TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
MAX_K = 100
"""RankRequest.k's upper bound."""


@dataclass(frozen=True)
class MindBehavior:
    """One parsed behaviors.tsv line. items: the shown news ids (duplicates merged);
    labels: 0/1 per item, or None when the file has no labels (test split)."""

    impression_id: str
    user_id: str
    time: datetime
    history: tuple[str, ...]
    items: tuple[str, ...]
    labels: tuple[int, ...] | None


def _cells(path: Path, line: int, raw: str, minimum: int) -> list[str]:
    cells = raw.rstrip("\r\n").split("\t")
    if len(cells) < minimum:
        raise ValueError(f"{path}:{line}: <row>: expected at least {minimum} tab-separated cells, got {len(cells)}")
    return cells


def _impressions(path: Path, line: int, raw: str) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    tokens = raw.split()
    if not tokens:
        raise ValueError(f"{path}:{line}: impressions: must not be empty")
    labelled = ["-" in token for token in tokens]
    if any(labelled) and not all(labelled):
        raise ValueError(f"{path}:{line}: impressions: mixes labelled and unlabelled entries")
    order: dict[str, int] = {}
    for token in tokens:
        item, _, label = token.rpartition("-") if all(labelled) else (token, "", "0")
        if not item or label not in {"0", "1"}:
            raise ValueError(f"{path}:{line}: impressions: bad entry {token!r} (want <news_id>-<0|1>)")
        order[item] = max(order.get(item, 0), int(label))
    return tuple(order), (tuple(order.values()) if all(labelled) else None)


def read_mind_behaviors(behaviors_tsv: str | Path) -> Iterator[MindBehavior]:
    """Parsed behaviors.tsv lines in file order; ValueError "path:line: column: reason"."""
    path = Path(behaviors_tsv)
    with path.open(encoding="utf-8") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            cells = _cells(path, line, raw, 5)
            impression_id, user_id, when, history, shown = cells[:5]
            if not impression_id.strip() or not user_id.strip():
                raise ValueError(f"{path}:{line}: {'impression_id' if not impression_id.strip() else 'user_id'}: empty")
            try:
                time = datetime.strptime(when.strip(), TIME_FORMAT).replace(tzinfo=UTC)
            except ValueError:
                raise ValueError(f"{path}:{line}: time: want like '11/11/2019 9:05:03 AM', got {when!r}") from None
            items, labels = _impressions(path, line, shown)
            yield MindBehavior(
                impression_id=impression_id.strip(),
                user_id=user_id.strip(),
                time=time,
                history=tuple(history.split()),
                items=items,
                labels=labels,
            )


def read_mind_news(news_tsv: str | Path, time: datetime) -> Iterator[Item]:
    """Item events from news.tsv: fields title and abstract (the non-empty ones; the
    category when both are empty), attributes category and subcategory (and url)."""
    path = Path(news_tsv)
    with path.open(encoding="utf-8") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            cells = _cells(path, line, raw, 4) + [""] * 4
            news_id, category, subcategory, title, abstract, url = (cell.strip() for cell in cells[:6])
            if not news_id:
                raise ValueError(f"{path}:{line}: news_id: empty")
            fields = {key: value for key, value in (("title", title), ("abstract", abstract)) if value}
            attributes = {key: value for key, value in
                          (("category", category), ("subcategory", subcategory), ("url", url)) if value}
            yield Item(item_id=news_id, fields=fields or {"title": category or news_id},
                       attributes=attributes, time=time)


def behavior_events(behavior: MindBehavior, scenario: str = "mind", id_prefix: str = "mind") -> list[AnyEvent]:
    """RankRequest, Impression and Clicks of one behavior line (see the module doc)."""
    request_id = f"{id_prefix}-{behavior.impression_id}"
    events: list[AnyEvent] = [
        RankRequest(
            request_id=request_id, user_id=behavior.user_id, scenario=scenario,
            candidates=behavior.items, k=min(len(behavior.items), MAX_K), time=behavior.time,
        ),
        Impression(
            event_id=f"{request_id}-imp", request_id=request_id, user_id=behavior.user_id, scenario=scenario,
            shown=tuple(ShownItem(item_id=item, position=p) for p, item in enumerate(behavior.items)),
            time=behavior.time,
        ),
    ]
    for item, label in zip(behavior.items, behavior.labels or (), strict=False):
        if label:
            events.append(Click(
                event_id=f"{request_id}-click-{item}", request_id=request_id, user_id=behavior.user_id,
                item_id=item, scenario=scenario, time=behavior.time,
            ))
    return events


def mind_events(
    behaviors_tsv: str | Path,
    news_tsv: str | Path | None = None,
    *,
    scenario: str = "mind",
    id_prefix: str = "mind",
    item_time: datetime | None = None,
) -> Iterator[AnyEvent]:
    """News items first (at `item_time`, default the first behavior's time), then each
    behavior line's RankRequest, Impression and Clicks, in file order."""
    behaviors = read_mind_behaviors(behaviors_tsv)
    first = next(behaviors, None)
    if news_tsv is not None:
        start = item_time or (first.time if first is not None else None)
        if start is None:
            raise ValueError(f"{behaviors_tsv}: no behaviors (pass item_time= to read the news alone)")
        yield from read_mind_news(news_tsv, start)
    if first is None:
        return
    yield from behavior_events(first, scenario, id_prefix)
    for behavior in behaviors:
        yield from behavior_events(behavior, scenario, id_prefix)
