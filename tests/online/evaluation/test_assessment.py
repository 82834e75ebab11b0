"""Verdicts: which estimates the report may print as numbers, and the one to read."""

from __future__ import annotations

import math

import numpy as np
import pytest

from online.evaluation.assessment import (
    MIN_ESS,
    Assessment,
    LogFacts,
    ReliabilityRule,
    assess,
    weight_diagnostics,
)
from online.evaluation.bootstrap import Estimate
from online.evaluation.estimators import doubly_robust, ips, snips
from online.evaluation.logged import LoggedSlate, RoundSupport
from online.evaluation.slate_summary import floor_mask
from online.propensities import uniform_prefix

BOOT = {"rng": np.random.default_rng(0), "n_bootstrap": 200, "confidence": 0.95}
FACTS = LogFacts(uniform=True, r_max=1.0, slate_length=3)


def estimates(dr: float = 0.05, replay_matches: int = 500) -> dict[str, Estimate]:
    """Estimates whose intervals are within ±8% of their values (DR's: ±0.004 around `dr`)."""
    return {"dr": Estimate("dr", dr, dr - 0.004, dr + 0.004, 1000),
            "snips": Estimate("snips", 0.05, 0.046, 0.054, 1000), "ips": Estimate("ips", 0.05, 0.046, 0.054, 1000),
            "dm": Estimate("dm", 0.05, 0.047, 0.053, 1000),
            "replay": Estimate("replay_positions", 0.05 if replay_matches else float("nan"), 0.046, 0.054,
                               replay_matches)}


def diagnostics(weights: np.ndarray) -> dict:
    found = weight_diagnostics(weights, None, BOOT)
    return {"ips": found, "snips": found, "dr": found}


GAP_ZERO = Estimate("dr_minus_dm", 0.0, -0.005, 0.005, 1000)


def test_full_support_and_many_effective_rounds_read_dr() -> None:
    weights = np.random.default_rng(1).exponential(1.0, 1000)
    _, assessment = assess(estimates(), diagnostics(weights), (1.0, 1.0), GAP_ZERO, FACTS)
    assert assessment.read == "dr" and all(v.reliable for v in assessment.verdicts.values())
    assert "support in 100% of rounds" in assessment.why


def test_missing_support_makes_weighted_estimates_unreliable_and_dr_model_dominated() -> None:
    weights = np.random.default_rng(1).exponential(1.0, 1000)
    _, assessment = assess(estimates(), diagnostics(weights), (0.4, 1.0), GAP_ZERO, FACTS)
    for name in ("ips", "snips", "dr"):
        assert not assessment.verdicts[name].reliable
        assert "no support in 60% of rounds" in assessment.verdicts[name].reasons[0]
    assert any("dominated by the reward model" in r for r in assessment.verdicts["dr"].reasons)
    assert not assessment.verdicts["dm"].reliable  # nothing reliable checks the reward model
    assert assessment.read == "replay"  # a uniform log with many matches


def test_mean_weight_far_below_one_flags_missing_support_where_it_is_unknown() -> None:
    weights = np.where(np.arange(1000) % 10 == 0, 3.0, 0.0)  # mean 0.3: most of the mass is unsupported
    _, assessment = assess(estimates(), diagnostics(weights), (None, 0.0), GAP_ZERO,
                           LogFacts(uniform=None, r_max=1.0, slate_length=3))
    assert any("mean weight 0.30" in r for r in assessment.verdicts["snips"].reasons)
    assert assessment.read is None and assessment.why.startswith("no reliable estimate")


def test_few_effective_rounds_are_unreliable() -> None:
    weights = np.zeros(1000)
    weights[:5] = 200.0
    _, assessment = assess(estimates(), diagnostics(weights), (1.0, 1.0), GAP_ZERO, FACTS)
    assert any("effective sample size 5" in r for r in assessment.verdicts["ips"].reasons)


def test_replay_needs_a_uniform_log_and_matches() -> None:
    weights = np.ones(1000)
    _, not_uniform = assess(estimates(), diagnostics(weights), (1.0, 1.0), GAP_ZERO,
                            LogFacts(uniform=False, r_max=1.0, slate_length=3))
    assert "not uniformly random" in not_uniform.verdicts["replay"].reasons[0]
    _, no_match = assess(estimates(replay_matches=0), diagnostics(weights), (1.0, 1.0), GAP_ZERO, FACTS)
    assert "no matches" in no_match.verdicts["replay"].reasons


def test_a_biased_estimate_is_not_also_called_imprecise() -> None:
    wide = {**estimates(), "replay": Estimate("replay_positions", 0.05, 0.03, 0.07, 500),  # ±40%
            "dm": Estimate("dm", 0.05, 0.03, 0.07, 1000)}
    gap = Estimate("dr_minus_dm", -0.02, -0.03, -0.01, 1000)
    _, biased = assess(wide, diagnostics(np.ones(1000)), (1.0, 1.0), gap,
                       LogFacts(uniform=False, r_max=1.0, slate_length=3))
    for name, reason in (("replay", "not uniformly random: replay is biased"), ("dm", "reward model is biased")):
        verdict = biased.verdicts[name]
        assert not verdict.reliable and not verdict.imprecise, verdict
        assert len(verdict.reasons) == 1 and reason in verdict.reasons[0], verdict.reasons
    _, unbiased = assess(wide, diagnostics(np.ones(1000)), (1.0, 1.0), GAP_ZERO, FACTS)  # the same widths
    for name in ("replay", "dm"):
        verdict = unbiased.verdicts[name]
        assert verdict.imprecise and len(verdict.reasons) == 1, verdict.reasons
        assert verdict.reasons[0].startswith("imprecise: its interval spans ±40%")


def test_dm_is_unreliable_when_dr_shows_the_reward_model_biased() -> None:
    gap = Estimate("dr_minus_dm", -0.02, -0.03, -0.01, 1000)
    _, assessment = assess(estimates(), diagnostics(np.ones(1000)), (1.0, 1.0), gap, FACTS)
    assert assessment.verdicts["dr"].reliable and not assessment.verdicts["dm"].reliable
    assert "excludes 0" in assessment.verdicts["dm"].reasons[0]


def test_estimates_are_clipped_to_the_reward_range() -> None:
    clipped, assessment = assess(estimates(dr=-0.004), diagnostics(np.ones(1000)), (1.0, 1.0), GAP_ZERO, FACTS)
    assert clipped["dr"].value == 0.0 and clipped["dr"].ci_low == 0.0
    assert assessment.verdicts["dr"].clipped_from == -0.004


def test_round_support_knows_what_the_log_could_serve() -> None:
    logged = RoundSupport(frozenset({"a", "b", "c"}), floor=True, uniform=False)
    assert logged.supports(["a", "b"]) is True
    assert logged.supports(["a", "z"]) is False  # z was never a logged candidate
    assert RoundSupport(frozenset({"a"}), floor=False, uniform=False).supports(["a"]) is None
    assert RoundSupport(None, floor=True, uniform=True).supports(["x"]) is True  # uniform over the catalog
    assert RoundSupport(None, floor=False, uniform=None).supports(["x"]) is None


def test_floor_mask_finds_prefix_propensities_resting_on_the_served_draw() -> None:
    epsilon, draws = 0.05, 64
    uniform = epsilon * uniform_prefix(10, 3)
    shares = np.array([40 / draws, 2 / draws, 1 / draws])
    slate = LoggedSlate(rows=np.arange(3), marginal=np.full(3, 0.5), prefix=(1 - epsilon) * shares + uniform,
                        candidates=tuple(f"i{j}" for j in range(10)), support=epsilon, policy="linear_ts",
                        n_draws=draws)
    mask = floor_mask(slate)
    assert mask is not None and mask.tolist() == [False, False, True]
    assert floor_mask(LoggedSlate(slate.rows, slate.marginal, slate.prefix, None, epsilon, "p", None)) is None
    uniform_slate = LoggedSlate(slate.rows, slate.marginal, slate.prefix, None, 1.0, "p", draws)
    assert not floor_mask(uniform_slate).any()  # type: ignore[union-attr]  # exact: never at the floor


def test_many_logged_propensities_at_the_floor_make_rips_and_sips_unreliable() -> None:
    weights = np.random.default_rng(1).exponential(1.0, 1000)
    found = weight_diagnostics(weights, None, BOOT, floor_share=0.4)
    slate_estimates = {"slate_rips": Estimate("slate_rips", 1.0, 0.8, 1.2, 1000)}
    _, assessment = assess(slate_estimates, {"slate_rips": found}, (1.0, 1.0), None, FACTS)
    assert "40% of logged prefix propensities rest on the served draw alone" in assessment.verdicts[
        "slate_rips"].reasons[0]


# --- Seeded synthetic logs through the estimators: which policies the rule may call reliable ---

N_ITEMS, K, EPSILON = 50, 5, 0.05
"""The logger shows item l at position l, except in a share EPSILON of rounds (the support mix),
where each position shows an item drawn uniformly from N_ITEMS; clicks ~ Bernoulli(rel[item])."""


def synthetic_assessment(policy: str, rounds: int, seed: int, rule: ReliabilityRule | None = None) -> Assessment:
    """The assessment of `policy` ("uniform": each position uniform over the items; "heavy":
    item K + l at position l, which only the support mix ever shows) on a seeded log of
    `rounds` rounds of K positions, from IPS, SNIPS and DR (reward model: the logged mean)."""
    rng = np.random.default_rng(seed)
    rel = rng.uniform(0.2, 0.6, N_ITEMS)
    mixed = rng.random(rounds) < EPSILON
    items = np.where(mixed[:, None], rng.integers(0, N_ITEMS, (rounds, K)), np.arange(K)[None, :]).ravel()
    positions = np.tile(np.arange(K), rounds)
    pscores = (1 - EPSILON) * (items == positions) + EPSILON / N_ITEMS
    probs = np.full(items.size, 1 / N_ITEMS) if policy == "uniform" else (items == K + positions).astype(float)
    rewards = (rng.random(items.size) < rel[items]).astype(float)
    clusters = np.repeat(np.arange(rounds), K)
    boot = {"rng": np.random.default_rng([seed, 1]), "n_bootstrap": 200, "confidence": 0.95}
    q = np.full(items.size, rewards.mean())
    found = {"ips": ips(rewards, pscores, probs, clusters=clusters, **boot),
             "snips": snips(rewards, pscores, probs, clusters=clusters, **boot),
             "dr": doubly_robust(rewards, pscores, probs, q, q, clusters=clusters, **boot)}
    weights = weight_diagnostics(probs / pscores, clusters, boot)
    gap = Estimate("dr_minus_dm", found["dr"].value - q[0], -1.0, 1.0, items.size)
    _, assessment = assess(found, dict.fromkeys(found, weights), (1.0, 1.0), gap,
                           LogFacts(uniform=False, r_max=1.0, slate_length=K), rule)
    return assessment


def test_a_policy_far_from_the_logger_is_flagged_though_its_weights_pass_the_old_floors() -> None:
    assessment = synthetic_assessment("heavy", rounds=20_000, seed=3)  # weights 1/(EPSILON/N_ITEMS) = 1000
    weights = assessment.diagnostics["dr"]
    assert weights.max_weight == pytest.approx(N_ITEMS / EPSILON)
    assert weights.ess >= MIN_ESS and abs(weights.mean_low - 1) < 0.5  # the old rule's checks pass
    assert weights.ess_share < 0.01
    for name in ("ips", "snips", "dr"):
        verdict = assessment.verdicts[name]
        assert not verdict.reliable, name
        assert any("of the 100,000 observations" in r for r in verdict.reasons), verdict.reasons
    assert assessment.read is None and "dominated by the reward model" in " ".join(assessment.verdicts["dr"].reasons)


def test_one_round_carrying_a_large_share_of_the_weight_is_flagged() -> None:
    """300 rounds: the ~15 support-mix rounds carry all the uniform policy's weight, each ~7%."""
    assessment = synthetic_assessment("uniform", rounds=300, seed=3)
    weights = assessment.diagnostics["dr"]
    assert weights.ess >= MIN_ESS and weights.max_round_share > 0.02
    assert any(r.startswith("one round carries") for r in assessment.verdicts["dr"].reasons)
    loose = synthetic_assessment("uniform", 300, 3, ReliabilityRule(max_round_share=1.0, precision=math.inf))
    assert not any(r.startswith("one round carries") for r in loose.verdicts["dr"].reasons)


def test_a_well_supported_policy_with_enough_rounds_is_reliable() -> None:
    assessment = synthetic_assessment("uniform", rounds=20_000, seed=3)
    weights = assessment.diagnostics["dr"]
    assert weights.ess_share >= 0.01 and weights.max_round_share <= 0.02
    assert assessment.read == "dr" and all(assessment.verdicts[n].reliable for n in ("ips", "snips", "dr"))
    assert "largest round" in assessment.why


def test_an_interval_wider_than_the_precision_target_is_flagged_with_the_rounds_it_needs() -> None:
    assessment = synthetic_assessment("uniform", rounds=1_500, seed=3)
    dr = assessment.verdicts["dr"]
    assert not dr.reliable and dr.imprecise and len(dr.reasons) == 1, dr.reasons  # its weights hold
    assert dr.reasons[0].startswith("imprecise: its interval spans ±")
    assert "x the rounds would reach it" in dr.reasons[0]
    assert assessment.read is None and "precision target ±10%" in assessment.why
    assert synthetic_assessment("uniform", 1_500, 3, ReliabilityRule(precision=0.5)).read == "dr"
    with pytest.raises(ValueError, match="precision"):
        ReliabilityRule(precision=0.0)
