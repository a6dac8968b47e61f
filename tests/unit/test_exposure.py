"""A fresh install is closed (issue 20, item 7): the worker's API beyond loopback needs a token,
placeholder write keys and tokens are refused at start-up, and the processes say which setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.errors import ConfigurationError
from streams.cli import worker_exposure
from streams.collector.app import refuse_weak_keys
from streams.exposure import EXIT_CONFIG, loopback, weak_secret, weak_write_keys, web_exposure
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
STRONG = "9f86d081884c7d659a2feaa0c55ad015"  # openssl rand -hex 16


def test_loopback_is_only_this_machine() -> None:
    assert loopback("127.0.0.1") and loopback("127.0.0.2") and loopback("::1") and loopback("[::1]")
    assert loopback("localhost")
    for host in ("0.0.0.0", "::", "", "10.0.0.5", "tracker", "example.com"):
        assert not loopback(host), host


@pytest.mark.parametrize("value", [
    "change-me-write-key",  # the compose file's old placeholder
    "change-me", "CHANGE_ME", "changeme", "placeholder", "my-placeholder-key", "replace-me-with-a-key",
    "<secret-key>", "wk_live_3f9a…", "wk_live_3f9a...",  # the docs' templates
    "secret", "password", "token", "test", "your-key",
    "aaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababab",  # long but no secret
    "abc", "wk_live", "0123456789abcde",  # shorter than 16 characters
])
def test_weak_secrets_are_named(value: str) -> None:
    assert weak_secret(value), value


@pytest.mark.parametrize("value", [STRONG, "wk_test_live_5f1c", "wk_fault_suite_SECRET_7f3a9c",
                                   "ui-test-token-0123456789", "0123456789abcdef"])
def test_random_secrets_pass(value: str) -> None:
    assert weak_secret(value) is None


def test_the_worker_api_beyond_loopback_needs_a_strong_token_or_an_explicit_opt_in() -> None:
    assert web_exposure("127.0.0.1", 6066, None, False) == web_exposure("::1", 6066, "x", False)
    assert web_exposure("localhost", 6066, None, False).error is None

    refused = web_exposure("0.0.0.0", 6066, None, False)
    assert refused.error and refused.warning is None
    for setting in ("JOURNEYS_WEB_HOST=0.0.0.0", "JOURNEYS_API_TOKEN", "JOURNEYS_WEB_OPEN_WITHOUT_TOKEN"):
        assert setting in refused.error
    assert web_exposure("", 6066, None, False).error  # '' binds every address too

    opted_in = web_exposure("0.0.0.0", 6066, None, True)
    assert opted_in.error is None and opted_in.warning and "INSECURE" in opted_in.warning
    assert "6066" in opted_in.warning

    weak = web_exposure("0.0.0.0", 6066, "changeme", False)
    assert weak.error and "JOURNEYS_API_TOKEN is a placeholder" in weak.error and "changeme" not in weak.error
    assert web_exposure("0.0.0.0", 6066, "changeme", True).error  # the opt-in is for no token, not a bad one
    assert web_exposure("0.0.0.0", 6066, STRONG, False) == web_exposure("10.1.2.3", 80, STRONG, True)
    assert web_exposure("0.0.0.0", 6066, STRONG, False).error is None


def test_worker_exposure_reads_the_settings() -> None:
    assert worker_exposure(Settings(web_host="0.0.0.0")).error
    assert worker_exposure(Settings(web_host="0.0.0.0", web_open_without_token=True)).warning
    assert worker_exposure(Settings(web_host="0.0.0.0", api_token=STRONG)).error is None
    assert worker_exposure(Settings()).error is None  # the default binds to loopback


def test_weak_write_keys_are_refused_by_source_never_quoting_the_key() -> None:
    assert weak_write_keys({STRONG: "website"}) == []
    problems = weak_write_keys({"change-me-write-key": "website", STRONG: "crm", "abc": "import"})
    assert problems == ["the write key of source 'website' is a placeholder",
                        "the write key of source 'import' is shorter than 16 characters"]

    refuse_weak_keys(Settings(collector={"write_keys": {STRONG: "website"}}))
    refuse_weak_keys(Settings())  # no keys: every request gets 401, nothing to refuse
    with pytest.raises(ConfigurationError) as caught:
        refuse_weak_keys(Settings(collector={"write_keys": {"change-me-write-key": "website"}}))
    message = str(caught.value)
    assert "JOURNEYS_COLLECTOR__WRITE_KEYS" in message and "'website'" in message
    assert "change-me-write-key" not in message


def test_the_sql_endpoint_refuses_a_weak_token_beyond_loopback() -> None:
    from streams.web.sql_endpoint import register

    with pytest.raises(ConfigurationError, match="JOURNEYS_API_TOKEN is a placeholder"):
        register(None, Settings(sql={"host": "0.0.0.0"}, api_token="change-me-now-please"), None)  # type: ignore[arg-type]


def run_journeys(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    return subprocess.run([sys.executable, "-m", "streams", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**clean, "JOURNEYS_KAFKA_BOOTSTRAP": "127.0.0.1:1", **env})


def test_a_worker_open_beyond_loopback_exits_at_start_with_the_settings_named(tmp_path: Path) -> None:
    """The real entry point, as the Docker image runs it (JOURNEYS_WEB_HOST=0.0.0.0, no token).
    The check comes before anything connects: no broker is needed (and none is reachable here)."""
    proc = run_journeys("worker", JOURNEYS_WEB_HOST="0.0.0.0", JOURNEYS_DATA_DIR=str(tmp_path))
    assert proc.returncode == EXIT_CONFIG, proc.stderr[-2000:]
    assert "journeys: configuration error: the worker refuses to start" in proc.stderr
    assert "JOURNEYS_API_TOKEN" in proc.stderr and "Traceback" not in proc.stderr


def test_a_collector_with_the_placeholder_key_exits_at_start(tmp_path: Path) -> None:
    proc = run_journeys("collector", JOURNEYS_DATA_DIR=str(tmp_path),
                        JOURNEYS_COLLECTOR__WRITE_KEYS='{"change-me-write-key": "website"}')
    assert proc.returncode == EXIT_CONFIG, proc.stderr[-2000:]
    assert "the collector refuses to start: JOURNEYS_COLLECTOR__WRITE_KEYS" in proc.stderr
    assert "change-me-write-key" not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


def test_other_commands_still_run_with_the_worker_settings_of_a_container(tmp_path: Path) -> None:
    """Only `journeys worker` serves the API: the CLI in the same container (same env) is not refused."""
    proc = run_journeys("schema", "--help", JOURNEYS_WEB_HOST="0.0.0.0", JOURNEYS_DATA_DIR=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
