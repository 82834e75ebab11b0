"""Logged rounds per second through the context-free evaluation path (bernoulli_ts on the OBD
random/all log, replay / IPS / SNIPS / DR with 1,000-resample bootstrap intervals) side by side
with obp 0.4.1's own BernoulliTS over the same log, in the same process.

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/evaluation_speed.py

obp is not a project dependency: it is installed for this bench only, with the packages its
`obp.policy` imports (scikit-learn, pandas, mypy_extensions, ...), into .data/obp-site
(`pip install --no-deps --target`), never into the venv. If it cannot be imported the bench
falls back to a numpy re-implementation of obp's loop and says so loudly (the like-for-like
rows then fail: they need obp.ope).

Both sides: Bernoulli TS, parameters updated from every logged (action, reward), refreshed every
`batch` rounds (obp's batch_size; ours: block). Ours per round: eval probability and DR terms from
the exact position probabilities of each block's frozen posteriors (`beta_ranking`), the replay
match, the reward model; then the four estimators with one shared 1,000-resample bootstrap.
Baselines:
  - obp bare loop: one select_action + update_params per round; no propensity, no estimate.
  - obp like for like (`obp_evaluation`): the same loop plus what our evaluation computes, done
    with obp's tools: compute_batch_action_dist(n_sim=256) at every batch start, our reward
    model, and obp's ReplayMethod / IPW / SNIPW / DR estimate_interval (1,000 resamples each).
  - our Monte Carlo reference path (256-draw propensities, one bootstrap per estimator).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from evaluation_obd import item_embed, obp_folder  # noqa: E402

from bench.columnar import ColumnarLog, estimate_terms, round_terms  # noqa: E402
from online.datasets import load_obd_arrays, obd_events, obd_paths  # noqa: E402
from online.engine import EngineConfig  # noqa: E402
from online.evaluation.driver import DriverConfig, evaluate_log  # noqa: E402
from online.evaluation.reward_model import PositionCTRModel  # noqa: E402
from online.policies import make_policy  # noqa: E402

SITE = ROOT / ".data" / "obp-site"
N_DRAWS, N_BOOTSTRAP = 256, 1000
ONLINE_ROUNDS, OBP_ONLINE_ROUNDS = 2000, 100
"""Learning after every round is timed on the first rounds of the log (rates are per round)."""
OBP_PACKAGES = ["obp==0.4.1", "scikit-learn", "pandas", "mypy_extensions", "joblib", "threadpoolctl", "pytz", "tzdata"]


def obp_bernoulli_ts() -> tuple[Any, str]:
    """(obp.policy.BernoulliTS class, a description); a numpy stand-in when obp will not import."""
    if not (SITE / "obp").exists():
        command = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(SITE), *OBP_PACKAGES]
        print("$", " ".join(command))
        subprocess.run(command, check=False)
    sys.path.insert(0, str(SITE))
    try:
        from obp.policy import BernoulliTS
    except Exception as error:
        print("!" * 78 + f"\n!!! obp could not be imported ({error!r}):\n!!! comparing against a numpy "
              "RE-IMPLEMENTATION of obp's BernoulliTS loop, NOT obp itself\n" + "!" * 78)
        return NumpyBernoulliTS, "numpy re-implementation of obp.policy.BernoulliTS (obp did not import)"
    import obp

    return BernoulliTS, f"obp {obp.__version__} obp.policy.BernoulliTS"


class NumpyBernoulliTS:
    """obp 0.4.1 BernoulliTS's select_action / update_params, line for line (fallback only)."""

    def __init__(self, n_actions: int, len_list: int = 1, batch_size: int = 1, random_state: int = 0) -> None:
        self.n_actions, self.len_list, self.batch_size = n_actions, len_list, batch_size
        self.random_ = np.random.RandomState(random_state)
        self.alpha, self.beta = np.ones(n_actions), np.ones(n_actions)
        self.n_trial = 0
        self.action_counts = np.zeros(n_actions, dtype=int)
        self.action_counts_temp = np.zeros(n_actions, dtype=int)
        self.reward_counts_temp = np.zeros(n_actions)
        self.reward_counts = np.zeros(n_actions)

    def select_action(self) -> np.ndarray:
        predicted = self.random_.beta(a=self.reward_counts + self.alpha,
                                      b=(self.action_counts - self.reward_counts) + self.beta)
        return predicted.argsort()[::-1][: self.len_list]

    def update_params(self, action: int, reward: float) -> None:
        self.n_trial += 1
        self.action_counts_temp[action] += 1
        self.reward_counts_temp[action] += reward
        if self.n_trial % self.batch_size == 0:
            self.action_counts = np.copy(self.action_counts_temp)
            self.reward_counts = np.copy(self.reward_counts_temp)


def obp_loop(cls: Any, actions: np.ndarray, rewards: np.ndarray, batch_size: int, selects: int) -> float:
    """Rounds per second of `selects` select_action calls + one update_params per logged round."""
    policy = cls(n_actions=80, len_list=3, batch_size=batch_size, random_state=0)
    started = time.perf_counter()
    for action, reward in zip(actions.tolist(), rewards.tolist(), strict=True):
        for _ in range(selects):
            policy.select_action()
        policy.update_params(action, reward)
    return len(actions) / (time.perf_counter() - started)


def plotting_stubs() -> None:
    """obp.ope's package init imports matplotlib and seaborn for its plotting helpers only; when
    they are not installed, empty stand-in modules let the estimators import (none is plotted)."""
    import importlib.util
    import types

    for name in ("matplotlib", "matplotlib.pyplot", "seaborn"):
        if name not in sys.modules and importlib.util.find_spec(name.split(".")[0]) is None:
            print(f"(obp.ope imports {name} for plots only; not installed: an empty stand-in module is used)")
            sys.modules[name] = types.ModuleType(name)
    if "matplotlib" in sys.modules and not hasattr(sys.modules["matplotlib"], "pyplot"):
        sys.modules["matplotlib"].pyplot = sys.modules.get("matplotlib.pyplot")  # type: ignore[attr-defined]


def obp_evaluation(cls: Any, arrays: Any, batch_size: int, n_sim: int, rounds: int, n_bootstrap: int) -> float:
    """Rounds per second of obp doing the work our evaluation does, with obp's own tools: the
    BernoulliTS loop (select_action = its own slate, update_params every round, parameters
    refreshed every batch_size rounds), the position-probability matrix at every batch start
    by compute_batch_action_dist(n_sim) (obp's only way for this policy), our reward model for
    q-hat (obp has no online one), then obp's ReplayMethod / IPW / SNIPW / DR estimate_interval
    (bootstrap, n_bootstrap resamples each)."""
    plotting_stubs()
    from obp.ope.estimators import (
        DoublyRobust,
        InverseProbabilityWeighting,
        ReplayMethod,
        SelfNormalizedInverseProbabilityWeighting,
    )
    from obp.utils import convert_to_action_dist

    actions, positions = arrays.actions[:rounds], arrays.positions[:rounds]
    rewards, pscores = arrays.rewards[:rounds], arrays.pscores[:rounds]
    n_actions, started = arrays.n_actions, time.perf_counter()
    policy = cls(n_actions=n_actions, len_list=3, batch_size=batch_size, random_state=0)
    model, all_actions = PositionCTRModel(), np.arange(n_actions)
    dist, q_hat = np.empty((rounds, n_actions, 3)), np.empty((rounds, n_actions, 3))
    own = np.empty((rounds, 3), dtype=np.int64)
    for start in range(0, rounds, batch_size):
        stop = min(start + batch_size, rounds)
        dist[start:stop] = policy.compute_batch_action_dist(n_rounds=1, n_sim=n_sim)[0]
        q_hat[start:stop] = model.predict(all_actions, 3)
        for i in range(start, stop):
            own[i] = policy.select_action()
            policy.update_params(int(actions[i]), float(rewards[i]))
        model.update(actions[start:stop], positions[start:stop], rewards[start:stop])
    common = {"reward": rewards, "action": actions, "position": positions, "n_bootstrap_samples": n_bootstrap,
              "random_state": 0}
    ReplayMethod().estimate_interval(action_dist=convert_to_action_dist(n_actions, own), **common)
    for estimator in (InverseProbabilityWeighting(), SelfNormalizedInverseProbabilityWeighting()):
        estimator.estimate_interval(pscore=pscores, action_dist=dist, **common)
    DoublyRobust().estimate_interval(pscore=pscores, action_dist=dist, estimated_rewards_by_reg_model=q_hat, **common)
    return rounds / (time.perf_counter() - started)


def driver_rate(events: list[Any], n_draws: int, learn_every: int, max_rounds: int | None = None) -> float:
    config = DriverConfig(engine=EngineConfig(n_draws=n_draws), learn_every=learn_every, n_bootstrap=1000,
                          max_rounds=max_rounds)
    started = time.perf_counter()
    result = evaluate_log(events, ["bernoulli_ts"], item_embed, 2, config=config)
    return result.counts.rounds_evaluated / (time.perf_counter() - started)


def columnar_rate(arrays: Any, block: int, rounds: int, *, reference: bool = False, bootstrap: bool = True) -> float:
    """Rounds/s of the context-free path on the first `rounds` rounds: the fast path (exact
    propensities, one shared bootstrap), or the reference (256-draw Monte Carlo, one bootstrap
    per estimator); bootstrap=False stops after the per-round terms (no estimates)."""
    head = slice(0, rounds)
    log = ColumnarLog(arrays.actions[head], arrays.positions[head], arrays.rewards[head], arrays.pscores[head],
                      arrays.n_actions, 3)
    ids, features = [str(a) for a in range(arrays.n_actions)], np.ones((arrays.n_actions, 1))
    rng = np.random.default_rng(0)
    propensity = "monte_carlo" if reference else "exact"
    started = time.perf_counter()
    terms = round_terms(log, make_policy("bernoulli_ts"), ids, features, rng=rng, block=block, n_draws=N_DRAWS,
                        propensity=propensity)
    if bootstrap:
        estimate_terms(log, terms, rng=rng, n_bootstrap=N_BOOTSTRAP, shared_bootstrap=not reference)
    return rounds / (time.perf_counter() - started)


def main() -> None:
    print("$ OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/evaluation_speed.py")
    cls, description = obp_bernoulli_ts()
    log, items = obd_paths(obp_folder() / "dataset" / "obd", "random", "all")
    arrays = load_obd_arrays(log)
    n = len(arrays.rewards)
    print(f"OBD random/all: {n} rounds; baseline: {description}; Monte Carlo draws {N_DRAWS}, "
          f"bootstrap {N_BOOTSTRAP}\n")
    online = min(n, ONLINE_ROUNDS)
    rows = [
        ("learn every 100: ours (exact, shared bootstrap) vs obp bare loop batch_size=100",
         columnar_rate(arrays, 100, n), obp_loop(cls, arrays.actions, arrays.rewards, 100, 1)),
        ("learn every 100: ours, per-round terms only (no intervals) vs obp bare loop",
         columnar_rate(arrays, 100, n, bootstrap=False), obp_loop(cls, arrays.actions, arrays.rewards, 100, 1)),
        ("learn every 100, LIKE FOR LIKE: ours vs obp doing the same evaluation",
         columnar_rate(arrays, 100, n), obp_evaluation(cls, arrays, 100, N_DRAWS, n, N_BOOTSTRAP)),
        ("learn every 100: ours vs our Monte Carlo reference path (same process)",
         columnar_rate(arrays, 100, n), columnar_rate(arrays, 100, n, reference=True)),
        (f"learn every round, first {online} rounds: ours vs obp bare loop batch_size=1",
         columnar_rate(arrays, 1, online), obp_loop(cls, arrays.actions[:online], arrays.rewards[:online], 1, 1)),
        (f"learn every round, LIKE FOR LIKE: ours ({online} rounds) vs obp same evaluation ({OBP_ONLINE_ROUNDS})",
         columnar_rate(arrays, 1, online), obp_evaluation(cls, arrays, 1, N_DRAWS, OBP_ONLINE_ROUNDS, N_BOOTSTRAP)),
    ]
    events = list(obd_events(log, items))
    rows += [
        ("event-level driver, learn every 100 vs obp bare loop batch_size=100",
         driver_rate(events, N_DRAWS, 100), obp_loop(cls, arrays.actions, arrays.rewards, 100, 1)),
        (f"event-level driver, learn every round, first {online} rounds vs obp bare loop",
         driver_rate(events, N_DRAWS, 1, online),
         obp_loop(cls, arrays.actions[:online], arrays.rewards[:online], 1, 1)),
    ]
    print(f"{'comparison':<92} {'ours r/s':>9} {'base r/s':>9} {'ratio':>7}")
    for label, ours, theirs in rows:
        print(f"{label:<92} {ours:9.0f} {theirs:9.0f} {ours / theirs:7.2f}x")
    for index in (2, 5, 0):
        label, ours, theirs = rows[index]
        print(f"goal >= 10x, {label}: {ours / theirs:.2f}x ({'met' if ours / theirs >= 10 else 'NOT met'})")


if __name__ == "__main__":
    main()
