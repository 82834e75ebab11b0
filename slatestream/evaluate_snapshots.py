"""`slatestream evaluate --snapshot LABEL=POLICY:DIR[,DIR...][@TIME]`: fixed learned states to evaluate.

DIR is a worker's data directory (SLATESTREAM_STORE_DIR) or a state store (a RocksDB directory,
e.g. `slatestream run --state DIR`). Several worker data directories, comma-separated, are one
deployment's workers: together they must hold every partition, and where a partition is in two
the newer copy is read (`slatestream.worker_snapshot.open_worker_snapshots`). POLICY is a policy
name (every request ranked with that policy's state, whatever its scenario), or `routed`: each
request ranked as the worker routes it, with the Engine of its scenario's policy under the
configuration (`online.evaluation.snapshots.RoutedSnapshot`). TIME (ISO 8601 with a zone): when
the state was taken; the snapshot is evaluated on the rounds from then on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from online.config import SlatestreamConfig
from online.evaluation.driver import PolicyVariant
from online.evaluation.snapshots import ROUTED, RoutedSnapshot, ShardedSnapshot
from online.state import StateStore
from slatestream.evaluate_embedding import BROKER_ENV
from slatestream.options import broker_settings, policy_names, stream_settings
from slatestream.snapshot_freshness import check_against_changelog
from slatestream.store import RocksDictStore
from slatestream.worker_snapshot import WorkerSnapshot, WorkerSnapshotError, open_worker_snapshots, worker_partitions

SNAPSHOT_METAVAR = "LABEL=POLICY|routed:DIR[,DIR...][@TIME]"


@dataclass(frozen=True)
class Snapshots:
    """The fixed variants of every --snapshot, what each reads (`sources`: label -> its policies
    and the directory serving each partition, for evaluation.json) and one report line each."""

    variants: list[PolicyVariant]
    sources: dict[str, dict[str, Any]]
    notes: list[str]


def snapshot_variants(config: SlatestreamConfig, specs: tuple[str, ...], from_file: bool,
                      stores: list[Any], fresh_only: bool = False) -> Snapshots:
    """A fixed `PolicyVariant` per --snapshot spec (module doc); the stores it opens are appended
    to `stores`, for the caller to close. With `fresh_only` (--fresh-snapshots) a worker data
    directory's copies behind the state changelog, or read without a broker to check them
    against, are refused (ClickException) instead of evaluated and reported."""
    variants, sources, notes = [], {}, []
    groups = config.policy_groups() if from_file else {}
    for spec in specs:
        label, name, directories, since = parse_spec(spec)
        if name == ROUTED:
            policies = tuple(config.policy_groups())
        else:
            policy_names(name, "--snapshot")
            policies = (name,)
        state, source = open_snapshot(directories, policies, stores, fresh_only)
        if name == ROUTED:
            variants.append(PolicyVariant(ROUTED, label=label, state=RoutedSnapshot(config, state), since=since))
        else:
            variants.append(PolicyVariant(config.build_policy(name) if name in groups else name, label=label,
                                          state=state, since=since))
        sources[label] = {"policy": name, "policies": list(policies), **source}
        notes.append(f"Snapshot {label} ({name}: {', '.join(policies)}): {source['described']}.")
    return Snapshots(variants, sources, notes)


def parse_spec(spec: str) -> tuple[str, str, list[Path], datetime | None]:
    """(label, policy or `routed`, directories, time taken) of LABEL=POLICY:DIR[,DIR...][@TIME];
    one DIR that exists whole is one directory even with a comma in its name."""
    label, _, rest = spec.partition("=")
    name, _, directory = rest.partition(":")
    since = None
    if "@" in directory:
        directory, _, taken = directory.rpartition("@")
        try:
            since = datetime.fromisoformat(taken)
        except ValueError as error:
            raise click.BadParameter(f"{taken!r}: not an ISO 8601 time", param_hint="--snapshot") from error
        if since.tzinfo is None:
            raise click.BadParameter(f"{taken!r}: give a timezone (e.g. Z)", param_hint="--snapshot")
    parts = [directory] if Path(directory).is_dir() else directory.split(",")
    if not label or not name or not all(parts):
        raise click.BadParameter(f"{spec!r}: want {SNAPSHOT_METAVAR}", param_hint="--snapshot")
    return label, name.strip(), [Path(part) for part in parts], since


def open_snapshot(directories: list[Path], policies: tuple[str, ...], stores: list[Any],
                  fresh_only: bool = False) -> tuple[StateStore | ShardedSnapshot, dict[str, Any]]:
    """The state in `directories` (the data directories of a deployment's workers, every partition
    routed by user as SLATESTREAM_PARTITIONS partitions route them; or one state store) reading
    `policies`' keys, and where it came from; its stores appended to `stores`. `fresh_only`: as
    `snapshot_variants` (a single state store has no changelog and is read as it is)."""
    for directory in directories:
        if not directory.is_dir():
            raise click.BadParameter(f"{directory}: not a state store or worker data directory",
                                     param_hint="--snapshot")
    if len(directories) > 1 or worker_partitions(directories[0]):
        try:
            snapshot = open_worker_snapshots(directories, stream_settings().partitions, policies)
        except WorkerSnapshotError as error:
            raise click.BadParameter(str(error), param_hint="--snapshot") from error
        stores.extend(snapshot.stores)
        checked, freshness = changelog_freshness(snapshot, policies, fresh_only)
        return snapshot.sharded, {**snapshot.to_dict(), "changelog": checked,
                                  "described": f"{snapshot.describe()}; {freshness}"}
    try:
        store = RocksDictStore(directories[0])
    except Exception as error:  # rocksdict's errors (a lock held by a running process, ...) name the cause
        raise click.BadParameter(f"{directories[0]}: cannot open the state store ({error})",
                                 param_hint="--snapshot") from error
    stores.append(store)
    return store, {"store": str(directories[0]), "described": f"the state store {directories[0]}"}


def changelog_freshness(snapshot: WorkerSnapshot, policies: tuple[str, ...],
                        fresh_only: bool = False) -> tuple[dict[str, Any] | None, str]:
    """(for evaluation.json, for the report) whether the copies read are as far as the state
    changelog (`slatestream.snapshot_freshness`), when a broker is configured (SLATESTREAM_BROKER_URL,
    checked first as every command checks it); a copy behind it is also said on stderr. With
    `fresh_only` a copy behind it, or no broker to check, is a ClickException instead."""
    if not os.environ.get(BROKER_ENV):
        if fresh_only:
            raise click.ClickException(f"--fresh-snapshots: cannot check {snapshot.describe()} against the state "
                                       f"changelog: set {BROKER_ENV} to the deployment's broker")
        return None, f"not checked against the state changelog ({BROKER_ENV} unset)"
    settings = broker_settings()
    try:
        check = check_against_changelog(settings, snapshot.served, policies)
    except TimeoutError as error:
        raise click.ClickException(f"--snapshot: reading the state changelog: {error}") from error
    described = check.describe(snapshot.served)
    if check.lags and fresh_only:
        raise click.ClickException(f"--fresh-snapshots: --snapshot {described}")
    if check.lags:
        click.echo(f"warning: --snapshot {described}", err=True)
    return check.to_dict(), described


def check_snapshot_embeddings(snapshots: Snapshots, version: str) -> None:
    """ClickException when a snapshot's state was learned over other item vectors than this
    evaluation embeds with (each of its policies' "<policy>/embedding" key: encoder, d and
    projection)."""
    for variant in snapshots.variants:
        label = variant.label or ""
        names = snapshots.sources[label]["policies"]
        state = variant.state.state if isinstance(variant.state, RoutedSnapshot) else variant.state
        held = state.stores.values() if isinstance(state, ShardedSnapshot) else [state] if state is not None else []
        for store in held:
            for name in names:
                stored = store.get(f"{name}/embedding")
                if stored is not None and stored.decode() != version:
                    raise click.ClickException(
                        f"--snapshot {label}: its state was learned over item vectors {stored.decode()!r}, this "
                        f"evaluation embeds with {version!r}: --projection topic (the worker's, from the broker) or "
                        "a FILE from `slatestream projection show --out`, and the encoder and --dim it was learned "
                        "with")
