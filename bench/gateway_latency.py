"""What the HTTP gateway adds to a rank: its round trip against the client's own `request_slate`.

    .venv/bin/python bench/gateway_latency.py [--rounds 400] [--candidates 100] [--items 500]
        [--users 50] [--n-draws 64] [--seed 0]

Starts its own broker (deploy/kafka), one worker (WorkerProcess) and one gateway
(GatewayProcess: `slatestream gateway`), loads the catalog and a warm-up through the client,
then ranks --rounds requests one at a time (closed loop, no other load), alternating between
(a) `SlatestreamClient.request_slate` in this process (publish, flush, await the slate) and
(b) `POST /v1/rank` to the gateway with a keep-alive httpx client (the gateway publishes and
awaits the slate with its own SlatestreamClient). Both paths carry the same kind of request
(--candidates random catalog items, k = 10) for the same users, through the same worker, in
the same minutes. Prints p50 / p90 / p99 of both, the gateway's added time and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from bench.command_line import command_line  # noqa: E402
from bench.latency_support import LatencySummary  # noqa: E402
from bench.worker_throughput import load_broker  # noqa: E402
from online.events import RankRequest, Slate, decode_event  # noqa: E402
from streams.client import SlatestreamClient  # noqa: E402
from streams.settings import StreamSettings  # noqa: E402
from streams.testing.gateway_process import GatewayProcess  # noqa: E402
from streams.testing.worker_process import WorkerProcess  # noqa: E402
from streams.testing.workload import make_workload, publish  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402


def rank_pair(client: SlatestreamClient, http: httpx.Client, request: RankRequest, via_gateway_first: bool,
              ) -> tuple[float, float]:
    """(client round trip, gateway round trip) in seconds for two requests like `request`."""
    times: dict[str, float] = {}
    order = ("gateway", "client") if via_gateway_first else ("client", "gateway")
    for path in order:
        request_id = f"{request.request_id}-{path}"
        start = time.perf_counter()
        if path == "client":
            slate = client.request_slate(request.model_copy(update={"request_id": request_id}), timeout_s=30)
        else:
            answer = http.post("/v1/rank", params={"timeout_s": 30}, json={
                "request_id": request_id, "user_id": request.user_id, "candidates": list(request.candidates or ()),
                "k": request.k})
            answer.raise_for_status()
            slate = decode_event(answer.content)  # type: ignore[assignment]
        times[path] = time.perf_counter() - start
        assert isinstance(slate, Slate) and slate.request_id == request_id and len(slate.items) == request.k
    return times["client"], times["gateway"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400, help="requests per path")
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--n-draws", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=50, help="rounds per path not measured")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    workload = make_workload(n_users=args.users, n_items=args.items, n_requests=args.users, shown=5, seed=args.seed)
    item_ids = [item.item_id for item in workload.items]
    users = sorted({request.user_id for request in workload.requests})
    requests = [RankRequest(request_id=f"b{n}", user_id=users[n % len(users)], k=10, candidates=tuple(
        item_ids[int(row)] for row in rng.choice(len(item_ids), args.candidates, replace=False)))
        for n in range(args.warmup + args.rounds)]
    with load_broker().KafkaBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        settings = StreamSettings(broker_url=broker.url, topic_prefix="gw.", partitions=4,
                                  broker_session_timeout_s=6.0)
        ensure_topics(settings)
        worker = WorkerProcess(settings, Path(tmp) / "store", Path(tmp) / "worker.log",
                               ("--dim", "32", "--n-draws", str(args.n_draws), "--seed", str(args.seed)))
        with worker, GatewayProcess(settings, Path(tmp) / "gateway.log") as gateway, \
                SlatestreamClient(settings) as client, httpx.Client(base_url=gateway.url, timeout=60) as http:
            worker.wait_ready()
            gateway.wait_ready()
            publish(settings, workload.items)
            deadline = time.monotonic() + 120
            while worker.counts().get("items", 0) < len(workload.items):
                assert time.monotonic() < deadline, "the worker did not embed the catalog"
                time.sleep(0.5)
            pairs = [rank_pair(client, http, request, n % 2 == 1) for n, request in enumerate(requests)]
    measured = np.array(pairs[args.warmup:])
    direct, via = LatencySummary.of(list(measured[:, 0])), LatencySummary.of(list(measured[:, 1]))
    print(f"rank round trip, one at a time, {args.candidates} candidates, k=10, d=32, {args.n_draws} draws, "
          f"{args.rounds} per path after {args.warmup} warm-up (ms):")
    print(f"  client.request_slate       {direct.line()}")
    print(f"  gateway POST /v1/rank      {via.line()}")
    print(f"added by the gateway: p50 {via.p50 - direct.p50:+.2f} ms, p99 {via.p99 - direct.p99:+.2f} ms; "
          f"ratio gateway / client p50 {via.p50 / direct.p50:.2f}x, p99 {via.p99 / direct.p99:.2f}x")
    print(command_line("bench/gateway_latency.py"))


if __name__ == "__main__":
    main()
