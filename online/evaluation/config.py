"""How the evaluation driver evaluates (`DriverConfig`), apart from the driver so that the
summary can read it without importing the driver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from online.engine import EngineConfig
from online.evaluation.assessment import ReliabilityRule

CONTEXT_FREE = frozenset({"bernoulli_ts", "most_popular", "epsilon_greedy", "uniform_random"})
"""Registered policies whose draws ignore the user, the context and the features."""


@dataclass(frozen=True)
class DriverConfig:
    """How the driver evaluates.

    engine: the evaluated policies' engine settings (`n_draws`: Monte Carlo draws per round for
        the position probabilities); the configuration's `[engine]` table, as served.
    learn_from: "all" logged feedback, or only what the policy's slate "matched".
    learn_every: rounds per learning batch (1 = learn after every round).
    reward_model: "log_ctr" (shared smoothed CTR per item and position, fitted on the
        log), "river" (shared river logistic regression over the round's user's linear taste
        score, item and position, fitted on the log: `online.evaluation.river_reward`) or
        "policy" (the evaluated policy's posterior mean, clipped to [0, 1]).
    exact_uniform: exact 1/n probabilities for uniform_random.
    context_free: policy names allowed to reuse one Monte Carlo matrix between batches.
    n_bootstrap, confidence: the bootstrap intervals. metric_k: k of NDCG / hit rate / MRR.
    max_rounds: evaluate at most this many rounds. seed: seeds every generator.
    logging_policy: the evaluated policy that is the log's own (sanity check), or None.
    uniform_log: the log was served uniformly at random over the catalog (True: replay is
        unbiased and every policy over the catalog supported), declared not to be (False), or
        unknown (None: each round's slate says, when the log holds slates).
    attribution_s: seconds of event time a round keeps collecting its impression and clicks
        (None: until the next request; `online.evaluation.rounds.iter_log`). A replayed live log
        needs it: other users' requests come between a request and its clicks.
    reliability: which estimates are called reliable (`online.evaluation.assessment
        .ReliabilityRule`; its `precision`: the largest interval half-width, as a share of the
        value, of a reliable estimate).
    """

    engine: EngineConfig = field(default_factory=EngineConfig)
    learn_from: Literal["all", "matched"] = "all"
    learn_every: int = 1
    reward_model: Literal["log_ctr", "river", "policy"] = "log_ctr"
    exact_uniform: bool = True
    context_free: frozenset[str] = CONTEXT_FREE
    n_bootstrap: int = 1000
    confidence: float = 0.95
    metric_k: int = 10
    max_rounds: int | None = None
    seed: int = 0
    logging_policy: str | None = None
    uniform_log: bool | None = None
    attribution_s: float | None = None
    reliability: ReliabilityRule = field(default_factory=ReliabilityRule)

    def __post_init__(self) -> None:
        if self.learn_from not in ("all", "matched"):
            raise ValueError(f"learn_from: must be 'all' or 'matched', got {self.learn_from!r}")
        if self.learn_every < 1:
            raise ValueError(f"learn_every: must be >= 1, got {self.learn_every}")
        if self.reward_model not in ("log_ctr", "river", "policy"):
            raise ValueError(f"reward_model: must be 'log_ctr', 'river' or 'policy', got {self.reward_model!r}")
        if self.metric_k < 1:
            raise ValueError(f"metric_k: must be >= 1, got {self.metric_k}")
        if self.max_rounds is not None and self.max_rounds < 1:
            raise ValueError(f"max_rounds: must be >= 1 or None, got {self.max_rounds}")
        if self.attribution_s is not None and not self.attribution_s >= 0:
            raise ValueError(f"attribution_s: must be >= 0 or None, got {self.attribution_s}")

    def settings(self) -> dict[str, Any]:
        """Every setting as plain JSON values (the engine's flattened in), for reports."""
        values: dict[str, Any] = {"n_draws": self.engine.n_draws, "support_epsilon": self.engine.support_epsilon}
        for key, value in vars(self).items():
            if key == "reliability":
                values["precision"] = self.reliability.precision
            elif key != "engine":
                values[key] = sorted(value) if isinstance(value, frozenset) else value
        return values
