"""Logged rounds per second through the counterfactual driver (bernoulli_ts on the OBD random log)
side by side with obp 0.4.1's own BernoulliTS (select_action + update_params) over the same log.

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/evaluation_speed.py

obp is not a project dependency: it is installed for this bench only, with the packages its
`obp.policy` imports (scikit-learn, pandas, mypy_extensions, ...), into .data/obp-site
(`pip install --no-deps --target`), never into the venv. If it cannot be imported the bench
falls back to a numpy re-implementation of obp's loop and says so loudly.

Three comparisons, all over the same 10,000 logged rounds:
  1. driver (per round: Monte Carlo action distribution with n_draws draws, slate, DR terms,
     learning after every round; then estimators with bootstrap) vs obp's bare loop (one
     select_action + update_params per round: no propensities, no estimate) — the goal line.
  2. the same with learning every 100 rounds (driver: one Monte Carlo matrix per batch; obp:
     batch_size=100).
  3. like-for-like work per round: obp computing the same n_draws-draw action distribution
     the way its compute_batch_action_dist does (n_draws select_action calls) + update_params,
     timed on the first 200 rounds.
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

from online.datasets import load_obd_arrays, obd_events, obd_paths  # noqa: E402
from online.evaluation.columnar import ColumnarLog, evaluate_context_free  # noqa: E402
from online.evaluation.driver import DriverConfig, evaluate_log  # noqa: E402
from online.policies import make_policy  # noqa: E402

SITE = ROOT / ".data" / "obp-site"
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


def driver_rate(events: list[Any], n_draws: int, learn_every: int, max_rounds: int | None = None
                ) -> tuple[float, float]:
    config = DriverConfig(n_draws=n_draws, learn_every=learn_every, n_bootstrap=1000, max_rounds=max_rounds)
    started = time.perf_counter()
    result = evaluate_log(events, ["bernoulli_ts"], item_embed, 2, config=config)
    elapsed = time.perf_counter() - started
    return result.counts.rounds_evaluated / elapsed, result.policy("bernoulli_ts").estimates["dr"].value


def columnar_rate(arrays: Any, n_draws: int, block: int) -> tuple[float, float]:
    """Rounds/s (and DR) of the vectorised context-free path, bootstrap included."""
    log = ColumnarLog(arrays.actions, arrays.positions, arrays.rewards, arrays.pscores, arrays.n_actions, 3)
    ids = [str(a) for a in range(arrays.n_actions)]
    started = time.perf_counter()
    result = evaluate_context_free(log, make_policy("bernoulli_ts"), ids, np.ones((arrays.n_actions, 1)),
                                   rng=np.random.default_rng(0), block=block, n_draws=n_draws)
    elapsed = time.perf_counter() - started
    return result.rounds / elapsed, result.estimates["dr"].value


def main() -> None:
    print("$ OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/evaluation_speed.py")
    cls, description = obp_bernoulli_ts()
    log, items = obd_paths(obp_folder() / "dataset" / "obd", "random", "all")
    arrays = load_obd_arrays(log)
    events = list(obd_events(log, items))
    n_draws = 256
    print(f"OBD random/all: {len(arrays.rewards)} rounds; baseline: {description}; n_draws={n_draws}\n")
    rows = []
    for learn_every in (1, 100):
        ours, _dr = driver_rate(events, n_draws, learn_every)
        theirs = obp_loop(cls, arrays.actions, arrays.rewards, learn_every, 1)
        rows.append((f"learn every {learn_every}: driver (full evaluation) vs obp bare loop", ours, theirs))
    for block in (1, 100):
        ours, _dr = columnar_rate(arrays, n_draws, block)
        theirs = obp_loop(cls, arrays.actions, arrays.rewards, block, 1)
        rows.append((f"learn every {block}: columnar path (full evaluation) vs obp bare loop", ours, theirs))
    head = slice(0, 200)
    ours_head, _ = driver_rate(events, n_draws, 1, max_rounds=200)
    theirs_mc = obp_loop(cls, arrays.actions[head], arrays.rewards[head], 1, n_draws)
    rows.append((f"like-for-like ({n_draws}-draw action distribution per round, first 200 rounds)",
                 ours_head, theirs_mc))
    print(f"{'comparison':<78} {'ours r/s':>9} {'obp r/s':>9} {'ratio':>7}")
    for label, ours, theirs in rows:
        print(f"{label:<78} {ours:9.0f} {theirs:9.0f} {ours / theirs:7.2f}x")
    for index, label in ((0, "event-level driver, learn every round"), (3, "columnar path, learn every 100")):
        ratio = rows[index][1] / rows[index][2]
        print(f"goal >= 10x obp's rounds/s, {label}: {ratio:.2f}x ({'met' if ratio >= 10 else 'NOT met'})")


if __name__ == "__main__":
    main()
