"""The command line of deploy/kafka/broker.py: start, stop, status and restart a local broker.

    python deploy/kafka/broker.py start [--port 9092] [--controller-port 9093] [--dir DIR] [--keep]
    python deploy/kafka/broker.py status [--dir DIR]
    python deploy/kafka/broker.py stop [--dir DIR] [--keep]
    python deploy/kafka/broker.py restart [--dir DIR]

`start` launches a detached broker and records it in DIR/broker.json; `stop` ends it and
removes DIR; `--keep` makes `start` reuse DIR's data (KRaft metadata, topics, records) and,
unless given, the ports and `--set` properties of the broker that ran there, and makes `stop`
leave DIR in place; `restart` is `stop --keep` then `start --keep`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))
from broker import DEFAULT_CLI_DIR, MARKER, KafkaBroker, read_state
from broker_support import HOST, BrokerError, metadata_request, process_alive, terminate


def _cli_start(args: argparse.Namespace, keep: bool | None = None) -> int:
    """Start a detached broker; with --keep (or `keep`), on the dir's data and, unless ports
    or properties are given, on the ports and properties of the broker that ran there."""
    keep = args.keep if keep is None else keep
    state = (read_state(Path(args.dir).resolve()) if keep else None) or {}

    def port(given: int | None, key: str, default: int) -> int | None:
        chosen = given if given is not None else int(str(state.get(key, default)))
        return chosen or None  # 0: pick a free one

    given = dict(item.split("=", 1) for item in args.set)
    remembered = state.get("properties")
    properties = given or (dict(remembered) if isinstance(remembered, dict) else {})
    broker = KafkaBroker(port(args.port, "port", 9092), port(args.controller_port, "controller_port", 9093),
                         args.dir, properties=properties, detach=True, keep=keep)
    broker.start()
    took = broker.started_in_s or 0.0
    kept = "data kept" if broker.reused else "fresh data"
    print(f"kafka broker up on {broker.bootstrap} (pid {broker.pid}, {took:.1f} s, dir {broker.data_dir}, {kept})")
    print(f"export SLATESTREAM_BROKER_URL={broker.url}")
    return 0


def _cli_restart(args: argparse.Namespace) -> int:
    """Stop the broker of --dir (its data kept), then start it again on that data."""
    stopped = _stop_recorded(Path(args.dir).resolve(), args.timeout, sys.stderr)
    if stopped is None:
        return 1
    print(f"{stopped}, data kept")
    return _cli_start(args, keep=True)


def _stop_recorded(directory: Path, timeout_s: float, complain_to: TextIO) -> str | None:
    """Stop the broker whose state `directory` records (SIGTERM, SIGKILL after timeout_s) and
    say how; None, after saying so to `complain_to`, when it records none."""
    state = read_state(directory)
    if state is None:
        print(f"no broker state in {directory}", file=complain_to)
        return None
    clean = terminate(int(str(state["pid"])), timeout_s)
    return f"kafka broker pid {state['pid']} stopped ({'SIGTERM' if clean else 'SIGKILL'})"


def _cli_stop(args: argparse.Namespace) -> int:
    directory = Path(args.dir).resolve()
    stopped = _stop_recorded(directory, args.timeout, sys.stdout)
    if stopped is None:
        return 1
    if not args.keep and (directory / MARKER).exists():
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{stopped}, {f'kept {directory}' if args.keep else f'removed {directory}'}")
    return 0


def _cli_status(args: argparse.Namespace) -> int:
    directory = Path(args.dir).resolve()
    state = read_state(directory)
    if state is None:
        print(f"stopped (no broker state in {directory})")
        return 1
    pid, port = int(str(state["pid"])), int(str(state["port"]))
    try:
        metadata = metadata_request(HOST, port)
    except (OSError, BrokerError) as error:
        alive = "alive" if process_alive(pid) else "not running"
        print(f"not answering on {HOST}:{port} (pid {pid} {alive}): {error}")
        return 1
    print(f"running on {HOST}:{port} (pid {pid}, cluster {metadata.cluster_id}, brokers {list(metadata.brokers)})")
    return 0


def _property(text: str) -> str:
    if "=" not in text or not text.split("=", 1)[0].strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A real single-node Apache Kafka 4.x broker (KRaft) from Maven "
                                     "Central jars: start, stop, status, restart.")
    parser.add_argument("command", choices=["start", "stop", "status", "restart"])
    parser.add_argument("--port", type=int, default=None,
                        help="client port (0: pick a free one; default 9092, or the kept broker's)")
    parser.add_argument("--controller-port", type=int, default=None,
                        help="controller port (0: pick a free one; default 9093, or the kept broker's)")
    parser.add_argument("--dir", default=str(DEFAULT_CLI_DIR), help="broker working dir (wiped on start/stop)")
    parser.add_argument("--keep", action="store_true",
                        help="start: reuse the dir's data (KRaft metadata, topics, records); stop: leave the dir")
    parser.add_argument("--timeout", type=float, default=30.0, help="stop: seconds before SIGKILL")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", type=_property,
                        help="start: extra server.properties entry (repeatable)")
    args = parser.parse_args(argv)
    try:
        commands = {"start": _cli_start, "stop": _cli_stop, "status": _cli_status, "restart": _cli_restart}
        return commands[args.command](args)
    except BrokerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
