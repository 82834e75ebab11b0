"""From the driver's per-observation traces to estimates, metrics and the sanity check.

An observation is one logged (round, shown item, position). Position-level estimators
use every observation with a logging propensity (flattened, `clusters` = round, so the
bootstrap resamples whole rounds): the value is the reward per shown item (CTR).
Slate-level estimators (IIPS, RIPS, SIPS; reward per slate) use the rounds that show at
least two items, all with propensities. Ranking metrics take as relevance the round's
shown items labelled with their clicks (MIND: the impression's labels; OBD: the logged
item and its click).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

import online.evaluation.metrics as metrics
from online.catalog import Catalog
from online.evaluation.bootstrap import BootArgs, Estimate, bootstrap_ratio
from online.evaluation.config import DriverConfig
from online.evaluation.estimators import doubly_robust, ips, replay_positions, snips
from online.evaluation.rounds import LogCounts
from online.evaluation.slate_summary import slate_level_estimates
from online.evaluation.traces import PolicyTrace, RoundLog

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PolicyEvaluation:
    """Estimates (name -> Estimate), metrics (name -> float), counters and, for plots,
    dr_running: float64[n_obs] the running mean of the DR terms in log order."""

    policy: str
    version: str
    estimates: dict[str, Estimate]
    metrics: dict[str, float]
    counters: dict[str, int]
    dr_running: FloatArray

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy, "version": self.version,
            "estimates": {name: _clean(asdict(e)) for name, e in self.estimates.items()},
            "metrics": _clean(self.metrics), "counters": dict(self.counters),
        }


@dataclass(frozen=True)
class EvaluationResult:
    """Everything the driver measured. on_policy: the logging policy's CTR (mean logged
    reward per shown item) with its interval; logged_rewards, logged_rounds: float64 /
    int64[n_obs] for plots; sanity: the logging policy's estimates vs on_policy."""

    counts: LogCounts
    on_policy: Estimate
    policies: list[PolicyEvaluation]
    sanity: dict[str, Any] | None
    settings: dict[str, Any]
    logged_rewards: FloatArray
    logged_rounds: IntArray
    notes: list[str]

    def policy(self, name: str) -> PolicyEvaluation:
        for evaluation in self.policies:
            if evaluation.policy == name:
                return evaluation
        raise KeyError(f"no evaluated policy {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN -> None)."""
        return {
            "settings": _clean(self.settings), "counts": asdict(self.counts),
            "on_policy": _clean(asdict(self.on_policy)), "sanity": _clean(self.sanity),
            "policies": [p.to_dict() for p in self.policies], "notes": list(self.notes),
        }


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _cat(parts: list[npt.NDArray[Any]], dtype: type) -> npt.NDArray[Any]:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


def _estimates(log: RoundLog, trace: PolicyTrace, config: DriverConfig, rng: np.random.Generator,
               counts: list[int]) -> tuple[dict[str, Estimate], FloatArray, list[str]]:
    clusters = np.repeat(np.asarray(log.rounds, dtype=np.int64), counts)
    rows, positions = _cat(log.rows, np.int64), _cat(log.positions, np.int64)
    rewards, pscores = _cat(log.rewards, np.float64), _cat(log.pscores, np.float64)
    probs, q_logged, q_expected = (_cat(trace.eval_probs, np.float64), _cat(trace.q_logged, np.float64),
                                   _cat(trace.q_expected, np.float64))
    boot: BootArgs = {"rng": rng, "n_bootstrap": config.n_bootstrap, "confidence": config.confidence}
    width = max([len(s) for s in trace.slates] + [1])
    padded = np.full((len(trace.slates), width), -1, dtype=np.int64)
    for i, slate in enumerate(trace.slates):
        padded[i, : len(slate)] = slate
    out = {"replay": replay_positions(rewards, rows, positions, np.repeat(padded, counts, axis=0),
                                      clusters=clusters, **boot)}
    notes: list[str] = []
    have = np.isfinite(pscores)
    running = np.zeros(0)
    if have.any():
        args = (rewards[have], pscores[have], probs[have])
        out["ips"] = ips(*args, clusters=clusters[have], **boot)
        out["snips"] = snips(*args, clusters=clusters[have], **boot)
        out["dr"] = doubly_robust(*args, q_logged[have], q_expected[have], clusters=clusters[have], **boot)
        out["dm"] = Estimate("dm", *bootstrap_ratio(q_expected[have], np.ones(int(have.sum())),
                                                     clusters=clusters[have], **boot), int(have.sum()))
        terms = q_expected[have] + probs[have] / pscores[have] * (rewards[have] - q_logged[have])
        running = np.cumsum(terms) / np.arange(1, terms.size + 1)
    else:
        notes.append("no logging propensities: IPS, SNIPS, DR and slate estimators need them")
    slate_estimates, slate_notes = slate_level_estimates(log, trace, counts, boot)
    out.update(slate_estimates)
    notes.extend(slate_notes if have.any() else [])
    return out, running, notes


def _metrics(log: RoundLog, trace: PolicyTrace, catalog: Catalog, config: DriverConfig,
             rewards: FloatArray) -> dict[str, float]:
    slates = [s.tolist() for s in trace.slates]
    k = config.metric_k
    active = np.flatnonzero(catalog.active).tolist()
    vectors = catalog.vectors
    shown_rows = _cat(log.rows, np.int64)
    shown_rows = shown_rows[shown_rows < len(catalog)]
    total = max(shown_rows.size, 1)
    popularity = {int(r): c / total for r, c in zip(*np.unique(shown_rows, return_counts=True), strict=True)}
    providers = {row: p for row, p in enumerate(catalog.providers) if p is not None}
    nonempty = [s for s in slates if s]
    matched, predicted = _cat(trace.matched, np.bool_), _cat(trace.predicted, np.float64)
    observed = np.minimum(rewards, 1.0)
    known = np.isfinite(predicted)
    out = {
        "ndcg_at_k": metrics.ndcg_at_k(slates, log.relevance, k),
        "hit_rate_at_k": metrics.hit_rate_at_k(slates, log.relevance, k),
        "mrr": metrics.mrr(slates, log.relevance),
        "coverage": metrics.catalogue_coverage(nonempty, active) if active else math.nan,
        "intra_list_diversity": (metrics.intra_list_diversity(nonempty, vectors)
                                 if nonempty and np.all(np.linalg.norm(vectors, axis=1) > 0) else math.nan),
        "novelty": metrics.novelty(nonempty, popularity, default=1.0 / (total + 1)) if nonempty else math.nan,
        "exposure_gini": (metrics.exposure_gini(nonempty, active, position_weighted=True)
                          if nonempty and active else math.nan),
        "provider_exposure_gini": (metrics.provider_exposure_gini(nonempty, providers, position_weighted=True)
                                   if providers and nonempty else math.nan),
        "ece_matched": (metrics.expected_calibration_error(predicted[matched & known], observed[matched & known])
                        if (matched & known).any() else math.nan),
        "ece_logged": (metrics.expected_calibration_error(predicted[known], observed[known])
                       if known.any() else math.nan),
        "match_rate": float(matched.mean()) if matched.size else math.nan,
        "metric_k": float(k),
    }
    return out


def summarise(log: RoundLog, traces: list[PolicyTrace], catalog: Catalog, counts: LogCounts,
              config: DriverConfig) -> EvaluationResult:
    """The `EvaluationResult` of a finished run (see the module doc)."""
    per_round = [len(r) for r in log.rows]
    rewards = _cat(log.rewards, np.float64)
    clusters = np.repeat(np.asarray(log.rounds, dtype=np.int64), per_round)
    notes: list[str] = []
    if rewards.size == 0:
        raise ValueError("events: the log has no round with an impression to evaluate")
    on_policy = Estimate("on_policy", *bootstrap_ratio(
        rewards, np.ones_like(rewards), rng=np.random.default_rng([config.seed, 999]),
        n_bootstrap=config.n_bootstrap, confidence=config.confidence, clusters=clusters), int(rewards.size))
    evaluations = []
    for index, trace in enumerate(traces):
        rng = np.random.default_rng([config.seed, 1000 + index])
        estimates, running, extra = _estimates(log, trace, config, rng, per_round)
        notes.extend(f"{trace.policy}: {note}" for note in extra if f"{trace.policy}: {note}" not in notes)
        counters = {"rounds": len(trace.slates), "observations": int(rewards.size),
                    "matched": int(_cat(trace.matched, np.bool_).sum()), "unranked_rounds": trace.unranked_rounds,
                    "learned_events": trace.learned_events, "rejected_events": trace.rejected_events}
        evaluations.append(PolicyEvaluation(trace.policy, trace.version, estimates,
                                            _metrics(log, trace, catalog, config, rewards), counters, running))
    sanity = None
    if config.logging_policy is not None:
        own = next((e for e in evaluations if e.policy == config.logging_policy), None)
        if own is None:
            raise ValueError(f"logging_policy: {config.logging_policy!r} is not among the evaluated policies")
        sanity = {"policy": own.policy, "on_policy_ctr": on_policy.value,
                  "covers": {name: own.estimates[name].covers(on_policy.value)
                             for name in ("ips", "snips", "dr") if name in own.estimates}}
    return EvaluationResult(counts, on_policy, evaluations, sanity, config.settings(), rewards, clusters, notes)
