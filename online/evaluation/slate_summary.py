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

from online.evaluation.assessment import WeightDiagnostics, weight_diagnostics
from online.evaluation.bootstrap import BootArgs, Estimate
from online.evaluation.logged import LoggedSlate
from online.evaluation.slate_estimators import slate_cascade_ips, slate_independent_ips, slate_standard_ips
from online.evaluation.traces import PolicyTrace, RoundLog
from online.propensities import uniform_prefix

FloatArray = npt.NDArray[np.float64]

NO_PREFIX_NOTE = ("slate_rips and slate_sips skipped: the log records no prefix (joint) propensities "
                  "(slates of this build do); products of per-position propensities would be biased for "
                  "rankings drawn without replacement")


def _independent(log: RoundLog, trace: PolicyTrace, counts: list[int],
                 boot: BootArgs) -> tuple[Estimate, WeightDiagnostics] | None:
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
    weights = (grid[2] / grid[1])[mask]
    return (slate_independent_ips(grid[0], grid[1], grid[2], mask=mask, **boot),
            weight_diagnostics(weights, np.nonzero(mask)[0], boot))


def floor_mask(slate: LoggedSlate) -> npt.NDArray[np.bool_] | None:
    """bool[L]: which of the slate's logged prefix propensities rest on the served draw alone
    (its share of the n_draws slates, the support mix taken out, is below 1.5 / n_draws);
    None when the slate does not say how many draws there were."""
    if slate.n_draws is None:
        return None
    epsilon = slate.support or 0.0
    if epsilon >= 1.0:
        return np.zeros(len(slate.rows), dtype=bool)  # a uniform ranking: exact
    count = slate.candidate_count
    uniform = 0.0 if count is None else epsilon * uniform_prefix(count, len(slate.rows))
    share = (slate.prefix - uniform) / (1.0 - epsilon)
    floor: npt.NDArray[np.bool_] = share * slate.n_draws < 1.5
    return floor


def _prefix_grids(log: RoundLog, trace: PolicyTrace) -> tuple[FloatArray, FloatArray, FloatArray,
                                                                  npt.NDArray[np.bool_], list[int]] | None:
    """(rewards, logged prefix, evaluated prefix) float64[R, L], mask bool[R, L] and the round
    indices of the R rounds with a logged slate of >= 2 items and prefix propensities on both
    sides."""
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
    return rewards, logged, evaluated, mask, rounds


def _floor_shares(log: RoundLog, rounds: list[int], shown: npt.NDArray[np.bool_]) -> tuple[float | None,
                                                                                          float | None]:
    """(RIPS, SIPS) shares of logged prefix propensities at the Monte Carlo floor: over the shown
    positions, and over the slates' joint ones; None when a slate does not say its draws."""
    found = [floor_mask(log.slates[i]) for i in rounds]  # type: ignore[arg-type]
    floors = [f for f in found if f is not None]
    if len(floors) < len(found):
        return None, None
    at_shown = [bool(f[p]) for f, row in zip(floors, shown, strict=True) for p in np.flatnonzero(row[: len(f)])]
    joint = [bool(f[-1]) for f in floors]
    return (float(np.mean(at_shown)) if at_shown else 0.0), float(np.mean(joint))


def slate_level_estimates(log: RoundLog, trace: PolicyTrace, counts: list[int],
                          boot: BootArgs) -> tuple[dict[str, Estimate], dict[str, WeightDiagnostics], list[str]]:
    """{"slate_iips", "slate_rips", "slate_sips"} (those that apply), their weight
    diagnostics, and notes on the others. counts: observations per round."""
    out: dict[str, Estimate] = {}
    diagnostics: dict[str, WeightDiagnostics] = {}
    notes: list[str] = []
    independent = _independent(log, trace, counts, boot)
    if independent is not None:
        out["slate_iips"], diagnostics["slate_iips"] = independent
    grids = _prefix_grids(log, trace)
    if grids is None:
        if independent is not None:
            notes.append(NO_PREFIX_NOTE)
        elif any(n >= 2 for n in counts):
            notes.append("slate estimators skipped: no round shows two or more items with propensities")
        return out, diagnostics, notes
    rewards, logged, evaluated, mask, rounds = grids
    shown = np.zeros_like(mask)
    for j, i in enumerate(rounds):
        shown[j, log.positions[i]] = True
    rips_floor, sips_floor = _floor_shares(log, rounds, shown)
    out["slate_rips"] = slate_cascade_ips(rewards, logged, evaluated, mask=mask, prefix=True, **boot)
    ratio = evaluated / logged
    diagnostics["slate_rips"] = weight_diagnostics(ratio[shown], np.nonzero(shown)[0], boot, rips_floor)
    last = mask.sum(axis=1) - 1
    rows = np.arange(rewards.shape[0])
    out["slate_sips"] = slate_standard_ips(rewards, logged[rows, last], evaluated[rows, last], mask=mask, **boot)
    diagnostics["slate_sips"] = weight_diagnostics(ratio[rows, last], None, boot, sips_floor)
    return out, diagnostics, notes
