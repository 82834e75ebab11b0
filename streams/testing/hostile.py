"""A seeded corpus of hostile records over every input topic, mixed with valid traffic.

    traffic = valid_traffic(seed=7)                      # items, requests, impressions, clicks, forgets
    corpus = hostile_corpus(traffic, seed=7, n=10_000)   # >= n hostile records, each tagged

Every record carries its topic kind ("items", "requests", "impressions", "clicks",
"control"), its Kafka key and value, a `label` naming its hostile class (or "valid") and
what a correct worker must do with it (`expect`):

- "dead": dead-lettered, with a reason (bad bytes, bad fields, a record no schema accepts);
- "processed": ranked, learned, added or applied, never dead-lettered (valid records, also
  odd but valid ones: unicode ids, times at the ends of what UTC holds, megabytes of text);
- "skipped": neither learned nor dead-lettered (an impression or click sent again under its
  event id: the worker deduplicates by event id);
- "any": either, as long as nothing escapes and the counts balance (clicks at times a click's
  request may not cover).

A record whose key is not its user id (items: its item id) is dead-lettered (it would land on
another partition than its user's and split the user's state).

Deliver the kinds in this order: items, then requests, then impressions, clicks and
control (clicks of the corpus refer to requests of the corpus). Within a phase any order
works. Classes (`HOSTILE_CLASSES`): random bytes, truncated JSON, JSON that is no event,
wrong types, missing and unknown fields, deep nesting, huge strings (MBs), NaN and
infinities, numbers out of range, times UTC cannot hold, naive times, invalid UTF-8, lone
surrogates, unknown schema versions, the wrong event type for the topic, unknown references;
and, not necessarily dead: odd unicode ids, extreme valid times, huge valid text, wrong
keys, duplicates.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np

KINDS = ("items", "requests", "impressions", "clicks", "control")
Expect = Literal["dead", "processed", "skipped", "any"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CorpusRecord:
    """One record to deliver: topic kind, Kafka key and value, class label, expected outcome."""

    kind: str
    key: bytes | None
    value: bytes
    label: str
    expect: Expect


def _json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, allow_nan=True).encode("utf-8", errors="surrogatepass")


def _time(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@dataclass
class Traffic:
    """Valid traffic and the ids it uses; `events[kind]` are JSON payloads (dicts)."""

    item_ids: list[str]
    users: list[str]
    records: list[CorpusRecord] = field(default_factory=list)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {kind: [] for kind in KINDS})

    def add(self, kind: str, key: str, payload: dict[str, Any], label: str = "valid",
            expect: Expect = "processed") -> None:
        self.records.append(CorpusRecord(kind, key.encode(), _json(payload), label, expect))
        if label == "valid":
            self.events[kind].append(payload)


def _item(item_id: str, text: str) -> dict[str, Any]:
    return {"type": "item", "item_id": item_id, "fields": {"title": text}, "time": _time(T0)}


def _request(request_id: str, user: str, at: datetime = T0, **extra: Any) -> dict[str, Any]:
    return {"type": "rank_request", "request_id": request_id, "user_id": user, "k": 3, "time": _time(at), **extra}


def _impression(event_id: str, request_id: str, user: str, shown: list[str], at: datetime = T0,
                **extra: Any) -> dict[str, Any]:
    return {"type": "impression", "event_id": event_id, "request_id": request_id, "user_id": user,
            "shown": [{"item_id": item, "position": p} for p, item in enumerate(shown)], "time": _time(at), **extra}


def _click(event_id: str, request_id: str, user: str, item: str, at: datetime = T0 + timedelta(seconds=1),
           **extra: Any) -> dict[str, Any]:
    return {"type": "click", "event_id": event_id, "request_id": request_id, "user_id": user, "item_id": item,
            "time": _time(at), **extra}


def _forget(user: str, at: datetime = T0) -> dict[str, Any]:
    return {"type": "forget_user", "schema_version": 1, "user_id": user, "control_id": f"c-{user}", "time": _time(at)}


def valid_traffic(seed: int = 0, n_items: int = 60, n_users: int = 40, requests_per_user: int = 15) -> Traffic:
    """Items, then per user `requests_per_user` requests, an impression of 3 items each and a
    click on one of them for about half; forgets of users that have no traffic. Keys are the
    user (item) ids; at most 64 requests per user (what the worker keeps for clicks)."""
    rng = np.random.default_rng([seed, 1])
    words = ["red", "blue", "shoe", "coat", "silk", "wool", "boot", "hat", "linen", "denim"]
    traffic = Traffic([f"item-{n}" for n in range(n_items)], [f"user-{n}" for n in range(n_users)])
    for item_id in traffic.item_ids:
        traffic.add("items", item_id, _item(item_id, " ".join(rng.choice(words, size=4))))
    for user in traffic.users:
        for step in range(requests_per_user):
            request_id = f"req-{user}-{step}"
            traffic.add("requests", user, _request(request_id, user, context={"hour": float(step % 24)}))
            shown = [str(item) for item in rng.choice(traffic.item_ids, size=3, replace=False)]
            traffic.add("impressions", user, _impression(f"imp-{user}-{step}", request_id, user, shown))
            if rng.random() < 0.5:
                traffic.add("clicks", user, _click(f"clk-{user}-{step}", request_id, user, shown[rng.integers(3)]))
    for n in range(10):
        traffic.add("control", f"ghost-{n}", _forget(f"ghost-{n}"))
    return traffic


# --- hostile classes: each yields (kind, key, value, expect) from a valid template -------------------


class _Maker:
    """Hostile records built from the valid traffic's events, with a seeded generator."""

    def __init__(self, traffic: Traffic, rng: np.random.Generator) -> None:
        self.traffic, self.rng = traffic, rng
        self.serial = 0

    def template(self, kind: str) -> dict[str, Any]:
        """A fresh valid payload of `kind` (new ids for events, so no two collide)."""
        self.serial += 1
        n, users, items = self.serial, self.traffic.users, self.traffic.item_ids
        user = users[self.rng.integers(len(users))]
        pick = [str(i) for i in self.rng.choice(items, size=3, replace=False)]
        return {
            "items": lambda: _item(f"h-item-{n}", "hostile item"),
            "requests": lambda: _request(f"h-req-{n}", f"h-user-{n % 97}"),
            "impressions": lambda: _impression(f"h-imp-{n}", f"req-{user}-0", user, pick),
            "clicks": lambda: _click(f"h-clk-{n}", f"req-{user}-0", user, pick[0]),
            "control": lambda: _forget(f"h-ghost-{n}"),
        }[kind]()

    def key_of(self, kind: str, payload: dict[str, Any]) -> bytes:
        return str(payload.get("item_id" if kind == "items" else "user_id", "k")).encode(errors="surrogatepass")

    def one_of(self, values: list[Any]) -> Any:
        return values[self.rng.integers(len(values))]


Made = tuple[bytes | None, bytes, Expect]


def _random_bytes(m: _Maker, kind: str) -> Made:
    return b"u", m.rng.bytes(int(m.rng.integers(0, 600))), "dead"


def _truncated(m: _Maker, kind: str) -> Made:
    raw = _json(m.template(kind))
    return b"u", raw[: int(m.rng.integers(0, len(raw)))], "dead"


def _not_an_event(m: _Maker, kind: str) -> Made:
    return b"u", m.one_of([b"", b"null", b"[]", b"{}", b"1", b'"event"', b"true", b"\xef\xbb\xbf{}", b" " * 64]), "dead"


_WRONG: dict[str, list[Any]] = {
    "str": [123, 1.5, [], {}, True, ["x"]], "num": ["abc", [], {}, None, "1e999"],
    "map": [[], "x", 7, [["a", 1]]], "seq": [{}, "x", 7, [1, 2]], "time": [[], {}, True, "yesterday"]}
_FIELDS = {
    "items": {"item_id": "str", "fields": "map", "attributes": "map", "provider": "str", "active": "seq",
              "time": "time"},
    "requests": {"request_id": "str", "user_id": "str", "scenario": "str", "candidates": "seq", "context": "map",
                 "k": "num", "time": "time"},
    "impressions": {"event_id": "str", "request_id": "str", "user_id": "str", "shown": "seq", "context": "map",
                    "time": "time"},
    "clicks": {"event_id": "str", "request_id": "str", "user_id": "str", "item_id": "str", "reward": "num",
               "time": "time"},
    "control": {"user_id": "str", "control_id": "str", "time": "time"},
}


def _wrong_type(m: _Maker, kind: str) -> Made:
    payload = m.template(kind)
    name = m.one_of(sorted(_FIELDS[kind]))
    wrong = m.one_of(_WRONG[_FIELDS[kind][name]])
    if name == "active":
        wrong = m.one_of(["maybe", [], {}, 2])  # pydantic reads "yes" as True
    payload[name] = wrong
    return m.key_of(kind, payload), _json(payload), "dead"


def _missing_or_unknown_field(m: _Maker, kind: str) -> Made:
    payload = m.template(kind)
    if m.rng.random() < 0.5:
        required = {"items": "fields", "requests": "request_id", "impressions": "shown", "clicks": "item_id",
                    "control": "user_id"}[kind]
        del payload[required]
    else:
        payload[m.one_of(["colour", "userId", "type ", "__proto__"])] = 1
    return m.key_of(kind, payload), _json(payload), "dead"


def _deep_nesting(m: _Maker, kind: str) -> Made:
    depth = int(m.one_of([300, 5_000, 100_000]))
    nested = b"[" * depth + b"]" * depth if m.rng.random() < 0.5 else b'{"a":' * depth + b"1" + b"}" * depth
    if m.rng.random() < 0.5:
        return b"u", nested, "dead"
    raw = _json({**m.template(kind), "nested": 0})
    return b"u", raw.replace(b'"nested": 0', b'"nested": ' + nested), "dead"


def _huge_string(m: _Maker, kind: str) -> Made:
    payload = m.template(kind)
    name = {"items": "item_id", "requests": "user_id", "impressions": "event_id", "clicks": "request_id",
            "control": "user_id"}[kind]
    payload[name] = "x" * int(m.rng.integers(1_000_000, 3_000_000))
    return b"u", _json(payload), "dead"


def _nan_inf(m: _Maker, kind: str) -> Made:
    payload = m.template(kind)
    bad = m.one_of([float("nan"), float("inf"), float("-inf")])
    if kind in ("requests", "impressions"):
        payload["context"] = {"hour": bad}
    elif kind == "clicks":
        payload["reward"] = bad
    else:  # no number to spoil: NaN where a string or time belongs
        payload["time" if kind == "control" else "item_id"] = bad
    return m.key_of(kind, payload), _json(payload), "dead"


def _out_of_range(m: _Maker, kind: str) -> Made:
    payload = m.template(kind)
    if kind == "requests":
        payload[m.one_of(["k", "context"])] = m.one_of([0, 101, 10**30, -1])
        if isinstance(payload.get("context"), int):
            payload["context"] = {"hour": m.one_of([1e13, -1e300, 10**400])}
    elif kind == "impressions":
        payload["shown"][0]["position"] = m.one_of([-1, 2**31, 2**64, 10**50])
    elif kind == "clicks":
        payload["reward"] = m.one_of([-1, 1e6 + 1, 1e300, 10**40])
    else:
        payload["time"] = m.one_of(["10000-01-01T00:00:00Z", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z"])
    return m.key_of(kind, payload), _json(payload), "dead"


def _unholdable_time(m: _Maker, kind: str) -> Made:
    payload = m.template(kind)
    payload["time"] = m.one_of(["9999-12-31T23:59:59-14:00", "9999-12-31T23:00:00-01:00", "0001-01-01T00:00:00+05:00",
                                "0001-01-01T00:00:00.000001+00:01"])
    return m.key_of(kind, payload), _json(payload), "dead"


def _naive_time(m: _Maker, kind: str) -> Made:
    payload = m.template(kind)
    payload["time"] = m.one_of(["2026-01-01T00:00:00", "2026-01-01 00:00:00", "2026-01-01T00:00:00.5"])
    return m.key_of(kind, payload), _json(payload), "dead"


def _invalid_utf8(m: _Maker, kind: str) -> Made:
    payload = m.template(kind)
    name = {"items": "item_id", "control": "user_id"}.get(kind, "user_id")
    payload[name] = "MARK"
    bad = m.one_of([b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80", b"caf\xe9"])
    return b"u\xff", _json(payload).replace(b"MARK", b"u" + bad), "dead"


def _lone_surrogate(m: _Maker, kind: str) -> Made:
    payload = m.template(kind)
    payload["user_id" if kind != "items" else "item_id"] = "MARK"
    return b"u", _json(payload).replace(b"MARK", m.one_of([b"\\ud800", b"u\\udfff", b"\\udc00\\ud800"])), "dead"


def _unknown_version(m: _Maker, kind: str) -> Made:
    payload = {**m.template(kind), "schema_version": m.one_of([0, 2, 99, -1, "1", None, 2**70, "v1"])}
    return m.key_of(kind, payload), _json(payload), "dead"


def _wrong_event_type(m: _Maker, kind: str) -> Made:
    other = m.one_of([k for k in KINDS if k != kind])
    payload = m.template(other)
    if m.rng.random() < 0.2:  # a slate is a valid event on no input topic
        payload = {"type": "slate", "request_id": "r", "user_id": "u", "scenario": "default", "items": [],
                   "policy": "p", "policy_version": "v", "time": _time(T0)}
    return m.key_of(kind, payload), _json(payload), "dead"


def _unknown_reference(m: _Maker, kind: str) -> Made:
    payload = m.template(kind)
    if kind == "requests":
        payload["candidates"] = [f"no-such-item-{n}" for n in range(3)]
    elif kind == "impressions":
        payload["shown"][0]["item_id"] = "no-such-item"
    elif kind == "clicks":
        payload["item_id"] = "no-such-item"
    else:  # items and forgets cannot refer to anything unknown: a repeated candidate instead
        return _wrong_type(m, kind)
    return m.key_of(kind, payload), _json(payload), "dead"


_ODD = ["\u200b", "\u202e", "\U0001f600", "e\u0301", "\x00", "\u4e2d\u6587", "\ufeff", "\\", '"', "'; DROP TABLE --"]


def _odd_unicode_ids(m: _Maker, kind: str) -> Made:
    odd = m.one_of(_ODD)
    payload = m.template(kind)
    if kind in ("requests", "control"):
        payload["user_id"] = f"u{odd}{m.serial}"
        payload["request_id" if kind == "requests" else "control_id"] = f"r{odd}{m.serial}"
    elif kind == "items":
        payload["item_id"] = f"i{odd}{m.serial}"
        payload["fields"] = {f"t{odd}": f"odd {odd} text"}
    else:
        payload["event_id"] = f"e{odd}{m.serial}"
    return m.key_of(kind, payload), _json(payload), "processed"


def _extreme_valid_time(m: _Maker, kind: str) -> Made:
    payload = m.template(kind)
    payload["time"] = m.one_of(["9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00",
                                "0001-01-01T05:00:00+05:00", "1970-01-01T00:00:00Z"])
    return m.key_of(kind, payload), _json(payload), "any" if kind == "clicks" else "processed"


def _huge_valid_text(m: _Maker, kind: str) -> Made:
    payload = m.template(kind)
    text = "lorem " * int(m.rng.integers(100_000, 160_000))
    if kind == "items":
        payload["fields"] = {"title": text}
    elif kind == "requests":
        payload["context_text"] = text
    else:
        return _huge_string(m, kind)
    return m.key_of(kind, payload), _json(payload), "processed"


def _wrong_key(m: _Maker, kind: str) -> Made:
    payload = m.template(kind)
    key = m.one_of([None, b"someone-else", b"\xff\xfe", b"k" * 100_000, b""])
    return key, _json(payload), "dead"


def _duplicate(m: _Maker, kind: str) -> Made:
    candidates = [r for r in m.traffic.records if r.kind == kind]
    original = candidates[m.rng.integers(len(candidates))]
    return original.key, original.value, "skipped" if kind in ("impressions", "clicks") else "processed"


Maker = Callable[[_Maker, str], Made]
HOSTILE_CLASSES: dict[str, tuple[Maker, float]] = {
    "random_bytes": (_random_bytes, 1.0),
    "truncated_json": (_truncated, 1.0),
    "not_an_event": (_not_an_event, 0.5),
    "wrong_types": (_wrong_type, 1.5),
    "missing_or_unknown_field": (_missing_or_unknown_field, 1.0),
    "deep_nesting": (_deep_nesting, 0.3),
    "huge_string": (_huge_string, 0.004),
    "nan_inf": (_nan_inf, 0.8),
    "out_of_range": (_out_of_range, 1.0),
    "unholdable_time": (_unholdable_time, 0.8),
    "naive_time": (_naive_time, 0.5),
    "invalid_utf8": (_invalid_utf8, 0.6),
    "lone_surrogate": (_lone_surrogate, 0.4),
    "unknown_schema_version": (_unknown_version, 0.6),
    "wrong_event_type": (_wrong_event_type, 0.8),
    "unknown_reference": (_unknown_reference, 0.6),
    "odd_unicode_ids": (_odd_unicode_ids, 0.6),
    "extreme_valid_time": (_extreme_valid_time, 0.4),
    "huge_valid_text": (_huge_valid_text, 0.004),
    "wrong_key": (_wrong_key, 0.5),
    "duplicate": (_duplicate, 0.5),
}
"""Class name -> (maker, relative weight); every class appears on every topic at least once."""


def hostile_corpus(traffic: Traffic, seed: int = 0, n: int = 10_000) -> list[CorpusRecord]:
    """At least `n` hostile records over every topic kind and class (each class at least once
    per kind), seeded; `traffic` supplies the ids valid-looking records refer to."""
    rng = np.random.default_rng([seed, 2])
    maker = _Maker(traffic, rng)
    names = sorted(HOSTILE_CLASSES)
    weights = np.array([HOSTILE_CLASSES[name][1] for name in names])
    picks = [*((name, kind) for name in names for kind in KINDS)]
    while len(picks) < n:
        picks.append((names[rng.choice(len(names), p=weights / weights.sum())], KINDS[rng.integers(len(KINDS))]))
    records = []
    for name, kind in picks:
        key, value, expect = HOSTILE_CLASSES[name][0](maker, kind)
        records.append(CorpusRecord(kind, key, value, name, expect))
    return records


def by_phase(records: list[CorpusRecord]) -> Iterator[list[CorpusRecord]]:
    """The records in delivery phases: items, requests, then feedback and control."""
    yield [r for r in records if r.kind == "items"]
    yield [r for r in records if r.kind == "requests"]
    yield [r for r in records if r.kind in ("impressions", "clicks", "control")]
