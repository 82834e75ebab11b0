"""The deployment files agree with the code: settings they set exist, the config they mount loads,
the worker's probes, store volume and config mount match its environment. (Their syntax is checked
by `make deploy-check`: hadolint, the compose schema, kubernetes-validate.)"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from encoders.model_cache import CACHE_ENV
from encoders.onnx_encoder import MODEL_ENV
from online.config import CONFIG_ENV, load_config
from streams.settings import StreamSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OTHER_VARIABLES = {CONFIG_ENV, MODEL_ENV, CACHE_ENV}
"""Variables besides StreamSettings' fields: the config file, an ONNX model file, the model cache."""


def load_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_check", DEPLOY / "check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def manifests() -> list[dict[str, Any]]:
    return [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]


def deploy_texts() -> dict[str, str]:
    files = [*(DEPLOY / "docker").glob("*"), DEPLOY / "compose.yaml", *(DEPLOY / "k8s").glob("*.yaml")]
    return {str(path.relative_to(ROOT)): path.read_text() for path in files}


def test_every_variable_set_is_read_by_slatestream() -> None:
    known = {f"SLATESTREAM_{name.upper()}" for name in StreamSettings.model_fields} | OTHER_VARIABLES
    used = {name: path for path, text in deploy_texts().items() for name in re.findall(r"SLATESTREAM_[A-Z_]+", text)}
    assert used, "no SLATESTREAM_ variable found"
    unknown = {name: path for name, path in used.items() if name not in known}
    assert not unknown, f"variables no code reads: {unknown}"


def test_the_configmap_is_the_config_file_and_loads() -> None:
    [configmap] = [doc for doc in manifests() if doc["kind"] == "ConfigMap"]
    text = (DEPLOY / "config" / "news.toml").read_text()
    assert configmap["data"]["slatestream.toml"] == text
    config = load_config(DEPLOY / "config" / "news.toml")
    assert "front_page" in config.scenarios and config.fallback_scenario == "front_page"


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {entry["name"]: entry["value"] for entry in container.get("env", [])}


@pytest.mark.parametrize("name", ["slatestream-worker", "slatestream-worker-gpu"])
def test_worker_statefulsets_match_their_environment(name: str) -> None:
    [statefulset] = [doc for doc in manifests() if doc["kind"] == "StatefulSet" and doc["metadata"]["name"] == name]
    pod = statefulset["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = container_env(container)
    StreamSettings(**{key.removeprefix("SLATESTREAM_").lower(): value for key, value in env.items()
                      if key.removeprefix("SLATESTREAM_").lower() in StreamSettings.model_fields})  # valid values
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["metrics"] == int(env["SLATESTREAM_METRICS_PORT"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts["store"] == env["SLATESTREAM_STORE_DIR"]
    assert [claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]] == ["store"]
    assert Path(env[CONFIG_ENV]).parent == Path(mounts["config"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert int(env["SLATESTREAM_PARTITIONS"]) >= statefulset["spec"]["replicas"]  # no idle worker


def test_compose_worker_matches_its_environment() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    worker = compose["services"]["worker"]
    env = worker["environment"]
    assert f"{env['SLATESTREAM_METRICS_PORT']}:{env['SLATESTREAM_METRICS_PORT']}" in worker["ports"]
    assert any(volume.endswith(f":{env['SLATESTREAM_STORE_DIR']}") for volume in worker["volumes"])
    assert f":{env[CONFIG_ENV]}:ro" in " ".join(worker["volumes"])
    assert {"kafka", "worker", "gateway", "example", "prometheus", "grafana"} <= set(compose["services"])


def test_dashboard_uses_exactly_the_worker_metrics() -> None:
    check = load_check()
    path = DEPLOY / "grafana" / "dashboards" / "slatestream.json"
    assert check.check_dashboard(path) == []
    dashboard = json.loads(path.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert any("histogram_quantile(0.99" in expr and "slatestream_rank_seconds_bucket" in expr for expr in exprs)


def test_dashboard_check_catches_unknown_metrics_and_labels(tmp_path: Path) -> None:
    check = load_check()
    bad = {"panels": [{"title": "t", "targets": [
        {"expr": "sum by (topic, colour) (rate(slatestream_records_total[1m]))"},
        {"expr": "slatestream_state_key"},
        {"expr": "rate(slatestream_live_ctr_bucket[1m])"}]}]}
    path = tmp_path / "dashboard.json"
    path.write_text(json.dumps(bad))
    problems = "\n".join(check.check_dashboard(path))
    assert "label 'colour'" in problems
    assert "unknown metric slatestream_state_key" in problems
    assert "unknown metric slatestream_live_ctr_bucket" in problems  # a gauge has no buckets
    assert "no panel shows slatestream_rank_seconds" in problems


def test_the_consumer_group_the_docs_name() -> None:
    from streams.state_changelog import worker_app_id

    assert worker_app_id(StreamSettings()) == "slatestream-slatestream"
    assert worker_app_id(StreamSettings(topic_prefix="news.")) == "slatestream-news"
    for doc in ("operations.md", "worker.md"):
        assert "`slatestream-slatestream`" in (ROOT / "docs" / doc).read_text(), doc


def test_the_images_install_compiled_bytecode() -> None:
    """The runtime user cannot write `__pycache__` (root-owned /opt, a read-only root filesystem
    in k8s): each image compiles its modules at build time, or every start compiles them again
    (importing the worker's modules took 4.7-5.3 s without bytecode and 2.1 s with it on a 2-core
    VM; docs/operations.md)."""
    for name in ("Dockerfile", "Dockerfile.cuda"):
        installs = [line for line in (DEPLOY / "docker" / name).read_text().splitlines() if "uv pip install" in line]
        assert installs and all("--compile-bytecode" in line for line in installs), name
