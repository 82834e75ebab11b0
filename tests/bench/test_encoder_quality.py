"""The encoder-quality bench pairs its runs: same seed, same world, same policy generator."""

from __future__ import annotations

import numpy as np
import pytest

from bench.encoder_quality import BASELINE, Results, linear_probe, measure, open_kind, report
from encoders.hashing import HashingEncoder


@pytest.fixture(scope="module")
def results() -> Results:
    encoders = {"hashing": HashingEncoder(256), "hashing-again": HashingEncoder(256)}
    return measure(encoders, ["plain", "paraphrase"], seeds=2, requests=40, dim=16, cache=None, log=False)


def test_the_same_encoder_gives_the_same_figures_seed_by_seed(results: Results) -> None:
    for by_encoder in results.values():
        for figure in ("ctr", "regret", "new_item_ctr"):
            assert by_encoder["hashing"][figure] == by_encoder["hashing-again"][figure]
            assert len(by_encoder["hashing"][figure]) == 2
    lines = report(results)
    assert any(line.startswith("plain      hashing-again vs hashing") and "ctr +0.0% [+0.0, +0.0]" in line
               for line in lines)


def test_the_baseline_ignores_texts_so_both_catalogs_agree(results: Results) -> None:
    # The paraphrase changes only the texts: a policy that never reads them meets the same world.
    assert results["plain"][BASELINE]["regret"] == results["paraphrase"][BASELINE]["regret"]
    assert results["plain"]["hashing"]["regret"] != results["paraphrase"]["hashing"]["regret"]


def test_unknown_encoder_is_refused() -> None:
    with pytest.raises(ValueError, match="encoders"):
        open_kind("word2vec")


def test_linear_probe_is_one_for_linear_targets_and_near_zero_for_noise() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(600, 8))
    train = np.arange(600) < 400
    linear = vectors @ rng.normal(size=(8, 3)) + 2.0
    assert linear_probe(vectors, linear, train) == pytest.approx(1.0)
    assert abs(linear_probe(vectors, rng.normal(size=(600, 3)), train)) < 0.1
    half = linear + rng.normal(scale=np.sqrt(np.var(linear - 2.0, axis=0)), size=(600, 3))
    assert 0.3 < linear_probe(vectors, half, train) < 0.7


def test_probes_are_reported_for_encoders_not_for_the_baseline(results: Results) -> None:
    for by_encoder in results.values():
        assert len(by_encoder["hashing"]["probe_d"]) == 2 and "probe_d" not in by_encoder[BASELINE]
        assert all(0.0 < value <= 1.0 for value in by_encoder["hashing"]["probe_raw"])
    # the paraphrase hides attribute words: less of the users' tastes is linear in the hashed texts
    assert np.mean(results["paraphrase"]["hashing"]["probe_raw"]) < np.mean(results["plain"]["hashing"]["probe_raw"])
