"""Rank latency with retrieval (requests without candidates) over large catalogs, and memory per item.

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/retrieval_latency.py [--items 100000,1000000]
        [--dim 32] [--requests 300] [--users 200] [--device auto] [--memory-split]

For each catalog size n: a `Catalog` of n items (seeded random unit vectors at d; each item has
the simulator's five attributes and a provider, as real items do, parsed from JSON as the worker
parses them) and the retrieval the worker
wires (`ScorerRetriever(make_scorer(device), catalog)`, streams/worker/run.py and
slatestream/options.py `retriever_for`), behind the default scenario's `Engine` (linear TS, 64
draws, retrieval of 200) built by `ScenarioRouter` as the worker builds it, user state in
rocksdict. Users have learned (impressions and clicks on random items) before the timed
requests, which carry no candidates: `Engine.rank` retrieves the 200 best active items for the
user's posterior mean, then samples, ranks and computes propensities over them.

Baseline in the same process, over the same matrix and the same user vectors: a bare numpy
matmul + argpartition top-200 (the floor of any exact retrieval). The steps take turns request by
request, so a change of the (shared) machine's load hits them alike. Also printed: the retriever's
own call (`ScorerRetriever(query, 200, active rows)`, what `Engine.candidate_rows` asks) and the
scorer asked without a row restriction, to split the rank time.

Memory per item: tracemalloc's traced bytes after building the catalog and syncing the
retriever's mirror (numpy reports its buffers to tracemalloc), divided by n, next to the raw
float32 vector (d * 4 bytes). Random unit vectors are enough for latency and memory (retrieval
does the same work whatever the vectors say); nothing here measures ranking quality.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.command_line import command_line  # noqa: E402
from encoders.retrieval import ScorerRetriever  # noqa: E402
from encoders.scoring import make_scorer  # noqa: E402
from online.catalog import Catalog  # noqa: E402
from online.config import DEFAULT_SCENARIO, SlatestreamConfig  # noqa: E402
from online.engine import Engine  # noqa: E402
from online.events import Click, Impression, Item, RankRequest, ShownItem  # noqa: E402
from online.scenarios import ScenarioRouter  # noqa: E402
from online.simulation.catalog import ATTRIBUTES, VOCABULARIES  # noqa: E402
from slatestream.store import RocksDictStore  # noqa: E402

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CHUNK = 50_000


def percentiles_ms(samples_s: list[float]) -> tuple[float, float]:
    """(p50, p99) in ms."""
    p50, p99 = np.percentile(np.asarray(samples_s) * 1e3, [50, 99])
    return float(p50), float(p99)


def make_items(start: int, count: int, rng: np.random.Generator) -> list[Item]:
    """Items start..start+count-1 with the simulator's five attributes (seeded) and their brand as
    provider, parsed from JSON as the worker's catalog follower parses them (each item holds its
    own strings and time, as in a worker)."""
    codes = [rng.integers(len(vocabulary), size=count) for vocabulary in VOCABULARIES]
    items = []
    for n in range(count):
        values = [vocabulary[int(column[n])] for vocabulary, column in zip(VOCABULARIES, codes, strict=True)]
        attributes = ",".join(f'"{name}":"{value}"' for name, value in zip(ATTRIBUTES, values, strict=True))
        items.append(Item.model_validate_json(
            f'{{"type":"item","item_id":"i{start + n:07d}","fields":{{"title":"item {start + n}"}},'
            f'"attributes":{{{attributes}}},"provider":"{values[-1]}","time":"2026-01-01T00:00:00Z"}}'))
    return items


def unit_vectors(count: int, dim: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """float32[count, dim] seeded random unit rows."""
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def build(n_items: int, dim: int, device: str, rng: np.random.Generator, split: bool = False,
          ) -> tuple[Catalog, ScorerRetriever, int, float, list[str]]:
    """The catalog of n_items and its retriever (mirror synced); returns them with the bytes
    tracemalloc saw allocated and kept by building both, the seconds it took (traced) and, with
    `split`, where those bytes were allocated (lines: bytes per item at a source line)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    start_snapshot = tracemalloc.take_snapshot() if split else None
    started = time.perf_counter()
    catalog = Catalog(dim=dim)
    retriever = ScorerRetriever(make_scorer(device), catalog)
    for start in range(0, n_items, CHUNK):
        count = min(CHUNK, n_items - start)
        catalog.upsert(make_items(start, count, rng), unit_vectors(count, dim, rng))
    retriever.sync()
    seconds = time.perf_counter() - started
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    where = []
    if start_snapshot is not None:
        for stat in tracemalloc.take_snapshot().compare_to(start_snapshot, "lineno")[:8]:
            frame = stat.traceback[0]
            where.append(f"{stat.size_diff / n_items:6.1f} bytes per item at {Path(frame.filename).name}:"
                         f"{frame.lineno}")
    tracemalloc.stop()
    return catalog, retriever, kept, seconds, where


def learned_engine(catalog: Catalog, retriever: ScorerRetriever, users: int, rng: np.random.Generator,
                   store_dir: str) -> Engine:
    """The default scenario's Engine as the worker builds it (ScenarioRouter, the default
    configuration: linear TS, 64 draws, retrieval of 200), its users given 5 impressions of 10
    random items and a click each."""
    config = SlatestreamConfig()
    router = ScenarioRouter(config, RocksDictStore(store_dir), catalog, rng, retriever=retriever)
    engine = router.engine_for(DEFAULT_SCENARIO)
    assert engine is not None
    history: list[Impression | Click] = []
    for n in range(users * 5):
        user = f"u{n % users}"
        shown = rng.choice(len(catalog), 10, replace=False)
        history.append(Impression(event_id=f"e{n}", request_id=f"w{n}", user_id=user, time=NOW,
                                  shown=tuple(ShownItem(item_id=catalog.ids[i], position=p)
                                              for p, i in enumerate(shown))))
        history.append(Click(event_id=f"c{n}", request_id=f"w{n}", user_id=user, item_id=catalog.ids[shown[0]],
                             time=NOW))
    engine.observe(history)
    return engine


def interleaved(steps: dict[str, Callable[[int], object]], count: int) -> dict[str, list[float]]:
    """Seconds of each step(i) for i in range(count), the steps taking turns within each i (so a
    change of the machine's load hits them all alike)."""
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for index in range(count):
        for name, step in steps.items():
            started = time.perf_counter()
            step(index)
            samples[name].append(time.perf_counter() - started)
    return samples


def measure(n_items: int, args: argparse.Namespace) -> dict[str, float]:
    """Every figure for one catalog size (printed as it goes)."""
    rng = np.random.default_rng([args.seed, n_items])
    catalog, retriever, kept, build_s, where = build(n_items, args.dim, args.device, rng, args.memory_split)
    raw = args.dim * 4
    print(f"n = {n_items:,} items, d = {args.dim}, scorer {retriever.scorer.backend} on {retriever.scorer.device}: "
          f"built in {build_s:.1f} s (traced)")
    print(f"  memory: {kept / n_items:,.0f} bytes per item (catalog + retriever mirror, tracemalloc) vs "
          f"{raw} bytes of raw float32 vector: {kept / n_items / raw:.1f}x")
    for line in where:
        print(f"    {line}")
    with tempfile.TemporaryDirectory() as store_dir:
        engine = learned_engine(catalog, retriever, args.users, rng, store_dir)
        size = engine.config.retrieval_size
        requests = [RankRequest(request_id=f"r{n}", user_id=f"u{n % args.users}", k=10, time=NOW)
                    for n in range(args.requests)]
        queries = [np.asarray(engine.policy.user_vector(engine.global_state, engine.load_user(request.user_id),
                                                        request.scenario)[: args.dim], dtype=np.float32)
                   for request in requests]  # what Engine.candidate_rows retrieves with (ranking learns nothing)
        active = np.flatnonzero(catalog.active).astype(np.int64)
        matrix = catalog.vectors

        def floor(index: int) -> None:
            scores = matrix @ queries[index]
            np.argpartition(-scores, size - 1)[:size]

        steps: dict[str, Callable[[int], object]] = {
            "rank": lambda i: engine.rank(requests[i]),
            "retriever": lambda i: retriever(queries[i], size, active),
            "scorer": lambda i: retriever.scorer.topk(queries[i][None, :], size),
            "floor": floor,
        }
        interleaved(steps, 5)  # warm: first scorer call, allocator
        samples = interleaved(steps, len(requests))
        slate = engine.rank(requests[0])
        assert len(slate.items) == 10, slate
        exact = np.argpartition(-(matrix @ queries[0]), size - 1)[:size]
        if set(retriever(queries[0], size, active).tolist()) != set(exact.tolist()):
            raise AssertionError("the retriever's top rows differ from the exact top rows")
    figures = {"bytes_per_item": kept / n_items, "raw_bytes": float(raw)}
    for name, seconds in samples.items():
        figures[f"{name}_p50"], figures[f"{name}_p99"] = percentiles_ms(seconds)
    print(f"  Engine.rank, no candidates ({args.requests} requests, {args.users} learned users, top {size} "
          f"retrieved, {engine.config.n_draws} draws): p50 {figures['rank_p50']:.2f} ms, "
          f"p99 {figures['rank_p99']:.2f} ms")
    print(f"  of which retrieval, ScorerRetriever(query, {size}, every active row): p50 {figures['retriever_p50']:.2f} "
          f"ms, p99 {figures['retriever_p99']:.2f} ms; the scorer without a row restriction: p50 "
          f"{figures['scorer_p50']:.2f} ms, p99 {figures['scorer_p99']:.2f} ms")
    print(f"  baseline, bare numpy matmul + argpartition top-{size} over the same matrix: p50 "
          f"{figures['floor_p50']:.2f} ms, p99 {figures['floor_p99']:.2f} ms")
    print(f"  ratio Engine.rank / baseline: p50 {figures['rank_p50'] / figures['floor_p50']:.1f}x, "
          f"p99 {figures['rank_p99'] / figures['floor_p99']:.1f}x")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="100000,1000000", help="catalog sizes, comma-separated")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--device", default="auto", help="make_scorer's device: auto (CUDA when present), cpu, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-split", action="store_true",
                        help="also print where the catalog's bytes were allocated (a tracemalloc snapshot: slow "
                             "and memory-hungry above ~100,000 items)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.items.split(",")]
    if min(sizes) < 1000 or args.requests < 1 or args.users < 1:
        parser.error("--items must be >= 1000 each (the engine retrieves 200), --requests and --users >= 1")
    for n_items in sizes:
        measure(n_items, args)
        gc.collect()
    print(command_line("bench/retrieval_latency.py"))


if __name__ == "__main__":
    main()
