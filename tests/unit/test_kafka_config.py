"""Kafka connection options from settings (streams/kafka_config.py) and their validation."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaProducer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from schemas.errors import ConfigurationError
from streams import kafka_config as kc
from streams.collector.kafka_out import KafkaOut
from streams.settings import Settings

SECRET = "pw-6b1f-do-not-print"
SASL = dict(kafka_sasl_username="alice", kafka_sasl_password=SECRET)


@pytest.fixture(autouse=True)
def _no_journeys_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("JOURNEYS_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed certificate (also its own CA) and its key, as PEM files."""
    out = tmp_path_factory.mktemp("pem")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (out / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    return {"ca": out / "cert.pem", "cert": out / "cert.pem", "key": out / "key.pem"}


# -- PLAINTEXT: exactly what the connection points passed before -------------------------------
def test_plaintext_is_just_the_bootstrap_servers() -> None:
    settings = Settings(kafka_bootstrap="k1:9092, k2:9093")
    assert kc.client_options(settings) == {"bootstrap_servers": ["k1:9092", "k2:9093"]}
    assert kc.security_options(settings) == {}
    assert kc.ssl_context(settings) is None
    old_broker = ";".join(f"kafka://{b.strip()}" for b in settings.kafka_bootstrap.split(","))
    assert kc.faust_options(settings) == {"broker": old_broker} == {"broker": "kafka://k1:9092;kafka://k2:9093"}
    assert KafkaOut.from_settings(settings)._security == {}


# -- SASL ---------------------------------------------------------------------------------------
def test_sasl_plaintext_options_for_every_client() -> None:
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", **SASL)
    options = kc.client_options(settings)
    assert options == {"bootstrap_servers": ["127.0.0.1:9092"], "security_protocol": "SASL_PLAINTEXT",
                       "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "alice",
                       "sasl_plain_password": SECRET}
    assert isinstance(options["sasl_plain_password"], kc.Password)
    for client in (KafkaProducer, KafkaConsumer, KafkaAdminClient):  # every keyword is one it knows
        assert set(options) <= set(client.DEFAULT_CONFIG), client

    credentials = kc.faust_options(settings)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials_to_aiokafka_auth(credentials) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice", "sasl_plain_password": SECRET, "ssl_context": None}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_each_mechanism_reaches_faust_and_aiokafka(mechanism: str) -> None:
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism=mechanism, **SASL)
    assert kc.client_options(settings)["sasl_mechanism"] == mechanism
    auth = credentials_to_aiokafka_auth(kc.faust_options(settings)["broker_credentials"])
    assert auth["sasl_mechanism"] == mechanism

    async def build() -> None:  # aiokafka validates its keywords when constructed
        producer = AIOKafkaProducer(**kc.client_options(settings))
        assert producer.client._sasl_mechanism == mechanism

    asyncio.run(build())


def test_sasl_ssl_with_a_client_certificate(pem: dict[str, Path]) -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=pem["ca"], kafka_ssl_certfile=pem["cert"],
                        kafka_ssl_keyfile=pem["key"], **SASL)
    options = kc.client_options(settings)
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert options["security_protocol"] == "SASL_SSL"
    auth = credentials_to_aiokafka_auth(kc.faust_options(settings)["broker_credentials"])
    assert auth["security_protocol"] == "SASL_SSL" and isinstance(auth["ssl_context"], ssl.SSLContext)
    assert isinstance(KafkaOut.from_settings(settings)._security["ssl_context"], ssl.SSLContext)


def test_ssl_only_uses_faust_ssl_credentials(pem: dict[str, Path]) -> None:
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=pem["ca"], kafka_ssl_check_hostname=False)
    options = kc.client_options(settings)
    assert set(options) == {"bootstrap_servers", "security_protocol", "ssl_context"}
    assert options["ssl_context"].check_hostname is False
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED  # the chain is still checked
    credentials = kc.faust_options(settings)["broker_credentials"]
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SSL"


def test_a_missing_or_bad_tls_file_names_the_setting(tmp_path: Path, pem: dict[str, Path]) -> None:
    missing = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "nope.pem")
    with pytest.raises(ConfigurationError, match="JOURNEYS_KAFKA_SSL_CAFILE=.*nope.pem: no such file"):
        kc.client_options(missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="JOURNEYS_KAFKA_SSL_"):
        kc.ssl_context(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=garbage))


# -- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("values", "message"), [
    ({"kafka_security_protocol": "SASL_SSL"}, "needs JOURNEYS_KAFKA_SASL_USERNAME and JOURNEYS_KAFKA_SASL_PASSWORD"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_password": SECRET},
     "needs JOURNEYS_KAFKA_SASL_USERNAME"),
    ({"kafka_sasl_username": "alice", "kafka_sasl_password": SECRET}, "PLAINTEXT does not authenticate"),
    ({"kafka_ssl_cafile": "/ca.pem"}, "JOURNEYS_KAFKA_SSL_CAFILE set but JOURNEYS_KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "/c.pem"}, "CERTFILE and JOURNEYS_KAFKA_SSL_KEYFILE go"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "/k.pem"}, "CERTFILE and JOURNEYS_KAFKA_SSL_KEYFILE go"),
])
def test_inconsistent_security_settings_are_refused_without_echoing_the_password(values: dict,
                                                                                 message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        Settings(**values)
    assert SECRET not in str(info.value)


def test_unknown_protocol_or_mechanism_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings(kafka_security_protocol="SASL")
    with pytest.raises(ValidationError):
        Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="GSSAPI", **SASL)


# -- secrets directory --------------------------------------------------------------------------
def test_the_password_can_come_from_the_secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "journeys_kafka_sasl_password").write_text(SECRET + "\n")
    monkeypatch.setenv("JOURNEYS_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("JOURNEYS_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("JOURNEYS_KAFKA_SASL_USERNAME", "alice")
    settings = Settings()
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == SECRET
    monkeypatch.setenv("JOURNEYS_KAFKA_SASL_PASSWORD", "from-env")  # the environment wins over the file
    assert Settings().kafka_sasl_password.get_secret_value() == "from-env"  # type: ignore[union-attr]


def test_a_secrets_dir_that_is_not_a_directory_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_SECRETS_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="JOURNEYS_SECRETS_DIR=.*missing is not a directory"):
        Settings()


def test_without_a_secrets_dir_nothing_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "journeys_kafka_sasl_password").write_text(SECRET)
    assert Settings().kafka_sasl_password is None


# -- the password stays out of reprs and logs ---------------------------------------------------
def test_the_password_never_shows_in_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", **SASL)
    options = kc.client_options(settings)
    faust_options = kc.faust_options(settings)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("kafka.admin.client").debug("Starting KafkaAdminClient with configuration: %s", options)
        logging.getLogger("test").info("options %r, faust %s", options, faust_options)
    for text in (repr(settings), str(settings), repr(options), str(options), repr(faust_options),
                 repr(faust_options["broker_credentials"]), caplog.text):
        assert SECRET not in text
    assert "'sasl_plain_password': '**********'" in caplog.text
    assert options["sasl_plain_password"] == SECRET and options["sasl_plain_password"].encode() == SECRET.encode()
