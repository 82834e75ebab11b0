"""The simulator's abrupt preference shift (`SimulatorConfig.shift_at`, `shift_share`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from online.simulation import Simulator, SimulatorConfig

SMALL = SimulatorConfig(n_users=200, n_candidates=30, horizon=400, seed=11)
IDS = [f"i{row:05d}" for row in range(300)]


def tastes(simulator: Simulator) -> np.ndarray:
    return np.stack([simulator.relevance(f"u{user:04d}", IDS) for user in range(SMALL.n_users)])


@pytest.mark.parametrize("share", [0.5, 1.0])
def test_a_share_of_users_get_new_tastes_at_the_shift_and_the_stream_is_unchanged(share: float) -> None:
    plain, shifted = Simulator(SMALL), Simulator(replace(SMALL, shift_at=5, shift_share=share))
    for index in range(7):
        assert plain.next_request()[0] == shifted.next_request()[0]
        moved = np.abs(tastes(plain) - tastes(shifted)).max(axis=1) > 1e-9
        if index < 5:
            assert not moved.any()
        else:
            assert moved.sum() == round(share * SMALL.n_users)
    assert plain.catalog.titles == shifted.catalog.titles


def test_no_shift_by_default_and_invalid_settings_are_refused() -> None:
    assert SimulatorConfig().shift_at is None
    with pytest.raises(ValueError, match="shift_at"):
        SimulatorConfig(shift_at=0)
    with pytest.raises(ValueError, match="shift_share"):
        SimulatorConfig(shift_at=3, shift_share=1.5)
