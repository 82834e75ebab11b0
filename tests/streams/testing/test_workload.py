"""The seeded workload of tests and benchmarks (streams.testing.workload)."""

from __future__ import annotations

from online.events import encode_event
from online.wire import decode_feedback_many
from streams.testing import make_workload


def test_propensities_are_k_over_64_and_change_nothing_else() -> None:
    plain = make_workload(n_users=20, n_items=30, n_requests=400, shown=4, seed=3)
    logged = make_workload(n_users=20, n_items=30, n_requests=400, shown=4, seed=3, propensities=True)
    assert all(item.propensity is None for impression in plain.impressions for item in impression.shown)
    values = [item.propensity for impression in logged.impressions for item in impression.shown]
    assert all(p is not None and 0 < p <= 1 and (p * 64).is_integer() for p in values)
    assert len(set(values)) > 32  # drawn, not one constant
    assert logged.requests == plain.requests and logged.clicks == plain.clicks
    assert [impression.model_copy(update={"shown": tuple(item.model_copy(update={"propensity": None})
                                                         for item in impression.shown)})
            for impression in logged.impressions] == list(plain.impressions)


def test_the_worker_decodes_every_logged_impression_on_its_fast_path() -> None:
    """k / 64 has at most 6 decimals: no impression takes the slower pydantic path for its digits."""
    logged = make_workload(n_users=20, n_items=30, n_requests=400, shown=4, seed=3, propensities=True)
    decoded = decode_feedback_many([encode_event(event) for event in logged.impressions],
                                   ["impression"] * len(logged.impressions))
    assert None not in decoded
    assert [item.propensity for event in decoded for item in event.shown] == [
        item.propensity for impression in logged.impressions for item in impression.shown]
