"""The worker's item embedding: its encoder (BERT on ONNX Runtime by default) behind an embedding
cache, and the projection every worker shares (streams.projection).

At start-up the worker reads the projection of its encoder and d from the projection topic. When
none is published yet, the first items it embeds settle it: the projection is fitted on them and
on the items already in the items topic (up to `fit_items`), published, and the first published
one adopted (another worker may have won the race), before any vector is computed. An encoder
as wide as d needs no projection.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from kafka import KafkaConsumer, TopicPartition

from encoders.base import Encoder
from encoders.embedding import ItemEmbedding, item_texts
from encoders.projection import PcaProjection
from online.events import EventDecodeError, Item, decode_event
from streams.projection import ProjectionError, agree_on_projection, ensure_projection_topic, read_projection
from streams.settings import StreamSettings
from streams.topics import TopicNames

log = logging.getLogger("slatestream.worker")
FIT_SEED = 0


def items_in_topic(settings: StreamSettings, limit: int, timeout_s: float = 10.0) -> list[Item]:
    """Up to `limit` items of the items topic, read from its beginning (bad records skipped)."""
    topic = TopicNames.from_settings(settings).items
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=None, enable_auto_commit=False,
                             client_id=f"{settings.app_id}-projection-fit", fetch_max_wait_ms=100)
    items: dict[str, Item] = {}
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        polls = int(timeout_s / 0.2)
        while len(items) < limit and polls > 0 and any(consumer.position(tp) < end for tp, end in ends.items()):
            polls -= 1
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    try:
                        event = decode_event(record.value or b"")
                    except EventDecodeError:
                        continue
                    if isinstance(event, Item):
                        items.setdefault(event.item_id, event)
    finally:
        consumer.close(autocommit=False)
    return [items[item_id] for item_id in sorted(items)[:limit]]


class WorkerEmbedding:
    """Items -> float32[n, dim] bandit vectors, with the shared projection (see the module doc).

    Args:
        settings: where the projection and items topics are.
        encoder: the text encoder (its fingerprint names the projection).
        dim: the bandit's d.
        fit_items: the most items a projection is fitted on.
        cache_dir: the embedding cache (RocksDB) directory, or None.
    """

    def __init__(self, settings: StreamSettings, encoder: Encoder, dim: int, fit_items: int,
                 cache_dir: Path | None = None) -> None:
        if encoder.dim < dim:
            raise ValueError(f"encoder dim {encoder.dim} < bandit dim {dim}")
        self.settings = settings
        self.dim = dim
        self.fit_items = fit_items
        self.key = f"{encoder.fingerprint}/d{dim}"
        self.encoded = ItemEmbedding(encoder, encoder.dim, cache_dir=cache_dir)
        self.embedding: ItemEmbedding | None = None
        if encoder.dim == dim:
            self.embedding = self.encoded
        else:
            ensure_projection_topic(settings)
            found = read_projection(settings, self.key)
            if found is not None:
                self._adopt(found.projection, f"read from the projection topic (offset {found.offset}, fitted on "
                                              f"{found.fitted_on} items)")

    def _adopt(self, projection: PcaProjection, how: str) -> None:
        self.embedding = ItemEmbedding(self.encoded.encoder, self.dim, projection)
        log.info("item embedding: %s; projection %s %s", self.embedding.description, projection.version, how)

    def _agree(self, items: Sequence[Item]) -> None:
        def fit() -> tuple[PcaProjection, int]:
            known = {item.item_id: item for item in items_in_topic(self.settings, self.fit_items)}
            known.update((item.item_id, item) for item in items)
            chosen = [known[item_id] for item_id in sorted(known)[: self.fit_items]]
            if len(chosen) < 2:
                raise ProjectionError(f"the shared projection is fitted on at least 2 items, {len(chosen)} known: "
                                      "publish the catalog, or fit one with `slatestream projection fit`")
            vectors = self.encoded.encode_texts(item_texts(chosen))
            return PcaProjection.fit(vectors, self.dim, FIT_SEED), len(chosen)

        agreed = agree_on_projection(self.settings, self.key, fit)
        self._adopt(agreed.projection, f"agreed through the projection topic (offset {agreed.offset}, fitted on "
                                       f"{agreed.fitted_on} items)")

    @property
    def version(self) -> str:
        """The embedding's version ("" until the projection is settled)."""
        return "" if self.embedding is None else self.embedding.version

    @property
    def device(self) -> str:
        """Where the encoder runs (an ONNX Runtime execution provider, or "cpu")."""
        return self.encoded.device

    @property
    def description(self) -> str:
        if self.embedding is not None:
            return self.embedding.description
        encoder = self.encoded.encoder
        return (f"{encoder.name} (D={encoder.dim}) -> d={self.dim} (projection not settled yet: agreed through "
                f"the projection topic on the first items) on {self.encoded.device}")

    def __call__(self, items: Sequence[Item]) -> npt.NDArray[np.float32]:
        """float32[len(items), dim] unit vectors (the first call may settle the projection)."""
        if self.embedding is None:
            self._agree(items)
        assert self.embedding is not None
        return self.embedding(items)

    def text(self, text: str) -> npt.NDArray[np.float32]:
        """float32[dim]: a request's text in the items' space (zeros until the projection is settled)."""
        if self.embedding is None:
            return np.zeros(self.dim, np.float32)
        return self.embedding.text(text)

    def close(self) -> None:
        self.encoded.close()
