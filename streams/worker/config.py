"""How a worker runs (its lanes, batches and commits): the runtime side. The model (scenarios,
policies, engine, embedding) is `online.config.SlatestreamConfig`; the broker, topics and store
are `streams.settings.StreamSettings`."""

from __future__ import annotations

from dataclasses import dataclass

from streams.worker.collector import YOUNG_THRESHOLD


@dataclass(frozen=True)
class WorkerConfig:
    """Runtime settings of a worker.

    Requests and feedback come through batch lanes (streams.worker.lanes): what one fetch
    brought, at most `request_batch_size` requests (ranked one by one; those ranked within
    `request_group_s` of each other made durable by one acknowledged flush, then answered; the
    next group is ranked while Kafka acknowledges it)
    or `batch_size` feedback records (learned per partition). A list only
    fills up under a backlog; then several events of one user fall in one partition's share and
    share that user's state read, Gram update and write, so larger lists learn faster, but each
    learn call holds the event loop (~20 us a record: ~0.5 s for a list of 26,000 of one
    partition; while requests come in, the calls are cut smaller, below). Items are taken up to `item_batch_size` within
    `batch_wait_s` (one embedding call per take). While the catalog is still empty (a fresh
    start), requests wait up to `empty_catalog_wait_s` for the items agent before they are
    ranked or dead-lettered.

    Learned state reaches the changelog in groups (a group commit): the feedback lane sends
    the last value of each key it wrote to the changelog and acks the records those writes
    came from when no record waits, or `flush_interval_s` after the last flush, or once
    `flush_max_keys` keys wait; a user hit by several batches in between costs one changelog
    record. Ranking reads the partition's table, which sees every write at once (but the request lane's
    flush before each group of slates sends the feedback lane's waiting writes too).

    While requests come in (the request lane took a list in the last `serving_window_s`), the
    feedback lane learns in pieces of at most `serving_piece_records` records, and before each
    learn call waits until the request lane holds nothing, at most `requests_first_wait_s`
    (streams.worker.paths.RequestsFirst).

    `seed` seeds each partition's random generator (with the partition number).
    `gc_young_threshold`: net allocations between the cyclic collector's young-generation
    passes, set once partitions are assigned (streams.worker.collector; Python's default 700).
    """

    batch_size: int = 32_000
    batch_wait_s: float = 0.05
    item_batch_size: int = 500
    request_batch_size: int = 64
    request_group_s: float = 0.005
    serving_piece_records: int = 1_000
    serving_window_s: float = 5.0
    requests_first_wait_s: float = 0.1
    flush_interval_s: float = 0.5
    flush_max_keys: int = 20_000
    empty_catalog_wait_s: float = 10.0
    seed: int = 0
    gc_young_threshold: int = YOUNG_THRESHOLD

    def __post_init__(self) -> None:
        if min(self.batch_size, self.item_batch_size, self.request_batch_size, self.flush_max_keys,
               self.gc_young_threshold, self.serving_piece_records) < 1:
            raise ValueError(f"WorkerConfig: batch sizes, flush_max_keys and gc_young_threshold must be >= 1: {self}")
        if min(self.batch_wait_s, self.flush_interval_s, self.empty_catalog_wait_s, self.request_group_s,
               self.requests_first_wait_s, self.serving_window_s) < 0:
            raise ValueError(f"WorkerConfig: times must be >= 0: {self}")
