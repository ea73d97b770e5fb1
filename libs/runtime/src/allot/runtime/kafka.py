"""The one broker factory and Kafka client configuration, from Settings (PLAINTEXT, SSL or SASL)."""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from allot.contracts.registry import DLQ_PARTITIONS, DLQ_RETENTION_MS, TOPICS
from allot.runtime.logging import get_logger
from allot.runtime.settings import Settings

log = get_logger(__name__)


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    ctx = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_ssl_certfile:
        ctx.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    return ctx


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection options for raw aiokafka clients (relay, CLI, benchmarks), same as the broker's."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    ctx = _ssl_context(settings)
    if ctx is not None:
        kwargs["ssl_context"] = ctx
    if settings.kafka_security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        kwargs["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        )
    return kwargs


def _security(settings: Settings) -> BaseSecurity | None:
    ctx = _ssl_context(settings)
    proto = settings.kafka_security_protocol
    if proto == "PLAINTEXT":
        return None
    if proto == "SSL":
        return BaseSecurity(ssl_context=ctx, use_ssl=True)
    user = settings.kafka_sasl_username or ""
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    use_ssl = proto == "SASL_SSL"
    mech = settings.kafka_sasl_mechanism or "PLAIN"
    cls = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}[mech]
    return cls(username=user, password=password, ssl_context=ctx, use_ssl=use_ssl)


def make_broker(settings: Settings) -> KafkaBroker:
    """A FastStream KafkaBroker configured from settings; nothing connects until it is started."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        security=_security(settings),
        client_id=f"allot-{settings.service_name}",
        enable_idempotence=settings.kafka_enable_idempotence,
        max_batch_size=1_048_576,
        logger=None,
    )


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """A raw aiokafka producer with acks=all (idempotence only where the broker supports it)."""
    opts: dict[str, Any] = {
        **client_kwargs(settings),
        "acks": "all",
        "enable_idempotence": settings.kafka_enable_idempotence,
        "linger_ms": 5,
        "max_batch_size": 1_048_576,
        "max_request_size": 2_097_152,
        "client_id": f"allot-{settings.service_name}-producer",
    }
    opts.update(overrides)
    return AIOKafkaProducer(**opts)


async def ensure_topics(settings: Settings, names: list[str] | None = None) -> list[str]:
    """Create registry topics (and their DLQs) that are missing; returns the names created."""
    wanted: list[NewTopic] = []
    for spec in TOPICS.values():
        if names is None or spec.name in names:
            wanted.append(NewTopic(spec.name, spec.partitions, settings.kafka_replication_factor,
                                   topic_configs={"retention.ms": str(spec.retention_ms)}))
        if names is None or spec.dlq in names or spec.name in names:
            wanted.append(NewTopic(spec.dlq, DLQ_PARTITIONS, settings.kafka_replication_factor,
                                   topic_configs={"retention.ms": str(DLQ_RETENTION_MS)}))
    admin = AIOKafkaAdminClient(**client_kwargs(settings), client_id="allot-admin")
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            try:
                resp = await admin.create_topics(missing)
                for topic_name, code, *_ in getattr(resp, "topic_errors", []):
                    if code in (0,):
                        created.append(topic_name)
                    elif code != TopicAlreadyExistsError.errno:
                        log.warning("topic_create_failed", topic=topic_name, code=code)
            except TopicAlreadyExistsError:
                log.info("topics_created_concurrently")  # another instance created them first: nothing to do
    finally:
        await admin.close()
    if created:
        log.info("topics_created", topics=created)
    return created
