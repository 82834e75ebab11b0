"""The streaming worker: a faust-streaming app whose agents only translate records.

- `run`: create the topics, build and run the worker (`run_worker`);
- `topology`: what the worker reads, runs and writes, in parts testable without a broker;
- `core`: decode, validate, dedupe, hand records to the engines (`WorkerCore`, no Faust);
- `lanes`: batch lanes, records of chosen topics a fetch at a time, and the group commit;
- `partition_state`, `table_store`: each partition's RocksDB and its changelog, state values
  with the offsets they include (exactly-once effect on the learned state);
- `app`, `config`: the Faust app from `StreamSettings`, the worker's runtime settings;
- `faust_private`: every private name of faust-streaming the worker uses, version-checked.

Design and guarantees: docs/worker.md.
"""
