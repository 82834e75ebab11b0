"""Items embedded per second INSIDE a real worker (BERT on ONNX Runtime, fp32 and int8), next to
the same encoder called directly in this process.

    .venv/bin/python bench/worker_embedding.py [--items 3000] [--variants fp32,int8] [--device auto]

Starts its own broker (deploy/kafka). Per variant, on a topic prefix of its own: this process
opens the encoder exactly as the worker does (`encoders.embedding.open_encoder("bert", int8=...)`,
the export cache of encoders/model_cache.py; a first int8 use exports it here, before any
timing) and encodes the N item texts directly (the baseline, items/s); it fits the shared
projection on those vectors and publishes it, as `slatestream projection fit` would, so the
worker reads it at start instead of fitting one on its first items (a one-off). Then
`python -m slatestream worker --config FILE --encoder bert` (FILE: `[embedding] int8 = ...`) is
started on a fresh store (no embedding cache hits), and once it is ready the N items (real
texts: the simulator's fashion titles and descriptions) are published to `<prefix>items`. The
window runs from the first item's send to the last record of `<prefix>catalog` (its CreateTime,
stamped by the worker when it handed the item with its vector to its producer); items/s = N /
window. The worker's path: Faust's items agent takes up to 500 items within 50 ms, decodes and
validates them, embeds them (tokenizer, ONNX session, projection), adds them to its catalog and
writes them to the catalog topic, which its catalog follower reads back. Printed: both rates and
the ratio worker / bare per variant, the execution provider the worker reports
(`slatestream_execution_provider_info` on its /metrics), and when the
bench itself saw the last catalog record (a check from outside, later by up to a poll).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.command_line import command_line  # noqa: E402
from bench.scale_support import (  # noqa: E402
    catalog_records,
    execution_provider,
    free_port,
    load_broker,
    settle_projection,
    simulator_items,
    wait_catalog,
    worker_metrics,
    write_config,
)
from encoders.embedding import item_texts, open_encoder  # noqa: E402
from online.events import Item  # noqa: E402
from streams.control import ensure_control_topic  # noqa: E402
from streams.settings import StreamSettings  # noqa: E402
from streams.testing import WorkerProcess, publish  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

DIM = 32


@dataclass(frozen=True)
class VariantResult:
    """One variant's figures: items/s bare (before and after the worker ran) and in the worker."""

    variant: str
    provider: str
    bare_before: float
    bare_after: float
    worker: float
    window_s: float
    seen_s: float
    publish_s: float

    @property
    def bare(self) -> float:
        return (self.bare_before + self.bare_after) / 2


def bare_rate(encoder, texts: list[str]) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    """(items/s, vectors) of encoder.encode over all texts in one call (it batches by 64, sorted by length)."""
    started = time.perf_counter()
    vectors = encoder.encode(texts)
    return len(texts) / (time.perf_counter() - started), vectors


def run_variant(broker_url: str, variant: str, items: list[Item], device: str, tmp: Path) -> VariantResult:
    """Bare encode, projection settled, one worker embedding every item (see the module doc)."""
    int8 = variant == "int8"
    settings = StreamSettings(broker_url=broker_url, topic_prefix=f"emb-{variant}.", partitions=4,
                              broker_session_timeout_s=6.0)
    ensure_topics(settings)
    ensure_control_topic(settings)
    encoder = open_encoder("bert", device=device, int8=int8, progress=lambda message: print("  " + message))
    texts = item_texts(items)
    bare_before, vectors = bare_rate(encoder, texts)
    settle_projection(settings, encoder, vectors, DIM)  # type: ignore[arg-type]
    config = write_config(tmp / f"{variant}.toml", int8=int8, device=device, dim=DIM)
    log = tmp / f"worker-{variant}.log"
    args = ("--config", str(config), "--encoder", "bert", "--dim", str(DIM))
    port = free_port()
    with WorkerProcess(settings, tmp / f"store-{variant}", log, args, metrics_port=port) as worker:
        worker.wait_ready(timeout_s=600)
        provider = execution_provider(worker_metrics(port))
        first_sent = time.time()
        publish(settings, items)
        published = time.time()
        seen = wait_catalog(settings, len(items), timeout_s=1800)
        if "agreed through the projection topic" in worker.log_text():
            raise RuntimeError("the worker fitted a projection instead of reading the settled one")
    records = catalog_records(settings)
    ids = {record.item_id for record in records}
    if ids != {item.item_id for item in items}:
        raise RuntimeError(f"the catalog topic holds {len(ids)} distinct items, {len(items)} published")
    window = max(record.created_s for record in records) - first_sent
    bare_after, _ = bare_rate(encoder, texts)
    return VariantResult(variant, provider, bare_before, bare_after, len(items) / window, window,
                         seen - first_sent, published - first_sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--variants", default="fp32,int8", help="fp32, int8 or both, comma-separated")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or set(variants) - {"fp32", "int8"} or args.items < 2:
        parser.error("--variants: fp32 and/or int8; --items >= 2")
    items = simulator_items(args.items)
    texts = item_texts(items)
    print(f"{len(items):,} simulator items, {sum(map(len, texts)) / len(texts):.0f} characters of text on average")
    results = []
    with load_broker().KafkaBroker() as broker, tempfile.TemporaryDirectory(dir="/tmp/scale") as tmp:
        for variant in variants:
            result = run_variant(broker.url, variant, items, args.device, Path(tmp))
            results.append(result)
            print(f"{variant}: worker {result.worker:,.0f} items/s ({len(items):,} items from the first send to "
                  f"the last catalog record in {result.window_s:.1f} s; published in {result.publish_s:.1f} s; "
                  f"the bench saw the last one at {result.seen_s:.1f} s; provider {result.provider})")
            print(f"{variant}: bare encoder.encode in this process, same texts: {result.bare_before:,.0f} items/s "
                  f"before, {result.bare_after:,.0f} after; ratio worker / bare (their mean): "
                  f"{result.worker / result.bare:.2f}")
    if len(results) == 2:
        fp32, int8 = results
        print(f"int8 / fp32: worker {int8.worker / fp32.worker:.2f}x, bare {int8.bare / fp32.bare:.2f}x")
    print(command_line("bench/worker_embedding.py"))


if __name__ == "__main__":
    main()
