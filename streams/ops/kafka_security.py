"""How every Kafka client of erpbridge connects, from Settings, and a check that it can.

One place turns the `kafka_*` security settings into each client library's terms:
librdkafka properties for confluent-kafka (through `Settings.confluent_config`), keyword
arguments for aiokafka (the dispatcher and the ERP connector), and broker credentials for
Faust. `check_connection` is what processes run at start, so that a wrong password or an
untrusted certificate stops them within seconds with a message saying which, instead of
clients retrying forever; `refusal` says who the broker refused what, when its ACLs do.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import faust
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from faust.types.auth import CredentialsT

if TYPE_CHECKING:
    from streams.ops.settings import Settings

CHECK_TIMEOUT_SECONDS = 10.0
_ATTEMPT_SECONDS = 1.0
_CERTAIN = (KafkaError._AUTHENTICATION, KafkaError._SSL)


class KafkaAccessError(RuntimeError):
    """Kafka cannot be used with these settings; the message says why, never the password."""


def _uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def _uses_sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def _password(settings: Settings) -> str:
    # Settings refuse a SASL protocol without a password; this only narrows the type.
    assert settings.kafka_sasl_password is not None
    return settings.kafka_sasl_password.get_secret_value()


def confluent_security(settings: Settings) -> dict[str, str]:
    """librdkafka's names for the security settings (hostname verification stays on)."""
    config: dict[str, str] = {"security.protocol": settings.kafka_security_protocol}
    if _uses_sasl(settings):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username or ""
        config["sasl.password"] = _password(settings)
    files = {
        "ssl.ca.location": settings.kafka_ssl_ca_file,
        "ssl.certificate.location": settings.kafka_ssl_cert_file,
        "ssl.key.location": settings.kafka_ssl_key_file,
    }
    config.update({key: str(path) for key, path in files.items() if path is not None})
    return config


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of Python clients: brokers verified against the CA file (or the
    system's CAs) with their host names, and the client certificate for mutual TLS."""
    if not _uses_tls(settings):
        return None
    try:
        context = ssl.create_default_context(cafile=settings.kafka_ssl_ca_file)
    except ssl.SSLError as error:
        raise KafkaAccessError(
            f"ERPBRIDGE_KAFKA_SSL_CA_FILE={str(settings.kafka_ssl_ca_file)!r}: "
            f"not PEM CA certificates ({error.reason or error})"
        ) from None
    if settings.kafka_ssl_cert_file is not None:
        try:
            context.load_cert_chain(settings.kafka_ssl_cert_file, settings.kafka_ssl_key_file)
        except ssl.SSLError as error:
            raise KafkaAccessError(
                f"ERPBRIDGE_KAFKA_SSL_CERT_FILE={str(settings.kafka_ssl_cert_file)!r} and "
                f"ERPBRIDGE_KAFKA_SSL_KEY_FILE={str(settings.kafka_ssl_key_file)!r}: not a PEM "
                f"certificate and its unencrypted private key ({error.reason or error})"
            ) from None
    return context


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaConsumer and AIOKafkaProducer."""
    kwargs: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if _uses_sasl(settings):
        kwargs.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=_password(settings),
        )
    if _uses_tls(settings):
        kwargs["ssl_context"] = ssl_context(settings)
    return kwargs


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's `broker_credentials`, which it hands to each of its aiokafka clients."""
    if _uses_sasl(settings):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=_password(settings),
            # With a context Faust connects with SASL_SSL, without one SASL_PLAINTEXT.
            ssl_context=ssl_context(settings),
            mechanism=settings.kafka_sasl_mechanism,
        )
    context = ssl_context(settings)
    return None if context is None else faust.SSLCredentials(context)


def check_connection(settings: Settings, *, timeout: float = CHECK_TIMEOUT_SECONDS) -> None:
    """Return once the brokers answered a metadata request with these settings; raise
    KafkaAccessError naming the problem as soon as one is certain, or at the deadline."""
    ssl_context(settings)  # the Python clients' certificate files, checked as they load them
    errors: list[KafkaError] = []
    # librdkafka reports authentication and TLS failures through error_cb only; its own
    # log lines would repeat them, less clearly.
    config: dict[str, Any] = {
        **settings.confluent_config(),
        "error_cb": errors.append,
        "log_level": 0,
    }
    admin = AdminClient(config)
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=min(_ATTEMPT_SECONDS, max(deadline - time.monotonic(), 0.1)))
            return
        except KafkaException as exc:
            failure: KafkaError = exc.args[0]
        admin.poll(0)  # serves error_cb
        # These do not heal by retrying; an unreachable broker might, until the deadline.
        certain = [e for e in errors if _refused(e) or e.code() in _CERTAIN]
        if certain or time.monotonic() >= deadline:
            raise KafkaAccessError(_explain(settings, certain or errors or [failure], timeout))


def _refused(error: KafkaError) -> bool:
    """The broker ended the TLS handshake over the client's certificate (or its absence);
    librdkafka sees it on the first read, as a transport error."""
    return "alert bad certificate" in error.str() or "alert certificate required" in error.str()


def _explain(settings: Settings, errors: list[KafkaError], timeout: float) -> str:
    bootstrap = settings.require_bootstrap()
    protocol = settings.kafka_security_protocol
    error = errors[0]
    detail = error.str()
    if _refused(error):
        cert = settings.kafka_ssl_cert_file
        offered = f"ERPBRIDGE_KAFKA_SSL_CERT_FILE={str(cert)!r}" if cert else "no certificate"
        return (
            f"Kafka TLS: the broker at {bootstrap} refused this client's certificate "
            f"({offered}); it requires one signed by a CA it trusts: {detail}"
        )
    if error.code() == KafkaError._AUTHENTICATION:
        return (
            f"Kafka authentication failed for user {settings.kafka_sasl_username!r} with "
            f"mechanism {settings.kafka_sasl_mechanism} at {bootstrap} (check "
            f"ERPBRIDGE_KAFKA_SASL_USERNAME and ERPBRIDGE_KAFKA_SASL_PASSWORD): {detail}"
        )
    if error.code() == KafkaError._SSL and "certificate verify failed" in detail:
        ca = settings.kafka_ssl_ca_file
        trusted = f"ERPBRIDGE_KAFKA_SSL_CA_FILE={str(ca)!r}" if ca else "the system's CAs"
        return (
            f"Kafka TLS: certificate verify failed: the broker at {bootstrap} presented a "
            f"certificate that {trusted} does not trust, or not for that host name: {detail}"
        )
    if error.code() == KafkaError._SSL:
        return f"Kafka TLS handshake with {bootstrap} failed: {detail}"
    return f"cannot reach Kafka at {bootstrap} with {protocol} within {timeout:g}s: {detail}"


def principal_of(config: Mapping[str, Any]) -> str:
    """Who the broker takes a client of these librdkafka settings for, in words."""
    protocol = config.get("security.protocol", "PLAINTEXT")
    if str(protocol).startswith("SASL_"):
        return f"Kafka user {config.get('sasl.username')}"
    if "ssl.certificate.location" in config:
        return f"the client certificate {config['ssl.certificate.location']}"
    return f"an anonymous {protocol} client"


def refusal(config: Mapping[str, Any], operation: str, resource: str) -> str:
    """The broker's authorization failure as what it means: `operation` ("Write to", "Read")
    on `resource` ("topic orders.status") is not among the principal's ACLs."""
    return (
        f"{principal_of(config)} may not {operation} {resource}: the cluster's ACLs do not "
        "allow it (erpbridge's principals and their ACLs: `erpbridge acls list`)"
    )
