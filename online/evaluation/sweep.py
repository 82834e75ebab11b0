"""Objective-weight sweeps: a grid of `ObjectiveSettings`, Pareto fronts, the recommended settings.

    grid = SweepGrid(diversity=(0, 5, 20), fairness=(0, 1))
    points = [SweepPoint(label_of(s), s, ctr=..., ild=..., gini=...) for s in grid.settings()]
    front = pareto_front([p.ctr for p in points], [p.ild for p in points])   # maximise both
    pick = recommend(points, baseline=points[0], target="ild")               # CTR >= 0.95 x baseline

Pure: the runs that measure each point (simulator: `online.experiment.run_policy`; logged
data: `online.evaluation.driver.evaluate_log` with `PolicyVariant`s) are made by the caller
(`slatestream/sweep.py`, `bench/objectives_sweep.py`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from online.objectives import ObjectiveSettings

BoolArray = npt.NDArray[np.bool_]
Target = Literal["ild", "gini"]
MAX_POSITION_POWER = 8.0
"""The largest `ObjectiveSettings.diversity_position_power`."""


@dataclass(frozen=True)
class SweepGrid:
    """The settings swept: every combination of the diversity, novelty and fairness weights,
    all with the same re-ranking method, shortlist and fairness group; every setting with
    diversity > 0 once per (position power, from position) pair (position-aware diversity, see
    online/objectives/rerank.py; the defaults (0,), (0,) = the flat weight only). Every
    re-ranking setting takes `score_units` and `slate_order` (ObjectiveSettings' fields of those
    names). The all-zero setting (plain relevance ranking, the baseline) always comes first, added
    when the axes lack it."""

    diversity: tuple[float, ...] = (0.0, 2.0, 5.0, 10.0)
    novelty: tuple[float, ...] = (0.0,)
    fairness: tuple[float, ...] = (0.0, 1.0)
    method: Literal["mmr", "ild", "dpp"] = "mmr"
    shortlist_factor: int = 5
    fairness_group: str | None = None
    position_power: tuple[float, ...] = (0.0,)
    from_position: tuple[int, ...] = (0,)
    score_units: Literal["standardised", "score"] = "standardised"
    slate_order: Literal["greedy", "utility"] = "greedy"

    def __post_init__(self) -> None:
        for name in ("diversity", "novelty", "fairness"):
            values = getattr(self, name)
            if not values or any(not math.isfinite(v) or v < 0 for v in values):
                raise ValueError(f"{name}: needs at least one finite weight >= 0, got {values!r}")
        if not self.position_power or any(not (math.isfinite(v) and 0 <= v <= MAX_POSITION_POWER)
                                          for v in self.position_power):
            raise ValueError(f"position_power: needs at least one power in [0, {MAX_POSITION_POWER:g}], "
                             f"got {self.position_power!r}")
        if not self.from_position or any(isinstance(v, bool) or not isinstance(v, int) or v < 0
                                         for v in self.from_position):
            raise ValueError(f"from_position: needs at least one integer >= 0, got {self.from_position!r}")

    def settings(self) -> list[ObjectiveSettings]:
        """The grid's settings, baseline (all weights 0) first, no duplicates."""
        out = [ObjectiveSettings(shortlist_factor=self.shortlist_factor, fairness_group=self.fairness_group)]
        positions = list(itertools.product(self.position_power, self.from_position))
        for diversity, novelty, fairness in itertools.product(self.diversity, self.novelty, self.fairness):
            for power, start in positions if diversity > 0 else [(0.0, 0)]:
                candidate = ObjectiveSettings(
                    diversity=diversity, novelty=novelty, fairness=fairness, diversity_method=self.method,
                    shortlist_factor=self.shortlist_factor, fairness_group=self.fairness_group,
                    diversity_position_power=power, diversity_from_position=start, score_units=self.score_units,
                    slate_order=self.slate_order,
                )
                if candidate.reranks and candidate not in out:
                    out.append(candidate)
        return out


def one_axis_settings(diversity: Sequence[float], novelty: Sequence[float], fairness: Sequence[float],
                      method: Literal["mmr", "ild", "dpp"] = "mmr", shortlist_factor: int = 5,
                      position_power: Sequence[float] = (0.0,), from_position: Sequence[int] = (0,),
                      score_units: Literal["standardised", "score"] = "standardised",
                      extra: Sequence[Mapping[str, Any]] = ()) -> list[ObjectiveSettings]:
    """The settings of a sweep that moves one objective at a time (no cross product): the
    diversity weights, each once per (position power, from position) pair, then the fairness
    weights, then the novelty weights, each with the other two at 0; every re-ranking one in
    `score_units`; then each `extra` setting (ObjectiveSettings fields), which takes `score_units`
    unless it names its own. The baseline first, no duplicates."""
    axes = [SweepGrid(tuple(diversity), (0.0,), (0.0,), method, shortlist_factor),
            SweepGrid((0.0,), (0.0,), tuple(fairness), method, shortlist_factor),
            SweepGrid((0.0,), tuple(novelty), (0.0,), method, shortlist_factor)]
    out: list[ObjectiveSettings] = []
    for setting in (setting for axis in axes for setting in axis.settings()):
        variants = [setting] if setting.diversity <= 0 else [
            setting.model_copy(update={"diversity_position_power": power, "diversity_from_position": start})
            for power in position_power for start in from_position]
        for variant in variants:
            variant = ObjectiveSettings.model_validate(variant.model_dump())  # validates the position options
            if variant not in out:
                out.append(variant)
    if score_units != "standardised":
        out = [s.model_copy(update={"score_units": score_units}) if s.reranks else s for s in out]
    for given in extra:
        units = {"score_units": score_units} if "score_units" not in given else {}
        setting = ObjectiveSettings(shortlist_factor=shortlist_factor, diversity_method=method, **given)
        out.append(setting.model_copy(update=units) if setting.reranks else setting)
    return out


def parse_weights(text: str, name: str) -> tuple[float, ...]:
    """"0,2,5" -> (0.0, 2.0, 5.0); ValueError naming `name` on anything else."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise ValueError(f"{name}: want comma-separated numbers, got {text!r}") from error
    if not values:
        raise ValueError(f"{name}: want at least one weight, got {text!r}")
    return values


def parse_positions(text: str, name: str) -> tuple[int, ...]:
    """"0,2" -> (0, 2); ValueError naming `name` unless comma-separated integers >= 0."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise ValueError(f"{name}: want comma-separated integers >= 0, got {text!r}") from error
    if not values or min(values) < 0:
        raise ValueError(f"{name}: want at least one integer >= 0, got {text!r}")
    return values


def label_of(settings: ObjectiveSettings) -> str:
    """A short name: "none" for the baseline, else e.g. "mmr5+nov1+fair2"; position-aware diversity
    adds "^power" and ">from" to the method (e.g. "mmr2^1>2": MMR 2, power 1, from position 2);
    "+abs" marks weights in score units (`score_units="score"`), "+sorted" a diversified set served
    by utility (`slate_order="utility"`)."""
    if not settings.reranks:
        return "none"
    parts = []
    if settings.diversity > 0:
        power, start = settings.diversity_position_power, settings.diversity_from_position
        parts.append(f"{settings.diversity_method}{settings.diversity:g}" + (f"^{power:g}" if power else "")
                     + (f">{start}" if start else ""))
    if settings.novelty > 0:
        parts.append(f"nov{settings.novelty:g}")
    if settings.fairness > 0:
        parts.append(f"fair{settings.fairness:g}")
    if settings.score_units == "score":
        parts.append("abs")
    if settings.diversity > 0 and settings.slate_order == "utility":
        parts.append("sorted")
    return "+".join(parts)


@dataclass(frozen=True)
class SweepPoint:
    """One measured setting. ctr: reward per shown item (estimated offline, or the mean over
    seeds on the simulator), ctr_low / ctr_high: its interval (NaN when none); ild: mean
    intra-list diversity of the served slates (cosine distance, [0, 2]); gini: exposure Gini
    over the catalog, [0, 1]; extra: anything else worth keeping (per-seed values...)."""

    label: str
    settings: ObjectiveSettings
    ctr: float
    ild: float
    gini: float
    ctr_low: float = math.nan
    ctr_high: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN -> None); the settings as their non-default fields."""
        default = ObjectiveSettings().model_dump()
        changed = {k: v for k, v in self.settings.model_dump().items() if v != default[k]}
        values = {"ctr": self.ctr, "ctr_low": self.ctr_low, "ctr_high": self.ctr_high, "ild": self.ild,
                  "gini": self.gini}
        return {"label": self.label, "settings": changed,
                **{k: None if math.isnan(v) else v for k, v in values.items()}, **self.extra}


def pareto_front(first: Sequence[float], second: Sequence[float], maximise: tuple[bool, bool] = (True, True)
                 ) -> BoolArray:
    """bool[n]: which of n points (first[i], second[i]) no other point dominates.

    A point dominates another when it is at least as good on both criteria and strictly
    better on one; `maximise` says per criterion whether larger is better. Points with a
    NaN coordinate are never on the front (and dominate nothing).
    """
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"first, second: want two sequences of equal length, got {a.shape} and {b.shape}")
    a = a if maximise[0] else -a
    b = b if maximise[1] else -b
    valid = np.isfinite(a) & np.isfinite(b)
    a, b = np.where(valid, a, -np.inf), np.where(valid, b, -np.inf)
    at_least = (a[:, None] >= a[None, :]) & (b[:, None] >= b[None, :])  # [j, i]: j at least as good as i
    strictly = (a[:, None] > a[None, :]) | (b[:, None] > b[None, :])
    dominated = (at_least & strictly & valid[:, None]).any(axis=0)
    front: BoolArray = valid & ~dominated
    return front


def recommend(points: Sequence[SweepPoint], baseline: SweepPoint, target: Target,
              max_ctr_loss: float = 0.05) -> int | None:
    """Index of the recommended point: among those with CTR >= (1 - max_ctr_loss) x the
    baseline's, the highest ILD (target "ild") or the lowest Gini (target "gini"), ties to
    the higher CTR. Such a point is Pareto-optimal. None when no point qualifies."""
    if not 0.0 <= max_ctr_loss < 1.0:
        raise ValueError(f"max_ctr_loss: must be in [0, 1), got {max_ctr_loss!r}")
    if target not in ("ild", "gini"):
        raise ValueError(f"target: must be 'ild' or 'gini', got {target!r}")
    floor = (1.0 - max_ctr_loss) * baseline.ctr
    best: int | None = None
    best_key = (-math.inf, -math.inf)
    for index, point in enumerate(points):
        value = point.ild if target == "ild" else -point.gini
        if not (point.ctr >= floor and math.isfinite(value)):
            continue
        key = (value, point.ctr)
        if key > best_key:
            best, best_key = index, key
    return best


@dataclass(frozen=True)
class PairedChange:
    """Change of a figure against the baseline, paired by seed, in percent of the baseline
    mean: mean and a t-interval (NaN with a single seed) over the per-seed differences."""

    percent: float
    low: float
    high: float

    def describe(self) -> str:
        interval = "" if math.isnan(self.low) else f" [{self.low:+.1f}, {self.high:+.1f}]"
        return f"{self.percent:+.1f}%{interval}"


def paired_change(baseline: Sequence[float], variant: Sequence[float], confidence: float = 0.95) -> PairedChange:
    """Paired change of `variant` against `baseline` (float[s] each, one value per seed)."""
    base, other = np.asarray(baseline, dtype=np.float64), np.asarray(variant, dtype=np.float64)
    if base.shape != other.shape or base.ndim != 1 or base.size == 0:
        raise ValueError(f"baseline, variant: want equal, non-empty per-seed lists, got {base.shape}, {other.shape}")
    scale = 100.0 / float(base.mean())
    diffs = (other - base) * scale
    mean = float(diffs.mean())
    if diffs.size < 2:
        return PairedChange(mean, math.nan, math.nan)
    half = float(stats.t.ppf(0.5 + confidence / 2, diffs.size - 1) * diffs.std(ddof=1) / math.sqrt(diffs.size))
    return PairedChange(mean, mean - half, mean + half)
