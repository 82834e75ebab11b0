"""Slate-level estimates of one policy from the driver's traces, each estimator fed the
propensities it needs: IIPS the marginals, RIPS the prefix (cascade) probabilities, SIPS the
joint slate probabilities.

IIPS uses the rounds that show at least two items, all with marginal propensities. RIPS and
SIPS use the rounds whose log holds the served slate with its prefix propensities
(`online.evaluation.logged`), the evaluated policy's prefix probabilities of that slate from
its own draws (`RequestScores.slate_probabilities`); a product of marginals is not a prefix
or joint probability for rankings drawn without replacement, so they are never fed one.
The value is reward per slate.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from online.evaluation.bootstrap import BootArgs, Estimate
from online.evaluation.slate_estimators import slate_cascade_ips, slate_independent_ips, slate_standard_ips
from online.evaluation.traces import PolicyTrace, RoundLog

FloatArray = npt.NDArray[np.float64]

NO_PREFIX_NOTE = ("slate_rips and slate_sips skipped: the log records no prefix (joint) propensities "
                  "(slates of this build do); products of per-position propensities would be biased for "
                  "rankings drawn without replacement")


def _independent(log: RoundLog, trace: PolicyTrace, counts: list[int], boot: BootArgs) -> Estimate | None:
    rounds = [i for i, (n, p, pos) in enumerate(zip(counts, log.pscores, log.positions, strict=True))
              if n >= 2 and np.isfinite(p).all() and len(set(pos.tolist())) == n]
    if not rounds:
        return None
    length = max(int(log.positions[i].max()) + 1 for i in rounds)
    grid = np.zeros((3, len(rounds), length))
    grid[1:] = 1.0
    mask = np.zeros((len(rounds), length), dtype=bool)
    for j, i in enumerate(rounds):
        pos = log.positions[i]
        grid[0, j, pos], grid[1, j, pos], grid[2, j, pos] = log.rewards[i], log.pscores[i], trace.eval_probs[i]
        mask[j, pos] = True
    return slate_independent_ips(grid[0], grid[1], grid[2], mask=mask, **boot)


def _prefix_grids(log: RoundLog, trace: PolicyTrace) -> tuple[FloatArray, FloatArray, FloatArray,
                                                                  npt.NDArray[np.bool_]] | None:
    """(rewards, logged prefix, evaluated prefix) float64[R, L] and mask bool[R, L] over the R
    rounds with a logged slate of >= 2 items and prefix propensities on both sides."""
    rounds = [i for i, (slate, prefix) in enumerate(zip(log.slates, trace.eval_prefix, strict=True))
              if slate is not None and slate.has_prefix and prefix is not None and len(slate.rows) >= 2]
    if not rounds:
        return None
    length = max(len(log.slates[i].rows) for i in rounds)  # type: ignore[union-attr]
    rewards, logged, evaluated = np.zeros((len(rounds), length)), np.ones((len(rounds), length)), np.ones(
        (len(rounds), length))
    mask = np.zeros((len(rounds), length), dtype=bool)
    for j, i in enumerate(rounds):
        slate, prefix = log.slates[i], trace.eval_prefix[i]
        assert slate is not None and prefix is not None
        size = len(slate.rows)
        rewards[j, log.positions[i]] = log.rewards[i]
        logged[j, :size], evaluated[j, :size], mask[j, :size] = slate.prefix, prefix, True
    return rewards, logged, evaluated, mask


def slate_level_estimates(log: RoundLog, trace: PolicyTrace, counts: list[int],
                          boot: BootArgs) -> tuple[dict[str, Estimate], list[str]]:
    """{"slate_iips", "slate_rips", "slate_sips"} (those that apply) and notes on the others.
    counts: observations per round."""
    out: dict[str, Estimate] = {}
    notes: list[str] = []
    independent = _independent(log, trace, counts, boot)
    if independent is not None:
        out["slate_iips"] = independent
    grids = _prefix_grids(log, trace)
    if grids is None:
        if independent is not None:
            notes.append(NO_PREFIX_NOTE)
        elif any(n >= 2 for n in counts):
            notes.append("slate estimators skipped: no round shows two or more items with propensities")
        return out, notes
    rewards, logged, evaluated, mask = grids
    out["slate_rips"] = slate_cascade_ips(rewards, logged, evaluated, mask=mask, prefix=True, **boot)
    last = mask.sum(axis=1) - 1
    rows = np.arange(rewards.shape[0])
    out["slate_sips"] = slate_standard_ips(rewards, logged[rows, last], evaluated[rows, last], mask=mask, **boot)
    return out, notes
