"""Cost per event as the catalog grows: rank + observe with feedback every round, per policy.

    python bench/per_event_cost.py [--sizes 1000,10000,100000,1000000] [--rounds 300]
                                   [--policies bernoulli_ts,linear_ts,river_ctr] [--store rocksdict|memory]

For each catalog size, every policy's engine (state in rocksdict, the embedded default)
first learns one impression of every item (so per-item state covers the whole catalog)
and serves 20 untimed rounds (the warm-up's last batch labels every exposure at once: what
it leaves to free is not per-event cost), then serves `rounds` rounds: rank 100 random
candidates for one of 100 users, observe the impression of the slate (and a click on its
top item three rounds in ten) in its own call,
as a service that learns from every event as it comes. Prints the CPU time per observed
event (of the process, and of the engine's thread alone: RocksDB compacts what the warm-up
wrote in background threads for a while) and per rank at each size, and the ratio to the
smallest size (the baseline run in the same process): flat means the cost does not grow
with the catalog.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from online.catalog import Catalog
from online.engine import Engine, EngineConfig
from online.events import Click, Impression, Item, RankRequest, ShownItem
from online.policies import make_policy
from online.state import InMemoryStore, StateStore
from slatestream.store import RocksDictStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DIM = 16
USERS = 100
CANDIDATES = 100


def catalog_of(n_items: int) -> Catalog:
    rng = np.random.default_rng(n_items)
    vectors = rng.standard_normal((n_items, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    catalog = Catalog(dim=DIM)
    catalog.upsert([Item(item_id=f"i{n}", fields={"title": "t"}, time=T0) for n in range(n_items)], vectors)
    return catalog


def warm_up(engine: Engine, n_items: int) -> None:
    """One impression of every item (ten per impression), then one event an hour later so
    that a delayed-feedback join labels them all (river) before the measured rounds."""
    impressions: list[Impression | Click] = []
    for start in range(0, n_items, 10):
        shown = tuple(ShownItem(item_id=f"i{n}", position=n - start) for n in range(start, min(start + 10, n_items)))
        impressions.append(Impression(event_id=f"w{start}", request_id=f"w{start}", user_id=f"u{start % USERS}",
                                      shown=shown, time=T0))
    for first in range(0, len(impressions), 5_000):
        engine.observe(impressions[first : first + 5_000])
    later = T0 + timedelta(hours=1)
    engine.observe([Impression(event_id="flush", request_id="flush", user_id="u0", time=later,
                               shown=(ShownItem(item_id="i0", position=0),))])


def serve(engine: Engine, n_items: int, rounds: int, seed: int) -> tuple[float, float, float, int]:
    """(CPU seconds observing, of them in this thread, CPU seconds ranking, events observed)
    over `rounds` rounds."""
    rng = np.random.default_rng(seed)
    observing = observing_here = ranking = 0.0
    events = 0
    for step in range(rounds):
        now = T0 + timedelta(hours=1, seconds=step)
        candidates = tuple(f"i{n}" for n in rng.choice(n_items, CANDIDATES, replace=False))
        request = RankRequest(request_id=f"q{step}", user_id=f"u{step % USERS}", k=10, time=now,
                              candidates=candidates)
        started = time.process_time()
        slate = engine.rank(request)
        ranking += time.process_time() - started
        shown = tuple(ShownItem(item_id=item.item_id, position=item.position) for item in slate.items)
        feedback: list[Impression | Click] = [Impression(event_id=f"e{step}", request_id=request.request_id,
                                                         user_id=request.user_id, shown=shown, time=now)]
        if rng.random() < 0.3:
            feedback.append(Click(event_id=f"c{step}", request_id=request.request_id, user_id=request.user_id,
                                  item_id=shown[0].item_id, time=now))
        for event in feedback:
            started, here = time.process_time(), time.thread_time()
            engine.observe([event])
            observing += time.process_time() - started
            observing_here += time.thread_time() - here
        events += len(feedback)
    return observing, observing_here, ranking, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--policies", default="bernoulli_ts,linear_ts,river_ctr")
    parser.add_argument("--store", choices=["rocksdict", "memory"], default="rocksdict")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sizes = [int(size) for size in args.sizes.split(",")]
    policies = args.policies.split(",")
    baseline: dict[str, tuple[float, float, float]] = {}
    print(f"per-event cost, one event per observe call, {CANDIDATES} candidates per rank, d={DIM}, "
          f"{args.rounds} rounds, store={args.store}; CPU time of the process (RocksDB's background threads "
          "included) and of the engine's thread alone")
    print(f"{'items':>10s} {'policy':>14s} {'observe us/event':>17s} {'ratio':>7s} {'same, thread':>13s} "
          f"{'ratio':>7s} {'rank us':>9s} {'ratio':>7s}")
    for size in sizes:
        catalog = catalog_of(size)
        for name in policies:
            store: StateStore = InMemoryStore() if args.store == "memory" else RocksDictStore(tempfile.mkdtemp())
            engine = Engine(make_policy(name), store, catalog, np.random.default_rng(1), config=EngineConfig())
            warm_up(engine, size)
            serve(engine, size, 20, seed=1)  # untimed: what the warm-up leaves to free goes here
            observing, observing_here, ranking, events = serve(engine, size, args.rounds, seed=2)
            per_event, here = observing / events * 1e6, observing_here / events * 1e6
            per_rank = ranking / args.rounds * 1e6
            first = baseline.setdefault(name, (per_event, here, per_rank))
            print(f"{size:>10,d} {name:>14s} {per_event:>17,.0f} {per_event / first[0]:>6.2f}x {here:>13,.0f} "
                  f"{here / first[1]:>6.2f}x {per_rank:>9,.0f} {per_rank / first[2]:>6.2f}x", flush=True)
            store.close()


if __name__ == "__main__":
    main()
