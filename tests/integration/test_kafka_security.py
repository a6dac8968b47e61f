"""Kafka SASL/SCRAM and TLS end to end, against real brokers started here (``dev/kafka/kafka.sh``).

Two brokers on free ports with their own data dirs (the shared one at 9092 is never touched):
``SASL_PLAINTEXT`` with SCRAM-SHA-512, and ``SASL_SSL`` with SCRAM plus a required client
certificate (mutual TLS; CA and certificates generated here). Every test runs against both:
topic creation (kafka-python admin), the import/CLI producer and a consumer, a real worker
process reading its password from a secrets file, the collector's aiokafka producer, and
``journeys doctor`` on a wrong password. The SASL_SSL broker also refuses a client without a
certificate or trusting another CA.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from kafka import KafkaConsumer, TopicPartition

from streams import packs
from streams import topics as t
from streams.admin import ensure_topics
from streams.collector.kafka_out import KafkaOut, OutRecord
from streams.kafka_config import client_options
from streams.producer import make_producer
from streams.settings import Settings
from tests.support.tracker import ROOT, Tracker, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

USER, PASSWORD = "alice", "alice-Scram-9f3e"
WRONG = "not-alice-pw-7c1d"


# -- a private CA, the broker's and a client's certificate --------------------------------------
def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cert(subject: str, key: Any, issuer: x509.Name | None, issuer_key: Any, *, ca: bool = False,
          sans: list[x509.GeneralName] | None = None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: Any | None = None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def make_pki(out: Path, name: str = "journeys-test-ca") -> Path:
    """ca.pem; broker.pem/.key (SAN 127.0.0.1, localhost); client.pem/.key (CN alice)."""
    out.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca = _cert(name, ca_key, None, ca_key, ca=True)
    _write(out / "ca.pem", ca)
    broker_key = _key()
    _write(out / "broker.pem", _cert("127.0.0.1", broker_key, ca.subject, ca_key, sans=[
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), broker_key)
    client_key = _key()
    _write(out / "client.pem", _cert(USER, client_key, ca.subject, ca_key), client_key)
    return out


# -- a broker of our own ------------------------------------------------------------------------
@dataclass
class SecureBroker:
    protocol: str
    bootstrap: str
    env: dict[str, str]
    pki: Path | None

    def kafka_sh(self, command: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(ROOT / "dev/kafka/kafka.sh"), command], env=self.env, capture_output=True,
                              text=True, timeout=240)

    def journeys_env(self, password: str | None = PASSWORD, *, cert: bool = True,
                     ca: Path | None = None) -> dict[str, str]:
        """``JOURNEYS_KAFKA_*`` for a client of this broker."""
        env = {"JOURNEYS_KAFKA_BOOTSTRAP": self.bootstrap, "JOURNEYS_KAFKA_SECURITY_PROTOCOL": self.protocol,
               "JOURNEYS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "JOURNEYS_KAFKA_SASL_USERNAME": USER}
        if password is not None:
            env["JOURNEYS_KAFKA_SASL_PASSWORD"] = password
        if self.pki is not None:
            env["JOURNEYS_KAFKA_SSL_CAFILE"] = str(ca or self.pki / "ca.pem")
            if cert:
                env["JOURNEYS_KAFKA_SSL_CERTFILE"] = str(self.pki / "client.pem")
                env["JOURNEYS_KAFKA_SSL_KEYFILE"] = str(self.pki / "client.key")
        return env

    def settings(self, prefix: str, password: str = PASSWORD, **overrides: Any) -> Settings:
        values = {k.removeprefix("JOURNEYS_").lower(): v for k, v in self.journeys_env(password).items()}
        return Settings(**values, topic_prefix=prefix, app_id=f"{prefix}app", topic_partitions=1, **overrides)


@pytest.fixture(scope="module", params=["SASL_PLAINTEXT", "SASL_SSL"])
def broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    protocol = request.param
    tmp = tmp_path_factory.mktemp(f"kafka-{protocol.lower()}")
    pki = make_pki(tmp / "pki") if protocol == "SASL_SSL" else None
    bootstrap = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, JOURNEYS_KAFKA_BOOTSTRAP=bootstrap, KAFKA_CONTROLLER_PORT=str(free_port()),
               KAFKA_INTERNAL_PORT=str(free_port()), KAFKA_DATA_DIR=str(tmp / "kafka"), PYTHON=sys.executable,
               KAFKA_HEAP_OPTS="-Xmx384m -Xms128m", KAFKA_SCRAM_USERS=f"{USER}:{PASSWORD}",
               KAFKA_LISTENER_PROTOCOL=protocol)
    if pki is not None:
        env.update(KAFKA_SSL_PEM_DIR=str(pki), KAFKA_SSL_CLIENT_AUTH="required")
    node = SecureBroker(protocol, bootstrap, env, pki)
    try:
        started = node.kafka_sh("start")
        assert started.returncode == 0, f"kafka.sh start failed:\n{started.stderr[-3000:]}"
        yield node
    finally:
        stopped = node.kafka_sh("stop")
        assert stopped.returncode == 0, stopped.stderr[-2000:]


def _prefix(name: str) -> str:
    return f"sec-{name}-{uuid.uuid4().hex[:6]}-"


def _read_all(settings: Settings, topic: str, expected: int, timeout: float = 30) -> list[Any]:
    consumer = KafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert tps, f"topic {topic} not found"
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(packs.unpacked(batch))  # the stages' internal hops: packs (streams/packs.py)
        return records
    finally:
        consumer.close()


def _doctor(env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess:
    full = dict(os.environ, **env, JOURNEYS_DATA_DIR=str(tmp / "doctor"),
                JOURNEYS_API_URL=f"http://127.0.0.1:{free_port()}")
    return subprocess.run([sys.executable, "-m", "streams", "doctor", "--timeout", "20"], env=full, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


# -- tests --------------------------------------------------------------------------------------
def test_topics_producer_and_consumer_authenticate(broker: SecureBroker, caplog: pytest.LogCaptureFixture) -> None:
    settings = broker.settings(_prefix("rt"))
    with caplog.at_level(logging.DEBUG, logger="kafka"):  # kafka-python logs its configuration at DEBUG
        created = ensure_topics(settings)
        inbound = t.name(t.INBOUND, settings.topic_prefix)
        assert inbound in created and len(created) == len(t.ALL)

        producer = make_producer(settings)
        try:
            for i in range(3):
                producer.send(inbound, key=b"k", value=f"v{i}".encode())
            producer.flush(timeout=30)
        finally:
            producer.close()
        records = _read_all(settings, inbound, 3)
    assert sorted(r.value for r in records) == [b"v0", b"v1", b"v2"]
    assert "sasl_plain_password" in caplog.text  # the configuration was logged …
    assert PASSWORD not in caplog.text  # … with the password masked


def test_worker_ingests_with_the_password_from_a_secrets_file(broker: SecureBroker, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "journeys_kafka_sasl_password").write_text(PASSWORD + "\n")
    env = broker.journeys_env(password=None)  # no JOURNEYS_KAFKA_SASL_PASSWORD: only the file has it
    env["JOURNEYS_SECRETS_DIR"] = str(secrets)
    tracker = Tracker(broker.bootstrap, tmp_path, _prefix("wk"), extra_env=env, index=0)
    assert "JOURNEYS_KAFKA_SASL_PASSWORD" not in tracker.env
    try:
        tracker.start()  # `journeys worker` creates the topics (kafka-python) then runs Faust (aiokafka)
        settings = broker.settings(tracker.prefix)
        producer = make_producer(settings)
        good = orjson.dumps({"type": "group", "messageId": "sec-1", "userId": "u1", "groupId": "acme-sec",
                             "timestamp": "2026-10-01T09:00:00Z"})
        producer.send(tracker.topic("journeys-inbound-v1"), value=good)
        producer.send(tracker.topic("journeys-inbound-v1"), value=b"not json")
        producer.flush(timeout=30)
        producer.close()
        stats = tracker.wait_for_stored(events=1, dead_letters=1, timeout=120)
        assert stats["events"] == 1 and stats["dead_letters"] == 1

        validated = _read_all(settings, tracker.topic("journeys-persons-v1"), 1)  # userId only: person stage
        assert len(validated) == 1 and b'"sec-1"' in validated[0].value
        replay = tracker.journeys("dlq", "replay", "--dry-run", "--format", "json")  # the DLQ consumer
        assert len(json.loads(replay.stdout)) == 1, replay.stderr
    finally:
        tracker.stop()
    log = tracker.log_path.read_text(errors="replace")
    assert PASSWORD not in log


def test_worker_with_a_wrong_password_stops_at_once_saying_so(broker: SecureBroker, tmp_path: Path) -> None:
    """kafka-python took a refused login for a connection and retried until its 30 s bootstrap
    timeout, then said ``Unable to bootstrap`` (streams/kafka_net_fixes.py, ``_initialize``)."""
    env = dict(os.environ, **broker.journeys_env(password=WRONG), JOURNEYS_DATA_DIR=str(tmp_path / "wrong"),
               JOURNEYS_TOPIC_PREFIX=_prefix("wp"))
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "streams", "worker", "--loglevel", "warn"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    text = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 78, text  # EX_CONFIG: a supervisor should not restart it in a loop
    assert "refused the login of user 'alice' (SCRAM-SHA-512)" in text, text
    assert "JOURNEYS_KAFKA_SASL_PASSWORD" in text
    assert WRONG not in text and PASSWORD not in text
    assert took < 25, f"{took:.1f} s: the worker retried the refused login until the bootstrap timeout"


def test_collector_producer_connects_with_the_credentials(broker: SecureBroker) -> None:
    settings = broker.settings(_prefix("col"))
    topic = t.name(t.INBOUND, settings.topic_prefix)
    ensure_topics(settings)

    async def send() -> None:
        out = KafkaOut.from_settings(settings, retry_seconds=0.5)
        out.start()
        try:
            deadline = time.monotonic() + 60
            while not out.ready:
                assert time.monotonic() < deadline, "the collector's producer did not connect"
                await asyncio.sleep(0.1)
            await out.send_all([OutRecord(topic, b"dev-1", b'{"collected": true}', [("h", b"1")])], timeout=30)
        finally:
            await out.stop()

    asyncio.run(send())
    records = _read_all(settings, topic, 1)
    assert [(r.key, r.value) for r in records] == [(b"dev-1", b'{"collected": true}')]


def test_doctor_reports_a_wrong_password_without_printing_it(broker: SecureBroker, tmp_path: Path) -> None:
    out = _doctor(broker.journeys_env(password=WRONG), tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "authentication failed for user 'alice' (SCRAM-SHA-512)" in " ".join(text.split()), text
    assert "JOURNEYS_KAFKA_SASL_PASSWORD" in text
    assert WRONG not in text and PASSWORD not in text

    ok = _doctor(broker.journeys_env(), tmp_path)
    assert "broker reachable │ ok" in " ".join(ok.stdout.split()), ok.stdout + ok.stderr


@pytest.mark.parametrize("broker", ["SASL_SSL"], indirect=True)
def test_tls_refuses_a_client_without_certificate_or_trusting_another_ca(broker: SecureBroker,
                                                                         tmp_path: Path) -> None:
    no_cert = _doctor(broker.journeys_env(cert=False), tmp_path)
    assert no_cert.returncode == 1
    assert "TLS handshake failed" in no_cert.stdout, no_cert.stdout + no_cert.stderr

    other_ca = make_pki(tmp_path / "other", name="someone-else") / "ca.pem"
    untrusted = _doctor(broker.journeys_env(ca=other_ca), tmp_path)
    assert untrusted.returncode == 1
    text = " ".join(untrusted.stdout.split())
    assert "TLS handshake failed" in text and "CERTIFICATE_VERIFY_FAILED" in text, untrusted.stdout
