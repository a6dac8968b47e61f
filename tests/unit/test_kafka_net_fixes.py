"""streams/kafka_net_fixes.py, through ``journeys doctor``'s Kafka check, against local socket servers.

Neither server is Kafka: one answers the three requests of a SASL login the way a broker refuses
a wrong password (the answer, then the close, in one TCP segment, as a TLS listener's answer and
close arrive), the other accepts TCP and never says a word of TLS. Both are the failures the fixes
are for; the real broker cases are in tests/integration/test_kafka_security.py.
"""

from __future__ import annotations

import copy
import logging
import socket
import struct
import threading
import time
from typing import Any, Iterator

import pytest
from kafka.protocol.broker_version_data import BrokerVersionData
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)

from schemas.errors import ConfigurationError
from streams import kafka_net_fixes
from streams.admin import ensure_topics
from streams.cli.doctor import FAIL, kafka_checks
from streams.kafka_config import client_options
from streams.settings import Settings

REFUSED = ("Authentication failed during authentication due to invalid credentials with SASL mechanism "
           "SCRAM-SHA-512")


@pytest.fixture(autouse=True)
def _no_journeys_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("JOURNEYS_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _one_doctor_at_a_time() -> Iterator[None]:
    """A doctor that returns on a refused login leaves its client retrying (and logging) in the
    background until its timeout, and its log handler on ``kafka``: wait for it, then restore."""
    logger = logging.getLogger("kafka")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    for thread in threading.enumerate():
        if thread.name == "doctor-kafka":
            thread.join(30)
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


def _frame(response: Any, version: int, correlation_id: int) -> bytes:
    answer = copy.copy(response)
    answer.API_VERSION = min(version, response.max_version)
    answer.with_header(correlation_id=correlation_id)
    return bytes(answer.encode(header=True, framed=True))


_VERSIONS = BrokerVersionData((4, 1))
_ANSWERS = {
    ApiVersionsRequest.API_KEY: ApiVersionsResponse(
        version=3, error_code=0, throttle_time_ms=0,
        api_keys=[ApiVersionsResponse.ApiVersion(api_key=key, min_version=low, max_version=high)
                  for key, (low, high) in _VERSIONS.api_versions.items()]),
    SaslHandshakeRequest.API_KEY: SaslHandshakeResponse(version=1, error_code=0, mechanisms=["SCRAM-SHA-512"]),
    SaslAuthenticateRequest.API_KEY: SaslAuthenticateResponse(
        version=2, error_code=58, error_message=REFUSED, auth_bytes=b"", session_lifetime_ms=0),
}


class Listener:
    """A TCP listener on a free port; ``handle(conn)`` runs on a thread per connection."""

    def __init__(self, handle: Any) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.conns: list[socket.socket] = []
        self._handle = handle
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


def _read_exactly(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def refuse_login(conn: socket.socket) -> None:
    """Answer ApiVersions and SaslHandshake; refuse the SaslAuthenticate and close with the answer."""
    try:
        while True:
            head = _read_exactly(conn, 4)
            body = _read_exactly(conn, struct.unpack(">i", head)[0]) if head else None
            if body is None:
                return
            api_key, version, correlation_id = struct.unpack(">hhi", body[:8])
            answer = _frame(_ANSWERS[api_key], version, correlation_id)
            if api_key != SaslAuthenticateRequest.API_KEY:
                conn.sendall(answer)
                continue
            # the answer and the FIN in one segment: the client reads both in one pass
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            conn.sendall(answer)
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(4096):  # read to the client's close (unread bytes would turn our close into a RST)
                pass
            return
    except OSError:
        return


def say_nothing(conn: socket.socket) -> None:
    """Accept and keep the connection, never answering (no TLS ServerHello)."""


@pytest.fixture
def listener(request: pytest.FixtureRequest) -> Iterator[Listener]:
    server = Listener(request.param)
    try:
        yield server
    finally:
        server.close()


def test_the_fixes_are_installed_on_the_pinned_kafka_python() -> None:
    from kafka.net.connection import KafkaConnection
    from kafka.net.manager import KafkaConnectionManager
    from kafka.net.transport import KafkaSSLTransport, KafkaTCPTransport

    client_options(Settings())  # every kafka-python client of ours gets its options here
    assert kafka_net_fixes.install()
    assert KafkaTCPTransport._read_from_sock is kafka_net_fixes._read_from_sock
    assert KafkaSSLTransport._read_from_sock is kafka_net_fixes._read_from_sock
    assert KafkaConnectionManager._build_transport is kafka_net_fixes._build_transport
    assert KafkaConnection.initialize is kafka_net_fixes._initialize


@pytest.mark.parametrize("listener", [refuse_login], indirect=True)
def test_a_refusal_that_arrives_with_the_close_is_reported_as_a_refused_login(listener: Listener) -> None:
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{listener.port}", kafka_security_protocol="SASL_PLAINTEXT",
                        kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="alice",
                        kafka_sasl_password="not-alices-password")
    started = time.monotonic()
    reachable, topics = kafka_checks(settings, None, timeout=4)
    assert reachable.status == FAIL
    # without the fix every attempt ended "socket disconnected" and this was "Unable to bootstrap" after 4 s
    assert "authentication failed for user 'alice' (SCRAM-SHA-512)" in reachable.detail, reachable.detail
    assert REFUSED in reachable.detail
    assert time.monotonic() - started < 3
    assert topics.detail == "broker unreachable"


@pytest.mark.parametrize("listener", [say_nothing], indirect=True)
def test_a_tls_handshake_that_never_completes_is_given_up_within_the_timeout(listener: Listener) -> None:
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{listener.port}", kafka_security_protocol="SSL")
    timeout = 3.0
    started = time.monotonic()
    reachable, _ = kafka_checks(settings, None, timeout=timeout)
    took = time.monotonic() - started
    assert reachable.status == FAIL
    # without the fix the client never gave up and the doctor stopped waiting after 2 * timeout + 5 s
    assert took < timeout + 2, took
    assert "TLS handshake not completed within" in reachable.detail, reachable.detail
    assert listener.accepted >= 1


@pytest.mark.parametrize("listener", [refuse_login], indirect=True)
def test_a_refused_login_stops_the_client_instead_of_retrying_to_the_timeout(listener: Listener) -> None:
    """``journeys worker``'s topic check (``ensure_topics``): before the fix kafka-python took the
    refused login for a connection, retried every backoff and raised ``Unable to bootstrap``
    after 30 s; now the first refusal ends it, as a configuration error naming the user only."""
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{listener.port}", kafka_security_protocol="SASL_PLAINTEXT",
                        kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="alice",
                        kafka_sasl_password="not-alices-password")
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as raised:
        ensure_topics(settings)
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert "refused the login of user 'alice' (SCRAM-SHA-512)" in message and REFUSED in message
    assert "not-alices-password" not in message
    assert listener.accepted <= 2
