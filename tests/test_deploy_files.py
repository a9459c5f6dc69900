"""The files in ``deploy/`` agree with each other and with the app.

Docker's engine does not run on the test machine, so the compose file, the Kubernetes
manifests, the Prometheus config and the Dockerfile are parsed and their references checked:
services, volumes, ports, the probe paths (fetched from a running gateway), the environment
variables (loaded through the real config loader, so each one is a name the app reads), and
every Grafana query's metric against a live ``/metrics`` scrape.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from pyclaw_app.config import Config, load_config
from pyclaw_app.control.chat import ask
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.model import Address, Inbound
from pyclaw_app.secrets import FileSecretStore
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI, Fault

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PROMETHEUS_LABELS = {"instance", "job", "le"}
"""Labels Prometheus itself attaches (``le`` is a histogram's bucket label)."""
PROMETHEUS_SERIES = {"up"}
"""Series Prometheus makes from the scrape itself, not found in /metrics."""


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text("utf-8"))


def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in deploy/k8s by kind (one of each kind there)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text("utf-8")):
            if doc and "kind" in doc:
                assert doc["kind"] not in found, f"two {doc['kind']} objects"
                found[doc["kind"]] = doc
    return found


def env_example() -> dict[str, str]:
    lines = (DEPLOY / "env.example").read_text("utf-8").splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {k: v for k, v in pairs}


def pod_spec() -> dict[str, Any]:
    return manifests()["Deployment"]["spec"]["template"]["spec"]


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    return only


def app_config() -> dict[str, Any]:
    return load(DEPLOY / "pyclaw.yaml")


def secret_values(config: Config) -> set[str]:
    """Every secret the loader filled in: the database password, API keys, channel secrets."""
    found = [config.storage.password, *(p.api_key for p in config.providers)]
    for entry in config.channels.values():
        assert entry.config is not None, entry.error
        found += [getattr(entry.config, name) for name in type(entry.config).model_fields]
    return {s.get_secret_value() for s in found if isinstance(s, SecretStr)}


# ---- the config and its secrets ------------------------------------------------------------

def test_every_variable_of_the_example_env_is_a_secret_the_config_loader_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = env_example()
    assert "PYCLAW_STORAGE_PASSWORD" in names
    for i, name in enumerate(names):
        monkeypatch.setenv(name, f"{names[name]}-{i}-distinct")
    config = load_config(DEPLOY / "pyclaw.yaml", FileSecretStore(tmp_path / "none.json"))
    assert config.errors == [] and config.warnings == []
    assert secret_values(config) == {f"{v}-{i}-distinct" for i, v in enumerate(names.values())}
    assert config.storage.is_postgres and config.server.metrics == "on"
    assert config.server.host == "0.0.0.0"  # reachable from outside the container


def test_the_config_map_carries_the_same_config() -> None:
    config_map = manifests()["ConfigMap"]
    assert yaml.safe_load(config_map["data"]["pyclaw.yaml"]) == app_config()


# ---- docker compose ------------------------------------------------------------------------

def test_compose_runs_two_gateways_on_postgres_scraped_by_prometheus() -> None:
    compose = load(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    gateways = ["gateway-1", "gateway-2"]
    assert set(services) == {*gateways, "postgres", "prometheus"}
    port = app_config()["server"]["port"]
    storage = urlsplit(app_config()["storage"]["url"])
    env_file = DEPLOY / "env.example"

    data_volumes = set()
    for name in gateways:
        gw = services[name]
        assert (DEPLOY / gw["build"]["context"] / gw["build"]["dockerfile"]).resolve() == \
            DEPLOY / "Dockerfile"
        assert gw["env_file"] == ".env" and env_file.exists()  # the example to copy from
        (config,) = gw["configs"]
        assert config["target"] == gw["environment"]["PYCLAW_CONFIG"]
        assert (DEPLOY / compose["configs"][config["source"]]["file"]).resolve() == \
            DEPLOY / "pyclaw.yaml"
        (volume,) = gw["volumes"]
        source, target = volume.split(":")
        assert target == gw["environment"]["PYCLAW_DATA_DIR"]
        assert source in compose["volumes"]
        data_volumes.add(source)
        assert gw["ports"][0].endswith(f":{port}")
        assert gw["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert not any(k.startswith("PYCLAW_") and k not in ("PYCLAW_CONFIG", "PYCLAW_DATA_DIR")
                       for k in gw["environment"])  # secrets come from .env, not this file
    assert len(data_volumes) == 2  # each instance its own data directory

    pg = services["postgres"]
    assert storage.hostname == "postgres" and storage.port == 5432
    assert pg["environment"]["POSTGRES_USER"] == storage.username
    assert pg["environment"]["POSTGRES_DB"] == storage.path.lstrip("/")
    assert "PYCLAW_STORAGE_PASSWORD" in pg["environment"]["POSTGRES_PASSWORD"]
    assert "healthcheck" in pg

    (prom_config,) = services["prometheus"]["configs"]
    assert prom_config["target"] == "/etc/prometheus/prometheus.yml"
    prometheus = load(DEPLOY / compose["configs"][prom_config["source"]]["file"])
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"{g}:{port}" for g in gateways]


# ---- kubernetes ----------------------------------------------------------------------------

def test_the_deployment_runs_two_replicas_with_probes_secrets_and_the_config_map() -> None:
    objects = manifests()
    deployment, service = objects["Deployment"], objects["Service"]
    assert deployment["spec"]["replicas"] == 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert service["spec"]["selector"] == labels
    spec, c = pod_spec(), container()
    port = app_config()["server"]["port"]
    (http,) = c["ports"]
    assert http["containerPort"] == port
    assert service["spec"]["ports"][0]["targetPort"] == http["name"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": http["name"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": http["name"]}
    assert spec["securityContext"]["runAsNonRoot"] is True
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"

    env = {e["name"]: e for e in c["env"]}
    from_secret = {n: e["valueFrom"]["secretKeyRef"] for n, e in env.items() if "valueFrom" in e}
    assert set(from_secret) == set(env_example())  # every secret, and from the Secret only
    secret = load(K8S / "secret.example.yaml")
    assert {ref["name"] for ref in from_secret.values()} == {secret["metadata"]["name"]}
    assert {ref["key"] for ref in from_secret.values()} == set(secret["stringData"])

    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    config_map = objects["ConfigMap"]
    (key,) = config_map["data"]
    config_volume = next(n for n, v in volumes.items() if "configMap" in v)
    assert volumes[config_volume]["configMap"]["name"] == config_map["metadata"]["name"]
    assert env["PYCLAW_CONFIG"]["value"] == f"{mounts[config_volume]}/{key}"
    assert Path(env["PYCLAW_DATA_DIR"]["value"]).parent == Path(mounts["data"])
    assert set(mounts) == set(volumes)

    kustomization = load(K8S / "kustomization.yaml")
    assert all((K8S / r).exists() for r in kustomization["resources"])
    assert "secret.example.yaml" not in kustomization["resources"]  # placeholders, never applied


# ---- the image -----------------------------------------------------------------------------

def test_the_dockerfile_is_multi_stage_non_root_with_a_private_data_volume() -> None:
    text = (DEPLOY / "Dockerfile").read_text("utf-8")
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(stages) == 2 and all("slim" in s for s in stages)
    assert "--from=build" in text
    (user,) = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user not in ("root", "0")
    assert re.search(r"install -d -o pyclaw -g pyclaw -m 0700 /data", text)
    assert 'VOLUME ["/data"]' in text and "PYCLAW_DATA_DIR=/data" in text
    port = app_config()["server"]["port"]
    assert f"EXPOSE {port}" in text
    assert f"PYCLAW_HEALTHCHECK_URL=http://127.0.0.1:{port}/healthz" in text
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD .*PYCLAW_HEALTHCHECK_URL", text, re.MULTILINE)

    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
               if line.strip() and not line.startswith("#")}
    for sources in re.findall(r"^COPY (?!--)(.+) \S+$", text, re.MULTILINE):
        for source in sources.split():
            assert (ROOT / source).exists(), source
            assert source not in ignored, f"{source} is copied but .dockerignore drops it"
    assert {".git", ".venv", "tests", ".env"} <= ignored


# ---- the dashboard against a live scrape ---------------------------------------------------

@pytest.fixture
async def scraped(tmp_path: Path, fake_llm: FakeOpenAI) -> AsyncIterator[dict[str, Any]]:
    """A gateway with traffic of every kind (a reply, a failed LLM call, a skipped message, a
    duplicate, a message waiting in the journal, the instance active), so every series has samples
    whose labels can be checked, and what its server answered at /metrics and at the
    manifests' probe paths."""
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"port": 0, "metrics": "on"},
        "providers": [provider_section(fake_llm, prices={"*": {"input": 1.0, "output": 2.0}})],
        "channels": {"local": {"type": "local"}}}), "utf-8")
    host = await GatewayHost.start(config, tmp_path / "data")
    try:
        assert host.server is not None and host.server.metrics is not None
        gateway = host.runtime.gateway
        assert await ask(gateway, "hello", chat="c1", timeout=10) == "Echo: hello"
        fake_llm.faults.append(Fault(status=500))
        await ask(gateway, "fails", chat="c2", timeout=10)
        assert await ask(gateway, " ", chat="c3", timeout=10) == "empty message"  # skipped
        local = gateway.channels["local"].connector
        for _ in range(2):  # the second is a duplicate
            await local.post("twice", chat="c4", platform_id="same-id")
        await gateway.store.journal.submit(  # waits: no channel of that name runs here
            Inbound(Address("elsewhere", "c5"), "p-1", "queued"))
        await gateway.lanes.join()

        c = container()
        async with aiohttp.ClientSession(host.server.url) as session:
            async with session.get("/metrics") as resp:
                text = await resp.text()
            probes = {}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                async with session.get(c[probe]["httpGet"]["path"]) as resp:
                    probes[probe] = resp.status
        yield {"metrics": text, "probes": probes}
    finally:
        await host.stop()


def exported(text: str) -> dict[str, set[str]]:
    """Series names a PromQL query may use, each with the labels its samples carry."""
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        for suffix in suffixes.get(family.type, ("",)):
            names.setdefault(family.name + suffix, set())
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def test_the_probe_paths_of_the_manifests_are_served(scraped: dict[str, Any]) -> None:
    assert scraped["probes"] == {"livenessProbe": 200, "readinessProbe": 200,
                                 "startupProbe": 200}


def test_every_dashboard_query_uses_metrics_and_labels_the_gateway_exports(
        scraped: dict[str, Any]) -> None:
    series = exported(scraped["metrics"])
    dashboard = json.loads((DEPLOY / "grafana" / "pyclaw.json").read_text("utf-8"))
    (source,) = dashboard["__inputs"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    used: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == f"${{{source['name']}}}"
    for expr in exprs:
        names = set(re.findall(r"\b(pyclaw_[a-z0-9_]+|up)\b(?=\s*[{\[)])", expr))
        assert names, f"no metric in {expr!r}"
        unknown = names - set(series) - PROMETHEUS_SERIES
        assert not unknown, f"{expr!r} uses {unknown}, which /metrics does not export"
        labels = set().union(*(series.get(n, set()) for n in names)) | PROMETHEUS_LABELS
        for grouping in re.findall(r"\bby \(([^)]*)\)", expr):
            wanted = {label.strip() for label in grouping.split(",")}
            assert wanted <= labels, f"{expr!r} groups by {wanted - labels}, not exported"
        used |= names
    # The families the issue names are all on the dashboard.
    for name in ("pyclaw_messages_in_total", "pyclaw_messages_out_total",
                 "pyclaw_added_latency_seconds_bucket", "pyclaw_llm_calls_total",
                 "pyclaw_llm_tokens_total", "pyclaw_llm_cost_dollars_total",
                 "pyclaw_llm_errors_total", "pyclaw_journal_open", "pyclaw_lane_jobs",
                 "pyclaw_channel_state", "pyclaw_instance_active", "pyclaw_store_outage"):
        assert name in used, f"the dashboard does not show {name}"
