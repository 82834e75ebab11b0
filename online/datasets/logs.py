"""A logged stream named by one string ("obd:PATH", "mind:PATH", "events:PATH"), ready for the
evaluation driver: its events (lazy), catalog items, feature map and what a report should say.

    loaded = load_log("obd:/data/obd", behavior_policy="random", campaign="all")
    result = evaluate_log(loaded.events, policies, embed, dim, features=loaded.features)

Raises `LogSpecError` (a ValueError naming the problem) for a spec it cannot load.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from online.datasets.event_log import AnyEvent, read_events
from online.datasets.mind import mind_events, read_mind_news
from online.datasets.obd import load_obd_arrays, obd_events, obd_items, obd_paths
from online.events import Item, RankRequest
from online.features import ContextCrossFeatures, FeatureMap, ItemFeatures

LOG_KINDS = ("obd", "mind", "events")
OBD_CAVEAT = (
    "The OBD sample shipped with obp has 10,000 rows per log and only ~35-40 clicks, so these "
    "intervals validate the estimators (the logging policy's own estimate must cover its on-policy "
    "CTR) but are far too wide to rank learning policies. Policy quality is shown on the simulator "
    "(`slatestream demo`)."
)
MIND_CAVEAT = "MIND logs carry no propensities: only replay and the metrics apply (no IPS, SNIPS or DR)."


class LogSpecError(ValueError):
    """A log spec that names no loadable log (its message says why)."""


@dataclass(frozen=True)
class LoadedLog:
    """A log ready for the driver: events (lazy), items to fit the projection on, the
    feature map, the expected number of rounds (for a progress bar), a description,
    the default logging policy for the sanity check, caveats for the report, and whether it
    was served uniformly at random over the catalog (None: unknown, the slates say)."""

    events: Iterable[AnyEvent]
    items: list[Item]
    features: FeatureMap
    rounds: int | None
    description: str
    logging_policy: str | None
    caveats: tuple[str, ...] = ()
    uniform: bool | None = None


def log_path(data: str) -> tuple[str, Path]:
    """(kind, path) of a spec "obd:PATH", "mind:PATH" or "events:PATH"; LogSpecError otherwise."""
    kind, sep, raw_path = data.partition(":")
    if not sep or kind not in LOG_KINDS or not raw_path:
        raise LogSpecError("want obd:PATH, mind:PATH or events:PATH")
    path = Path(raw_path)
    if not path.exists():
        raise LogSpecError(f"{path} does not exist")
    return kind, path


def load_log(data: str, behavior_policy: str = "random", campaign: str = "all") -> LoadedLog:
    """The log named by `data` (OBD takes its behaviour policy and campaign)."""
    kind, path = log_path(data)
    if kind == "obd":
        return _obd_log(path, behavior_policy, campaign)
    if kind == "mind":
        return _mind_log(path)
    events = list(read_events(path))
    items = [event for event in events if isinstance(event, Item)]
    rounds = sum(1 for event in events if isinstance(event, RankRequest))
    return LoadedLog(events, items, ItemFeatures(), rounds, f"event log ({path})", None)


def _obd_log(path: Path, behavior_policy: str, campaign: str) -> LoadedLog:
    log_csv, item_csv = obd_paths(path, behavior_policy, campaign)
    if not log_csv.exists():
        raise LogSpecError(f"no OBD log at {log_csv}")
    arrays = load_obd_arrays(log_csv)
    items = list(obd_items(item_csv, datetime.now(UTC)))
    return LoadedLog(
        obd_events(log_csv, item_csv), items, ContextCrossFeatures(arrays.context_names), len(arrays.rewards),
        f"OBD {behavior_policy}/{campaign} ({log_csv})", "uniform_random" if behavior_policy == "random" else None,
        (OBD_CAVEAT,), behavior_policy == "random",
    )


def _mind_log(path: Path) -> LoadedLog:
    behaviors, news = (path / "behaviors.tsv", path / "news.tsv") if path.is_dir() else (path, path.with_name(
        "news.tsv"))
    with behaviors.open(encoding="utf-8") as handle:
        rounds = sum(1 for line in handle if line.strip())
    items = list(read_mind_news(news, datetime.now(UTC)))
    return LoadedLog(mind_events(behaviors, news), items, ItemFeatures(), rounds, f"MIND ({behaviors})", None,
                     (MIND_CAVEAT,))
