"""Three fixes to kafka-python 3.0's networking (``kafka/net``), installed by :mod:`streams.kafka_config`.

Every kafka-python client of the tracker (the admin client of ``journeys worker`` and
``journeys doctor``, the CLI/import producer, the DLQ consumer) takes its options from
:func:`streams.kafka_config.client_options`, which calls :func:`install`. aiokafka (Faust, the
collector) has neither problem: its ``asyncio.StreamReader`` hands over buffered bytes before
the EOF, and its TCP connect and TLS handshake run under ``request_timeout_ms``
(``aiokafka/conn.py``, ``create_conn``).

**Bytes that arrive with the peer's close were dropped.** ``KafkaTCPTransport._read_from_sock``
reads until the socket would block; when the last read returns EOF it aborts with
``socket disconnected`` and throws away the bytes read just before. A broker that refuses a
SASL login answers the ``SaslAuthenticate`` request and then closes the connection; on a TLS
listener the answer and the close arrive together, and in about half the attempts (seen
against the test broker, ``tests/integration/test_kafka_security.py``) the client read both
in one pass: the authentication error was lost, the client saw only a disconnect, retried,
and a user got ``Unable to bootstrap`` instead of "authentication failed" (``journeys doctor``
with a wrong password failed so in CI). :func:`_read_from_sock` hands the bytes to the
connection first and lets the requests they answer be handled, then reports the close.

**The TLS handshake had no deadline.** ``KafkaSSLTransport.handshake`` waits for the socket
without a timeout, and nothing else bounds it: a listener that accepts TCP but never completes
the handshake (a stalled broker, a proxy, another service on the port) held a client forever,
past ``bootstrap_timeout_ms`` (``KafkaAdminClient`` never returned). :func:`_build_transport`
gives the handshake the connection's deadline, cut to the connection setup timeout
(``socket_connection_setup_timeout_ms``, which grows after each failure as kafka-python does for
the TCP connect), so a stalled attempt fails, is logged (``Connection failed: …``) and a fresh
one is tried while the caller's budget lasts.

**A refused login was retried until the bootstrap timeout.** ``KafkaConnection.initialize``
catches every error of the login and only closes the connection with it; the manager's
``_connect`` then takes the attempt for a success and forgets the node's auth failure, so the
check that stops a client on a cached auth failure (``maybe_raise_auth_failure``) never fires:
``KafkaAdminClient`` with a wrong password tried again every backoff and raised ``Unable to
bootstrap`` after its 30 s (``journeys worker`` waited that long before its topic check failed,
and said nothing of the password). :func:`_initialize` raises an authentication or
authorization error after closing, as the manager expects, so the next attempt raises it
(``SaslAuthenticationFailedError: … invalid credentials …``) within a second.

All three are installed only on the kafka-python versions they were written against (3.0.x, whose
``kafka.net`` module layout they replace methods of); on another version :func:`install` does
nothing and returns False (``tests/unit/test_kafka_net_fixes.py`` then fails, on purpose).
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import Any

log = logging.getLogger(__name__)

_installed = False


async def _read_from_sock(self: Any) -> None:
    """``KafkaTCPTransport._read_from_sock`` (3.0.12), but bytes read before an EOF or a read error
    reach the connection, and its waiting requests run, before the transport is aborted."""
    import kafka.errors as errors

    while self._read and not self._closed:
        await self._net.wait_read(self._sock)
        received, err = self._sock_recv()
        if received or err is None:
            log.debug("%s: received %d bytes", self, len(received))
            self.last_read = time.monotonic()
            if self._protocol and self._protocol._sensors:
                self._protocol._sensors.bytes_received.record(len(received))
            try:
                self._protocol.data_received(received)
            except errors.KafkaProtocolError as exc:
                return self.abort(error=exc)
        if err is not None:
            if received and not self._closed:
                # the response just completed (e.g. a refused SASL login) wakes the task that sent
                # its request: let it run (it may close the connection with the broker's error)
                await self._net.sleep(0)
            return self.abort(error=err)


async def _handshake(self: Any, timeout_at: float | None = None) -> None:
    """``KafkaSSLTransport.handshake`` with a deadline (``time.monotonic()``; None: none)."""
    import kafka.errors as errors

    started = time.monotonic()
    while True:
        try:
            self._sock.do_handshake()
            log.info("%s: connected to %s", self, self._sock)
            return
        except ssl.SSLWantReadError:
            wait = self._net.wait_read
        except ssl.SSLWantWriteError:
            wait = self._net.wait_write
        try:
            await wait(self._sock, timeout_at=timeout_at)
        except errors.KafkaTimeoutError:
            raise errors.KafkaTimeoutError(
                f"TLS handshake not completed within {time.monotonic() - started:.1f} s") from None


async def _build_transport(self: Any, node: Any, timeout_at: float | None = None) -> Any:
    """``KafkaConnectionManager._build_transport`` (3.0.12) with a deadline on the TLS handshake."""
    import kafka.errors as errors
    from kafka.net.inet import create_connection
    from kafka.net.transport import KafkaSSLTransport, KafkaTCPTransport

    sock = await create_connection(self._net, node.host, node.port, self.config["socket_options"],
                                   proxy_url=self.config["proxy_url"], timeout_at=timeout_at)
    if not self.ssl_enabled:
        transport = KafkaTCPTransport(self._net, sock, host=node.host)
        await transport.handshake()
        return transport
    ssl_configs = {key: value for key, value in self.config.items() if key.startswith("ssl_")}
    try:
        transport = KafkaSSLTransport(self._net, sock, host=node.host, **ssl_configs)
    except BaseException:
        sock.close()
        raise
    deadline = time.monotonic() + self.socket_connection_setup_timeout_ms(node.node_id) / 1000
    if timeout_at is not None:
        deadline = min(deadline, timeout_at)
    try:
        await _handshake(transport, deadline)
    except Exception as exc:
        transport.close()
        raise errors.KafkaConnectionError(f"Handshake failed: {exc}") from exc
    return transport


async def _initialize(self: Any, timeout_at: float | None = None) -> None:
    """``KafkaConnection.initialize`` (3.0.12), but a refused login (authentication or
    authorization) is raised after the connection is closed with it, so the manager caches it
    and stops the client, instead of taking the attempt for a connection and retrying."""
    import kafka.errors as errors

    if timeout_at is None:
        timeout_at = self._timeout_at()
    try:
        await self._get_api_versions(timeout_at)
        if self.sasl_enabled:
            await self._sasl_authenticate(timeout_at)
    except Exception as error:
        self.close(error)
        if isinstance(error, (errors.SaslAuthenticationFailedError, errors.AuthorizationError)):
            raise
    else:
        self._init_complete()
        _connection_log.info("%s: Connected", self)


_connection_log = logging.getLogger("kafka.net.connection")


def install() -> bool:
    """Install the fixes once per process; True if they are (or already were) in place."""
    global _installed
    if _installed:
        return True
    try:
        from kafka.net.connection import KafkaConnection
        from kafka.net.manager import KafkaConnectionManager
        from kafka.net.transport import KafkaSSLTransport, KafkaTCPTransport
        from kafka.version import __version__
    except ImportError:
        return False
    if not __version__.startswith("3.0.") or not all(
            hasattr(cls, name) for cls, name in ((KafkaTCPTransport, "_read_from_sock"),
                                                 (KafkaTCPTransport, "_sock_recv"),
                                                 (KafkaSSLTransport, "handshake"),
                                                 (KafkaConnectionManager, "_build_transport"),
                                                 (KafkaConnectionManager, "socket_connection_setup_timeout_ms"),
                                                 (KafkaConnectionManager, "maybe_raise_auth_failure"),
                                                 (KafkaConnection, "initialize"),
                                                 (KafkaConnection, "_init_complete"),
                                                 (KafkaConnection, "_sasl_authenticate"))):
        log.warning("kafka-python %s: streams.kafka_net_fixes not installed (written for 3.0.x)", __version__)
        return False
    KafkaTCPTransport._read_from_sock = _read_from_sock  # KafkaSSLTransport inherits it
    KafkaConnectionManager._build_transport = _build_transport
    KafkaConnection.initialize = _initialize
    _installed = True
    return True
