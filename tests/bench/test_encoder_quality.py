"""The encoder-quality bench pairs its runs: same seed, same world, same policy generator."""

from __future__ import annotations

import pytest

from bench.encoder_quality import BASELINE, Results, measure, open_kind, report
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
