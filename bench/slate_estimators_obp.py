"""Our slate estimators against obp 0.4.1's on the same inputs, each fed the propensities it needs,
and what feeding RIPS and SIPS per-position marginals costs (both libraries alike).

    OMP_NUM_THREADS=1 .venv/bin/python bench/slate_estimators_obp.py [--slates 20000] [--seeds 5]

A Plackett-Luce logging policy over 5 items serves slates of 3 (without replacement); a second
Plackett-Luce policy is evaluated; clicks follow a position-based model, so the exact value is
known by enumerating the 60 slates. Propensities are exact (prefix, joint, marginal), or Monte
Carlo from 64, 256 or 1,024 draws through `online.propensities` (the logging side with the
served slate as draw 0, as slates record it; the evaluated side from independent draws). obp is not a project
dependency: it is installed for this bench only into .data/obp-site (`pip install --no-deps
--target`, as bench/evaluation_speed.py does), never into the venv.

Prints, per seed: ours and obp's IIPS (marginals), RIPS (prefix: obp's `pscore_cascade`), SIPS
(joint: obp's `pscore`), their largest difference (goal: <= 1e-12 relative), and both fed
marginals (RIPS: running product of marginal ratios; SIPS: their product), with the truth.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from online.evaluation.slate_estimators import (  # noqa: E402
    slate_cascade_ips,
    slate_independent_ips,
    slate_standard_ips,
)
from online.propensities import agreement  # noqa: E402

SITE = ROOT / ".data" / "obp-site"
OBP_PACKAGES = ["obp==0.4.1", "scikit-learn", "pandas", "mypy_extensions", "joblib", "threadpoolctl", "pytz", "tzdata"]
LOGGER, TARGET = np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([6.0, 3.0, 1.5, 1.0, 0.5])
REL, EXAM = np.array([0.9, 0.6, 0.4, 0.25, 0.1]), np.array([1.0, 0.6, 0.35])
DRAWS = (64, 256, 1024)


def obp_slate_estimators() -> Any:
    """The obp.ope module (installed into .data/obp-site on first use)."""
    if not (SITE / "obp").exists():
        command = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(SITE), *OBP_PACKAGES]
        print("$", " ".join(command))
        subprocess.run(command, check=True)
    sys.path.insert(0, str(SITE))
    import importlib.util
    import types

    for name in ("matplotlib", "matplotlib.pyplot", "seaborn"):  # obp.ope imports them for plots only
        if name not in sys.modules and importlib.util.find_spec(name.split(".")[0]) is None:
            print(f"(obp.ope imports {name} for plots only; not installed: an empty stand-in module is used)")
            sys.modules[name] = types.ModuleType(name)
    import obp.ope

    return obp.ope


def pl_prefix(weights: np.ndarray, slates: np.ndarray) -> np.ndarray:
    """float64[S, k] exact Plackett-Luce prefix probabilities."""
    w = weights[slates]
    left = weights.sum() - np.concatenate([np.zeros((len(slates), 1)), np.cumsum(w, axis=1)[:, :-1]], axis=1)
    return np.cumprod(w / left, axis=1)


def monte_carlo(weights: np.ndarray, slates: np.ndarray, rng: np.random.Generator, draws: int,
                served: bool) -> tuple[np.ndarray, np.ndarray]:
    """(marginal, prefix) float64[S, k] as the share of `draws` Plackett-Luce slates agreeing with
    each slate; `served`: the slate is draw 0 (what `Engine.rank` records for the logging policy),
    else all draws are independent of it (what the driver computes for an evaluated policy)."""
    marginal, prefix = np.empty(slates.shape), np.empty(slates.shape)
    for i, slate in enumerate(slates):
        ranked = np.argsort(-(np.log(weights)[None, :] + rng.gumbel(size=(draws, len(weights)))), axis=1)[:, :3]
        if served:
            ranked[0] = slate
        marginal[i], prefix[i] = agreement(ranked, slate)
    return marginal, prefix


def compare(ope: Any, slates: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    logged = np.argsort(-(np.log(LOGGER)[None, :] + rng.gumbel(size=(slates, 5))), axis=1)[:, :3]
    rewards = (rng.random(logged.shape) < EXAM[None, :] * REL[logged]).astype(float)
    every = np.array(list(itertools.permutations(range(5), 3)))
    joint_e = pl_prefix(TARGET, every)[:, -1]
    truth = float(joint_e @ (EXAM[None, :] * REL[every]).sum(axis=1))
    marg = {name: np.zeros((5, 3)) for name in ("logger", "target")}
    for name, weights in (("logger", LOGGER), ("target", TARGET)):
        joint = pl_prefix(weights, every)[:, -1]
        for position in range(3):
            np.add.at(marg[name][:, position], every[:, position], joint)
    m0, me = marg["logger"][logged, np.arange(3)], marg["target"][logged, np.arange(3)]
    p0, pe = pl_prefix(LOGGER, logged), pl_prefix(TARGET, logged)
    long = {"slate_id": np.repeat(np.arange(slates), 3), "reward": rewards.ravel(),
            "position": np.tile(np.arange(3), slates)}
    boot = {"rng": np.random.default_rng(0), "n_bootstrap": 1}
    rows = {
        "iips (marginals)": (slate_independent_ips(rewards, m0, me, **boot).value,
                             ope.SlateIndependentIPS(len_list=3).estimate_policy_value(
                                 **long, pscore_item_position=m0.ravel(),
                                 evaluation_policy_pscore_item_position=me.ravel())),
        "rips (prefix)": (slate_cascade_ips(rewards, p0, pe, prefix=True, **boot).value,
                          ope.SlateRewardInteractionIPS(len_list=3).estimate_policy_value(
                              **long, pscore_cascade=p0.ravel(), evaluation_policy_pscore_cascade=pe.ravel())),
        "sips (joint)": (slate_standard_ips(rewards, p0[:, -1], pe[:, -1], **boot).value,
                         ope.SlateStandardIPS(len_list=3).estimate_policy_value(
                             **long, pscore=np.repeat(p0[:, -1], 3), evaluation_policy_pscore=np.repeat(pe[:, -1], 3))),
        "rips fed marginals": (slate_cascade_ips(rewards, m0, me, **boot).value,
                               ope.SlateRewardInteractionIPS(len_list=3).estimate_policy_value(
                                   **long, pscore_cascade=np.cumprod(m0, axis=1).ravel(),
                                   evaluation_policy_pscore_cascade=np.cumprod(me, axis=1).ravel())),
        "sips fed marginals": (slate_standard_ips(rewards, m0, me, **boot).value,
                               ope.SlateStandardIPS(len_list=3).estimate_policy_value(
                                   **long, pscore=np.repeat(m0.prod(axis=1), 3),
                                   evaluation_policy_pscore=np.repeat(me.prod(axis=1), 3))),
    }
    for draws in DRAWS:
        _, mc_p0 = monte_carlo(LOGGER, logged, rng, draws, served=True)
        _, mc_pe = monte_carlo(TARGET, logged, rng, draws, served=False)
        rows[f"rips (prefix, {draws} draws)"] = (
            slate_cascade_ips(rewards, mc_p0, mc_pe, prefix=True, **boot).value,
            ope.SlateRewardInteractionIPS(len_list=3).estimate_policy_value(
                **long, pscore_cascade=mc_p0.ravel(), evaluation_policy_pscore_cascade=mc_pe.ravel()))
        rows[f"sips (joint, {draws} draws)"] = (
            slate_standard_ips(rewards, mc_p0[:, -1], mc_pe[:, -1], **boot).value,
            ope.SlateStandardIPS(len_list=3).estimate_policy_value(
                **long, pscore=np.repeat(mc_p0[:, -1], 3), evaluation_policy_pscore=np.repeat(mc_pe[:, -1], 3)))
    print(f"\nseed {seed}: {slates} slates, truth {truth:.5f} clicks per slate")
    print(f"{'estimator':<26}{'ours':>10}{'obp':>10}{'|ours-obp|/obp':>16}{'vs truth':>10}")
    for name, (ours, theirs) in rows.items():
        print(f"{name:<26}{ours:>10.5f}{theirs:>10.5f}{abs(ours - theirs) / abs(theirs):>16.1e}"
              f"{ours / truth - 1:>+10.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slates", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    ope = obp_slate_estimators()
    for seed in range(args.seeds):
        compare(ope, args.slates, seed)


if __name__ == "__main__":
    main()
