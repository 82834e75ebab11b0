"""A request's text steers users with little history (online/request_text.py, Engine)."""

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest

from online.catalog import Catalog
from online.engine import Engine, EngineConfig
from online.events import Click, Impression, Item, RankRequest, ShownItem
from online.policies.linear_ts import LinearThompsonSampling
from online.request_text import text_shift, text_weight
from online.simulation import Simulator, SimulatorConfig
from online.state import InMemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DIM = 8


def unit_rows(n: int, seed: int) -> npt.NDArray[np.float32]:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def engine_with_text(weight: float, vectors: npt.NDArray[np.float32], retrieval_size: int = 200) -> Engine:
    """An engine over items i0..i{n-1} whose text embedding maps "like iN" to item N's vector."""
    def embed_text(text: str) -> npt.NDArray[np.float32]:
        return vectors[int(text.removeprefix("like i"))]

    engine = Engine(LinearThompsonSampling(), InMemoryStore(), Catalog(dim=DIM), np.random.default_rng(0),
                    config=EngineConfig(text_weight=weight, retrieval_size=retrieval_size), embed_text=embed_text)
    engine.add_items([Item(item_id=f"i{r}", fields={"t": str(r)}, time=T0) for r in range(len(vectors))], vectors)
    return engine


def request(request_id: str, user: str = "new", text: str | None = "like i3", k: int = 5) -> RankRequest:
    return RankRequest(request_id=request_id, user_id=user, k=k, context_text=text, time=T0)


def test_the_weight_fades_with_the_users_evidence() -> None:
    assert text_weight(0.4, 20.0, 0.0) == pytest.approx(0.4)
    assert text_weight(0.4, 20.0, 20.0) == pytest.approx(0.2)
    assert text_weight(0.4, 20.0, 180.0) == pytest.approx(0.04)
    assert text_weight(0.0, 20.0, 0.0) == 0.0 and text_weight(0.4, 20.0, -5.0) == pytest.approx(0.4)
    items, query = unit_rows(4, 1), unit_rows(1, 2)[0]
    np.testing.assert_allclose(text_shift(items, query, 0.5), 0.5 * items.astype(np.float64) @ query, rtol=1e-12)


def test_a_cold_users_scores_move_by_the_same_shift_in_every_draw() -> None:
    vectors = unit_rows(30, 3)
    plain, steered = engine_with_text(0.0, vectors), engine_with_text(0.4, vectors)
    candidates = tuple(f"i{r}" for r in range(30))
    with_candidates = request("r1").model_copy(update={"candidates": candidates})
    base, shifted = plain.score(with_candidates), steered.score(with_candidates)
    expected = 0.4 * vectors[base.rows].astype(np.float64) @ vectors[3].astype(np.float64)
    np.testing.assert_allclose(shifted.draws.mean - base.draws.mean, expected, atol=1e-6)
    np.testing.assert_allclose(shifted.draws.draws - base.draws.draws,
                               np.broadcast_to(expected, base.draws.draws.shape), atol=1e-6)  # the same rng stream
    assert "i3" in {item.item_id for item in steered.rank(with_candidates).items}


def test_text_is_unused_without_text_weight_or_text_and_fades_for_known_users() -> None:
    vectors = unit_rows(30, 4)
    plain, steered = engine_with_text(0.0, vectors), engine_with_text(0.4, vectors)
    candidates = tuple(f"i{r}" for r in range(30))
    untexted = request("r1", text=None).model_copy(update={"candidates": candidates})
    np.testing.assert_array_equal(plain.score(untexted).draws.mean, steered.score(untexted).draws.mean)
    for step in range(10):  # a user with 10 slates of 5 shown items: evidence 50, weight 0.4 * 20 / 70
        shown = tuple(ShownItem(item_id=f"i{(step + p) % 30}", position=p) for p in range(5))
        steered.observe([Impression(event_id=f"e{step}", request_id=f"q{step}", user_id="known", shown=shown,
                                    time=T0),
                         Click(event_id=f"c{step}", request_id=f"q{step}", user_id="known", item_id=shown[0].item_id,
                               time=T0)])
    texted = request("r2", user="known").model_copy(update={"candidates": candidates})
    silent = request("r3", user="known", text=None).model_copy(update={"candidates": candidates})
    shift = steered.score(texted).draws.mean - steered.score(silent).draws.mean
    expected = 0.4 * 20 / 70 * vectors.astype(np.float64) @ vectors[3].astype(np.float64)
    np.testing.assert_allclose(shift, expected, atol=1e-6)


def test_retrieval_for_a_new_user_follows_the_text() -> None:
    vectors = unit_rows(400, 5)
    engine = engine_with_text(0.4, vectors, retrieval_size=20)
    nearest = set(np.argsort(-(vectors @ vectors[7]))[:20].tolist())
    slate = engine.rank(request("r1", text="like i7", k=20))
    assert {int(item.item_id[1:]) for item in slate.items} == nearest  # retrieved around the text


def test_simulated_queries_are_seeded_and_leave_the_world_unchanged() -> None:
    texted = Simulator(SimulatorConfig(seed=3, request_text=1.0))
    silent = Simulator(SimulatorConfig(seed=3))
    again = Simulator(SimulatorConfig(seed=3, request_text=1.0))
    for _ in range(50):
        a, _ = texted.next_request()
        b, _ = silent.next_request()
        c, _ = again.next_request()
        assert a.context_text and a.context_text == c.context_text and b.context_text is None
        assert (a.user_id, a.candidates) == (b.user_id, b.candidates)
