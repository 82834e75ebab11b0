"""Domain events: typed, validated, timezone-aware, and their versioned JSON codec.

Every event is a frozen pydantic model with a literal `type` tag and a `schema_version`.
`decode_event(raw)` turns bytes into one of them or raises `EventDecodeError` naming the
offending field and the reason; `encode_event(event)` is its inverse.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

SCHEMA_VERSION: Literal[1] = 1
"""The only schema version this build reads and writes."""

Identifier = Annotated[str, Field(min_length=1, max_length=256)]
Probability = Annotated[float, Field(gt=0.0, le=1.0)]
MAX_CONTEXT_MAGNITUDE = 1e12
"""Largest |value| of a context feature: squared sums of features stay far from overflow."""
ContextValue = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_CONTEXT_MAGNITUDE, le=MAX_CONTEXT_MAGNITUDE)]
"""A numeric context feature: finite (NaN and infinities refused), |value| <= 1e12."""
MAX_POSITION = 2**31 - 1
"""Largest slate position an impression may report (fits every integer type downstream)."""


def to_utc(value: datetime) -> datetime:
    """`value` (timezone-aware) in UTC; ValueError when UTC cannot hold it (year 0 or 10000)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC (years 1 to 9999)") from None


def utc_now() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    schema_version: Literal[1] = SCHEMA_VERSION

    @field_validator("time", check_fields=False)
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return to_utc(value)


class RankRequest(_Event):
    """A service asks for a ranked slate of `k` items for `user_id` in `scenario`.

    `candidates` restricts the slate to these item ids; when None the ranker retrieves
    candidates from the catalog. `context` holds numeric user/session features and
    `context_text` free text (e.g. a search query) for cold users.
    """

    type: Literal["rank_request"] = "rank_request"
    request_id: Identifier
    user_id: Identifier
    scenario: Identifier = "default"
    candidates: tuple[Identifier, ...] | None = None
    context: dict[str, ContextValue] | None = None
    context_text: str | None = None
    k: int = Field(default=10, ge=1, le=100)
    time: AwareDatetime = Field(default_factory=utc_now)

    @field_validator("candidates")
    @classmethod
    def _distinct_candidates(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            if not value:
                raise ValueError("must not be empty (omit it to rank the catalog)")
            if len(set(value)) != len(value):
                raise ValueError("must not repeat an item id")
        return value


class SlateItem(BaseModel):
    """One ranked item: position (0 = top), sampled score, posterior mean and std of its
    expected reward, whether it was placed by exploration, and its propensity (the
    probability the policy puts this item at this position, Monte Carlo estimate).

    prefix_propensity: the probability that the policy's slate holds this slate's items at
    positions 0..position, estimated over the same draws (online/propensities.py); at the
    last position it is the whole slate's probability. None in slates of older builds.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: Identifier
    position: int = Field(ge=0)
    score: float
    mean: float
    std: float = Field(ge=0.0)
    explored: bool
    propensity: Probability
    reason: str | None = None
    prefix_propensity: Probability | None = None


class Slate(_Event):
    """The ranked answer to a RankRequest, with everything needed to replay it.

    candidates: the ids the policy ranked (after filters) when they differ from the
    request's candidates (None: the request's, or a slate of an older build);
    support_epsilon: the probability that the slate was a uniformly random ranking of the
    candidates (the support mix, online/propensities.py; None: unknown, older builds);
    n_draws: the Monte Carlo draws its propensities were estimated over (None: unknown).
    """

    type: Literal["slate"] = "slate"
    request_id: Identifier
    user_id: Identifier
    scenario: Identifier
    items: tuple[SlateItem, ...]
    policy: Identifier
    policy_version: Identifier
    time: AwareDatetime = Field(default_factory=utc_now)
    candidates: tuple[Identifier, ...] | None = None
    support_epsilon: float | None = Field(default=None, ge=0.0, le=1.0)
    n_draws: int | None = Field(default=None, ge=1)

    @property
    def joint_propensity(self) -> float | None:
        """The probability of the whole slate (the last item's prefix propensity), or None."""
        return self.items[-1].prefix_propensity if self.items else None


class ShownItem(BaseModel):
    """An item the user saw at `position`, with the logging propensity when known."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: Identifier
    position: int = Field(ge=0, le=MAX_POSITION)
    propensity: Probability | None = None


class Impression(_Event):
    """What was shown to the user for a request (positions from 0 = top)."""

    type: Literal["impression"] = "impression"
    event_id: Identifier
    request_id: Identifier
    user_id: Identifier
    scenario: Identifier = "default"
    shown: tuple[ShownItem, ...] = Field(min_length=1)
    context: dict[str, ContextValue] | None = None
    time: AwareDatetime = Field(default_factory=utc_now)

    @field_validator("shown")
    @classmethod
    def _distinct_items(cls, value: tuple[ShownItem, ...]) -> tuple[ShownItem, ...]:
        if len({item.item_id for item in value}) != len(value):
            raise ValueError("must not repeat an item id")
        return value


class Click(_Event):
    """Feedback on a shown item: a click (reward 1) or another reward kind and value."""

    type: Literal["click"] = "click"
    event_id: Identifier
    request_id: Identifier
    user_id: Identifier
    item_id: Identifier
    scenario: Identifier = "default"
    reward_kind: Identifier = "click"
    reward: float = Field(default=1.0, ge=0.0, le=1e6, allow_inf_nan=False)
    time: AwareDatetime = Field(default_factory=utc_now)


class Item(_Event):
    """A catalog item: text fields (title, description...) and categorical attributes.

    `provider` names who supplies the item (used for fairness of exposure); `active`
    False removes the item from ranking.
    """

    type: Literal["item"] = "item"
    item_id: Identifier
    fields: dict[str, str] = Field(min_length=1)
    attributes: dict[str, str] = Field(default_factory=dict)
    provider: Identifier | None = None
    active: bool = True
    time: AwareDatetime = Field(default_factory=utc_now)

    def text(self) -> str:
        """The text embedded for this item: its fields joined in key order."""
        return ". ".join(self.fields[key] for key in sorted(self.fields))


Event = Annotated[
    RankRequest | Slate | Impression | Click | Item, Field(discriminator="type")
]
_EVENT_ADAPTER: TypeAdapter[RankRequest | Slate | Impression | Click | Item] = TypeAdapter(
    Event
)


class EventDecodeError(ValueError):
    """Raised for bytes that are not a valid event; `field` and `reason` say why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _first_error(error: ValidationError) -> EventDecodeError:
    detail = error.errors(include_url=False)[0]
    location = ".".join(str(part) for part in detail["loc"]) or "<event>"
    if detail["type"] == "json_invalid":
        return EventDecodeError("<json>", detail["msg"])
    if detail["type"] in {"union_tag_invalid", "union_tag_not_found"}:
        return EventDecodeError("type", detail["msg"])
    return EventDecodeError(location, detail["msg"])


def decode_event(raw: bytes | str) -> RankRequest | Slate | Impression | Click | Item:
    """Parse one JSON event; raise EventDecodeError(field, reason) on bad input.

    An unknown `schema_version` is rejected with field "schema_version". Whatever else
    parsing or validating raises (an overflow, a recursion limit, ...) comes out as
    EventDecodeError too, field "<event>" and the exception's class and message as reason:
    no input makes this function raise anything else.
    """
    try:
        return _EVENT_ADAPTER.validate_json(raw)
    except ValidationError as error:
        raised = _first_error(error)
    except Exception as error:  # any failure to parse one record is that record's fault
        raised = unexpected_error("<event>", error)
    raise raised


def unexpected_error(field: str, error: Exception) -> EventDecodeError:
    """An EventDecodeError for an exception a decoder did not foresee: "<Class>: message"."""
    return EventDecodeError(field, f"{type(error).__name__}: {error}")


def encode_event(event: RankRequest | Slate | Impression | Click | Item) -> bytes:
    """Serialise an event to compact JSON bytes (UTC ISO-8601 times).

    A RankRequest whose `k` was not given is written without it, so the receiver applies
    its scenario's slate size (online.config) instead of the model's default of 10.
    """
    if isinstance(event, RankRequest) and "k" not in event.model_fields_set:
        return event.model_dump_json(exclude_none=True, exclude={"k"}).encode()
    return event.model_dump_json(exclude_none=True).encode()


class SlateError(_Event):
    """The answer to a RankRequest that cannot be served, on the slates topic in place of its
    slate: which request, and why (an undeclared scenario, no candidate in the catalog, filters
    that leave nothing...). `SlatestreamClient.request_slate` raises it as `SlateRequestError`;
    the request itself is also dead-lettered, with its bytes."""

    type: Literal["slate_error"] = "slate_error"
    request_id: Identifier
    user_id: Identifier
    scenario: Identifier
    error_type: Annotated[str, Field(min_length=1, max_length=256)]
    reason: Annotated[str, Field(min_length=1, max_length=4096)]
    time: AwareDatetime = Field(default_factory=utc_now)


_ANSWER_ADAPTER: TypeAdapter[Slate | SlateError] = TypeAdapter(
    Annotated[Slate | SlateError, Field(discriminator="type")]
)


def decode_slate_answer(raw: bytes | str) -> Slate | SlateError:
    """A record of the slates topic: a Slate, or the SlateError of a request that could not be
    served; EventDecodeError(field, reason) otherwise."""
    try:
        return _ANSWER_ADAPTER.validate_json(raw)
    except ValidationError as error:
        raised = _first_error(error)
    except Exception as error:  # any failure to parse one record is that record's fault
        raised = unexpected_error("<event>", error)
    raise raised


def encode_slate_error(error: SlateError) -> bytes:
    """Compact JSON bytes of a SlateError."""
    return error.model_dump_json().encode()
