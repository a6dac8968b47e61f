"""Kafka connection options from settings, for each client library the tracker uses.

Every Kafka connection point asks this module: the kafka-python clients (producer, admin,
DLQ consumer), the collector's aiokafka producer and the Faust app. With the default
``PLAINTEXT`` protocol the options are exactly the bootstrap servers, as before.

The SASL password leaves its ``SecretStr`` only as a :class:`Password`: a ``str`` whose
``repr`` is a mask, so a client that logs its configuration (kafka-python's admin client does,
at DEBUG) or a logged options mapping never shows it.
"""

from __future__ import annotations

import ssl
from typing import Any

from schemas.errors import ConfigurationError
from streams.settings import Settings

MASK = "**********"


class Password(str):
    """The SASL password as the clients need it (a ``str``), shown as a mask by ``repr``.

    Containers (dicts, lists) and ``%r`` print their items with ``repr``, so a logged client
    configuration reads ``'sasl_plain_password': '**********'``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(MASK)


def bootstrap_servers(settings: Settings) -> list[str]:
    """``JOURNEYS_KAFKA_BOOTSTRAP`` split into ``host:port`` entries."""
    return [b.strip() for b in settings.kafka_bootstrap.split(",")]


def uses_sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol.startswith("SASL_")


def uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol.endswith("SSL")


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The client TLS context (CA, optional client certificate), or ``None`` without TLS."""
    if not uses_tls(settings):
        return None
    from aiokafka.helpers import create_ssl_context

    for env, path in (("JOURNEYS_KAFKA_SSL_CAFILE", settings.kafka_ssl_cafile),
                      ("JOURNEYS_KAFKA_SSL_CERTFILE", settings.kafka_ssl_certfile),
                      ("JOURNEYS_KAFKA_SSL_KEYFILE", settings.kafka_ssl_keyfile)):
        if path is not None and not path.is_file():
            raise ConfigurationError(f"{env}={path}: no such file")
    try:
        context = create_ssl_context(cafile=settings.kafka_ssl_cafile, certfile=settings.kafka_ssl_certfile,
                                     keyfile=settings.kafka_ssl_keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(f"cannot load the Kafka TLS files (JOURNEYS_KAFKA_SSL_*): {exc}") from exc
    if not settings.kafka_ssl_check_hostname:
        context.check_hostname = False  # the chain is still verified against the CA
    return context


def _sasl(settings: Settings) -> dict[str, Any]:
    password = settings.kafka_sasl_password
    return {
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": settings.kafka_sasl_username,
        "sasl_plain_password": Password(password.get_secret_value()) if password is not None else None,
    }


def security_options(settings: Settings) -> dict[str, Any]:
    """``security_protocol``, SASL and ``ssl_context`` keywords; empty for ``PLAINTEXT`` (the clients' defaults)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if uses_sasl(settings):
        options.update(_sasl(settings))
    if uses_tls(settings):
        options["ssl_context"] = ssl_context(settings)
    return options


def client_options(settings: Settings) -> dict[str, Any]:
    """Connection keywords for kafka-python (``KafkaProducer``, ``KafkaConsumer``, ``KafkaAdminClient``)
    and aiokafka (``AIOKafkaProducer`` …) alike: both take ``bootstrap_servers``,
    ``security_protocol``, ``sasl_mechanism``, ``sasl_plain_username``/``_password`` and a ready
    ``ssl_context`` under the same names.

    Installs :mod:`streams.kafka_net_fixes` (kafka-python dropped a broker's last answer before a
    close, and had no deadline on the TLS handshake)."""
    from streams import kafka_net_fixes

    kafka_net_fixes.install()
    return {"bootstrap_servers": bootstrap_servers(settings), **security_options(settings)}


def faust_options(settings: Settings) -> dict[str, Any]:
    """``broker`` (and ``broker_credentials`` unless PLAINTEXT) for :class:`faust.App`.

    Faust's aiokafka driver takes the protocol from the credentials object, so the broker URLs
    keep the ``kafka://`` scheme.
    """
    options: dict[str, Any] = {"broker": ";".join(f"kafka://{b}" for b in bootstrap_servers(settings))}
    if settings.kafka_security_protocol == "PLAINTEXT":
        return options
    import faust

    context = ssl_context(settings)
    if uses_sasl(settings):
        sasl = _sasl(settings)
        # SASLCredentials picks SASL_SSL when given a context, SASL_PLAINTEXT otherwise; its repr
        # shows the user name only.
        options["broker_credentials"] = faust.SASLCredentials(
            username=sasl["sasl_plain_username"], password=sasl["sasl_plain_password"],
            mechanism=sasl["sasl_mechanism"], ssl_context=context,
        )
    else:
        options["broker_credentials"] = faust.SSLCredentials(context)
    return options
