"""docker-compose.yml is valid for the `docker-compose` tool and wires the services as documented.

Only `docker-compose config` runs here (it needs no Docker engine). `make test` installs
`docker-compose` when it is missing, so this test never skips.

docker-compose 1.29 prints services of inactive profiles too (marked with `profiles:`); Compose v2
leaves them out. The assertions below hold for both.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.collector.settings import CollectorSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CORE = {"kafka", "clickhouse", "tracker", "collector"}


REQUIRED = {"JOURNEYS_API_TOKEN": "3f1c9a7be2d84c0f9e61a5b7c2d8e4f0", "COLLECTOR_WRITE_KEY": "wk_5d2a8c1e9b7f4a36"}
"""The variables the file requires (no defaults: docs/docker.md), as a user's .env would give them."""


def run_config(*args: str, required: dict[str, str] = REQUIRED) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is not on PATH: run `make tools` (make test does it)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_") and k not in REQUIRED}
    with tempfile.NamedTemporaryFile(suffix=".env") as empty:  # never a developer's .env
        return subprocess.run(
            [exe, "-f", str(COMPOSE_FILE), "--env-file", empty.name, *args, "config"],
            cwd=ROOT,
            env={**env, **required},
            capture_output=True,
            text=True,
            timeout=120,
        )


def compose_config(*args: str) -> dict[str, Any]:
    proc = run_config(*args)
    assert proc.returncode == 0, f"docker-compose config failed:\n{proc.stderr}"
    return yaml.safe_load(proc.stdout)


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE form
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def in_profile(service: dict[str, Any], profile: str) -> bool:
    return profile in (service.get("profiles") or [])


@pytest.fixture(scope="module")
def default_config() -> dict[str, Any]:
    return compose_config()


@pytest.fixture(scope="module")
def scale_config() -> dict[str, Any]:
    return compose_config("--profile", "scale")


@pytest.fixture(scope="module")
def analyst_config() -> dict[str, Any]:
    return compose_config("--profile", "analyst")


def test_core_services_are_present_without_profiles(default_config: dict[str, Any]) -> None:
    services = default_config["services"]
    assert CORE <= set(services)
    for name in CORE:
        assert not services[name].get("profiles"), f"{name} must run without a profile"
    # Whatever else is listed belongs to an opt-in profile (scale, analyst).
    for name in set(services) - CORE:
        assert in_profile(services[name], "scale") or in_profile(services[name], "analyst"), \
            f"{name} would start by default"


def test_clickhouse_healthcheck_hits_ping(default_config: dict[str, Any]) -> None:
    clickhouse = default_config["services"]["clickhouse"]
    test = clickhouse["healthcheck"]["test"]
    command = " ".join(test) if isinstance(test, list) else test
    assert "localhost:8123/ping" in command
    env = env_of(clickhouse)
    assert env["CLICKHOUSE_DB"] == "journeys"
    assert env["CLICKHOUSE_USER"] == "journeys"
    assert env["CLICKHOUSE_PASSWORD"]


def test_kafka_is_single_node_kraft(default_config: dict[str, Any]) -> None:
    kafka = default_config["services"]["kafka"]
    env = env_of(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
    ):
        assert env[key] == "1", key
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_tracker_wiring(default_config: dict[str, Any]) -> None:
    tracker = default_config["services"]["tracker"]
    env = env_of(tracker)
    assert env["JOURNEYS_CLICKHOUSE_URL"].startswith("http://")
    assert env["JOURNEYS_CLICKHOUSE_URL"].endswith("@clickhouse:8123/journeys")
    assert env["JOURNEYS_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["JOURNEYS_WEB_HOST"] == "0.0.0.0"
    assert "worker" in str(tracker["command"])
    assert tracker["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert tracker["depends_on"]["clickhouse"]["condition"] == "service_healthy"


@pytest.mark.parametrize("profile", ["scale", "analyst"])
def test_published_ports_are_loopback_only(profile: str) -> None:
    for name, service in compose_config("--profile", profile)["services"].items():
        for port in service.get("ports") or []:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond loopback"


def test_collector(default_config: dict[str, Any]) -> None:
    collector = default_config["services"]["collector"]
    env = env_of(collector)
    assert "collector" in str(collector["command"])
    assert env["JOURNEYS_COLLECTOR__HOST"] == "0.0.0.0"
    assert env["JOURNEYS_COLLECTOR__PORT"] == "8088"
    keys = CollectorSettings(write_keys=json.loads(env["JOURNEYS_COLLECTOR__WRITE_KEYS"])).write_keys
    assert [k.get_secret_value() for k in keys] == [REQUIRED["COLLECTOR_WRITE_KEY"]]
    assert all(entry.allow == {"segment"} for entry in keys.values())  # the browser key is scoped


def test_every_worker_gets_the_api_token_it_needs_on_0_0_0_0(scale_config: dict[str, Any]) -> None:
    """The workers serve their API on 0.0.0.0, which they refuse without a token (streams.exposure)."""
    for name, service in scale_config["services"].items():
        if "worker" in str(service.get("command")):
            env = env_of(service)
            assert env["JOURNEYS_WEB_HOST"] == "0.0.0.0"
            assert env["JOURNEYS_API_TOKEN"] == REQUIRED["JOURNEYS_API_TOKEN"], name


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_the_token_and_the_write_key_are_required_with_a_message(missing: str) -> None:
    """No default a user could leave in place: `config` (and so `up`) stops and names the variable."""
    proc = run_config(required={k: v for k, v in REQUIRED.items() if k != missing})
    assert proc.returncode != 0
    assert f"set {missing}, e.g. in .env - see docs/docker.md" in proc.stderr


def test_the_compose_file_holds_no_secret_the_tracker_would_accept() -> None:
    """Whatever literal key or token the file carries is refused at start-up (there is none now)."""
    from streams.exposure import weak_secret

    text = COMPOSE_FILE.read_text()
    assert "change-me-write-key" not in text
    for literal in ("change-me", "<secret-key>"):
        assert weak_secret(literal), literal


def test_scale_profile_adds_two_stream_workers_and_one_store(scale_config: dict[str, Any]) -> None:
    services = scale_config["services"]
    assert CORE <= set(services)
    scaled = {name: s for name, s in services.items() if in_profile(s, "scale")}
    roles = sorted(env_of(s).get("JOURNEYS_ROLES", "") for s in scaled.values())
    assert roles == ["store", "stream", "stream"], scaled.keys()
    for service in scaled.values():
        assert "worker" in str(service["command"])
        assert env_of(service)["JOURNEYS_CLICKHOUSE_URL"].startswith("http://")


def test_analyst_ui_serves_read_only_from_the_clickhouse_server_with_the_token(analyst_config: dict[str, Any]) -> None:
    """`journeys serve` (no worker, no Kafka) against the compose ClickHouse server; on 0.0.0.0 in
    its container, so it needs the token (streams.exposure); published on loopback only."""
    service = analyst_config["services"]["analyst-ui"]
    env = env_of(service)
    assert in_profile(service, "analyst")
    assert service["command"] in ("journeys serve", ["journeys", "serve"])
    assert env["JOURNEYS_CLICKHOUSE_URL"].endswith("@clickhouse:8123/journeys")
    assert "JOURNEYS_KAFKA_BOOTSTRAP" not in env and set(service["depends_on"]) == {"clickhouse"}
    assert env["JOURNEYS_WEB_HOST"] == "0.0.0.0"
    assert env["JOURNEYS_API_TOKEN"] == REQUIRED["JOURNEYS_API_TOKEN"]
    ports = service["ports"]
    assert len(ports) == 1
    port = ports[0]
    host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
    assert host_ip == "127.0.0.1"
