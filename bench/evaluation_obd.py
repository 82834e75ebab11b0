"""Open Bandit Pipeline validation on real logs: estimate the Bernoulli-TS policy's CTR from the
random policy's log and compare with the Bernoulli-TS log's own on-policy CTR.

    OMP_NUM_THREADS=1 .venv/bin/python bench/evaluation_obd.py [--obd PATH] [--campaign all|men|women] \
        [--n-draws 100000] [--reward-model log_ctr|river|policy]

Data: obp 0.4.1 ships a 10,000-row sample of the Open Bandit Dataset per log; without --obd the
script runs `pip download --no-deps obp==0.4.1` into .data/obp-cache and unzips it there.
The evaluated policy is ZOZOTOWN's production Bernoulli TS: per item a Beta(alpha, beta) from
obp/policy/conf/prior_bts.yaml, fixed (as obp's own OPE example treats it); for 3 positions it
ranks items by one Beta draw each. Its action distribution comes from `n_draws` Monte Carlo
draws (numpy; the driver reuses one matrix because the policy never changes). The estimate runs
through the project's driver (`online.evaluation.driver.evaluate_log`). Prints every estimator's
estimate, interval, relative error against the BTS log's on-policy CTR and the report's verdict
(`online.evaluation.assessment`), and the weights' diagnostics. The evaluated policy has no
support mix (it must be the BTS log's own). Goal (obp paper, small sample): relative error
<= 0.3 for DR or SNIPS. Printed, not asserted. --reward-model is DR's (`DriverConfig.reward_model`;
"river" reads OBD's synthetic users, one per user-feature combination).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import yaml

from online.datasets import obd_events, obd_paths
from online.engine import EngineConfig
from online.evaluation.driver import DriverConfig, evaluate_log
from online.evaluation.rounds import AnyEvent
from online.events import Item
from online.policies.arms import ArmStats, UniformRandom
from online.policies.base import FeedbackBatch, RankContext, ScoreDraws

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".data" / "obp-cache"


def obp_folder(cache: Path = CACHE) -> Path:
    """The unzipped obp 0.4.1 package folder (downloaded with pip on first use)."""
    unzipped = cache / "unzipped" / "obp"
    if unzipped.exists():
        return unzipped
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / "obp-0.4.1-py3-none-any.whl"
    if not wheel.exists():
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "obp==0.4.1", "-d", str(cache)]
        print("$", " ".join(command))
        subprocess.run(command, check=True)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(cache / "unzipped")
    return unzipped


class ZozoBTS(UniformRandom):
    """ZOZOTOWN's Bernoulli TS with its production prior, fixed: scores = one Beta draw per item.

    Items "0".."79" index the yaml's alpha/beta lists. It never learns (the prior is the policy).
    """

    name = "zozotown_bts"

    def __init__(self, alpha: Mapping[str, float], beta: Mapping[str, float]) -> None:
        super().__init__()
        self.alpha, self.beta = dict(alpha), dict(beta)

    def sample_scores(self, global_state: ArmStats, user_state: None, context: RankContext,
                      rng: np.random.Generator, n_draws: int) -> ScoreDraws:
        a = np.array([self.alpha[i] for i in context.item_ids])
        b = np.array([self.beta[i] for i in context.item_ids])
        mean = a / (a + b)
        std = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        return ScoreDraws(rng.beta(a, b, size=(n_draws, len(a))), mean, std)

    def learn(self, global_state: ArmStats, user_states: Mapping[str, None], batch: FeedbackBatch
              ) -> tuple[ArmStats, dict[str, None]]:
        return global_state, {}


def load_prior(folder: Path, campaign: str) -> ZozoBTS:
    prior = yaml.safe_load((folder / "policy" / "conf" / "prior_bts.yaml").read_text())[campaign]
    ids = [str(i) for i in range(len(prior["alpha"]))]
    return ZozoBTS(dict(zip(ids, map(float, prior["alpha"]), strict=True)),
                   dict(zip(ids, map(float, prior["beta"]), strict=True)))


def item_embed(items: list[Item]) -> np.ndarray:
    """Item vectors are irrelevant to a context-free policy: a fixed unit vector each."""
    out = np.zeros((len(items), 2), dtype=np.float32)
    out[:, 0] = 1.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--obd", type=Path, default=None, help="obp's obd folder (default: download obp 0.4.1)")
    parser.add_argument("--campaign", default="all", choices=["all", "men", "women"])
    parser.add_argument("--n-draws", type=int, default=100_000, help="Monte Carlo draws of the BTS distribution")
    parser.add_argument("--n-bootstrap", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reward-model", default="log_ctr", choices=["log_ctr", "river", "policy"])
    args = parser.parse_args()
    folder = obp_folder() if args.obd is None else args.obd.resolve().parents[1]
    obd = folder / "dataset" / "obd" if args.obd is None else args.obd
    print("$ OMP_NUM_THREADS=1 .venv/bin/python bench/evaluation_obd.py " + " ".join(sys.argv[1:]))
    policy = load_prior(folder, args.campaign)
    random_log, items_csv = obd_paths(obd, "random", args.campaign)
    bts_log, bts_items = obd_paths(obd, "bts", args.campaign)
    # the evaluated policy is exactly the BTS log's (no support mix); the random log is uniform
    config = DriverConfig(engine=EngineConfig(n_draws=args.n_draws, support_epsilon=0.0), n_bootstrap=args.n_bootstrap,
                          seed=args.seed, learn_every=10**9, context_free=frozenset({policy.name}),
                          logging_policy="uniform_random", uniform_log=True,
                          reward_model=args.reward_model)
    events: list[AnyEvent] = list(obd_events(random_log, items_csv))
    started = time.perf_counter()
    result = evaluate_log(events, [policy, "uniform_random"], item_embed, 2, config=config)
    elapsed = time.perf_counter() - started
    truth_result = evaluate_log(list(obd_events(bts_log, bts_items)), ["uniform_random"], item_embed, 2,
                                config=DriverConfig(engine=EngineConfig(n_draws=1), n_bootstrap=args.n_bootstrap,
                                                    seed=args.seed))
    truth = truth_result.on_policy
    print(f"random log: {result.counts.rounds_evaluated} rounds, {int(result.logged_rewards.sum())} clicks, "
          f"on-policy CTR {result.on_policy.value:.5f} [{result.on_policy.ci_low:.5f}, {result.on_policy.ci_high:.5f}]")
    print(f"bts log (ground truth): {truth.n} rounds, {int(truth_result.logged_rewards.sum())} clicks, "
          f"on-policy CTR {truth.value:.5f} [{truth.ci_low:.5f}, {truth.ci_high:.5f}]")
    print(f"driver: {elapsed:.1f} s for 2 policies, {args.n_draws} Monte Carlo draws of the BTS distribution")
    print("\nBTS policy value estimated from the random log (CTR per shown item):")
    print(f"{'estimator':>10} {'estimate':>9} {'95% interval':>21} {'rel. error':>10} {'covers truth':>12}  verdict")
    bts = result.policy(policy.name)
    for name in ("ips", "snips", "dr", "dm", "replay"):
        e, verdict = bts.estimates[name], bts.assessment.verdicts[name]
        rel = abs(e.value - truth.value) / truth.value
        covers = e.covers(truth.value)
        said = "reliable" if verdict.reliable else "UNRELIABLE: " + "; ".join(verdict.reasons)
        print(f"{name:>10} {e.value:9.5f} [{e.ci_low:8.5f}, {e.ci_high:8.5f}] {rel:10.3f} {covers!s:>12}  {said}")
    weights = bts.assessment.diagnostics["dr"]
    print(f"weights: effective sample size {weights.ess:,.0f} of {weights.n:,}, largest {weights.max_weight:.1f}, "
          f"mean {weights.mean_weight:.3f} [{weights.mean_low:.3f}, {weights.mean_high:.3f}]; "
          f"read: {bts.assessment.read} ({bts.assessment.why})")
    best = min(abs(bts.estimates[n].value - truth.value) / truth.value for n in ("dr", "snips"))
    print(f"\ngoal: relative error <= 0.3 for DR or SNIPS (obp paper: DR 0.29, DM 0.16) -> best {best:.3f} "
          f"({'met' if best <= 0.3 else 'NOT met'})")
    assert result.sanity is not None
    print("sanity: uniform_random (exact propensities) on its own log: "
          + ", ".join(f"{k} {'covers' if v else 'MISSES'}" for k, v in result.sanity["covers"].items())
          + f" the on-policy CTR ({result.policy('uniform_random').estimates['ips'].value:.5f} vs "
            f"{result.on_policy.value:.5f})")


if __name__ == "__main__":
    main()
