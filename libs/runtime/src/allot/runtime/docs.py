"""`make schemas`: JSON Schema of every topic's envelope, the AsyncAPI document of every service, and the
README's topic table, all generated from the registry and the service specs.

The AsyncAPI documents say what a client needs besides the payload: every message's Kafka headers (the
envelope's, ``allot.contracts.codec.encode``) and key (the registry's key field), every channel's partitions and
retention, and the dead-letter channel (``TOPIC.dlq``, with the ``x-dlq-*`` headers the consumer adds) that each
consumed topic's failures go to."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

import orjson
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from allot.contracts.codec import envelope_type
from allot.contracts.envelope import envelope_model
from allot.contracts.registry import DLQ_PARTITIONS, DLQ_RETENTION_MS, TOPICS
from allot.runtime.consumer import handler_payloads
from allot.runtime.openapi import service_openapi
from allot.runtime.service import ServiceSpec, module_exists

SERVICE_MODULES = ["guardrails", "executor", "pools", "rules", "pacing", "sandbox", "connections", "notify", "ingest"]
README_BEGIN = "<!-- topic-table:begin -->"
README_END = "<!-- topic-table:end -->"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: Where the committed schemas live: each topic's ``$id`` is this base + ``/<topic>.json``.
SCHEMA_BASE = "https://git.example.com/allot/allot/-/raw/main/docs/schemas"
KAFKA_BINDING = "0.4.0"


def _header_schema(names: dict[str, str]) -> dict[str, Any]:
    return {"type": "object", "required": sorted(names),
            "properties": {name: {"type": "string", "description": text} for name, text in names.items()}}


#: The headers ``allot.contracts.codec.encode`` puts on every record (UTF-8 strings).
RECORD_HEADERS = {
    "event_type": "The topic's event type (equals the topic name).",
    "schema_version": "The payload's schema version (integer as text); unknown versions go to the DLQ.",
    "correlation_id": "The id shared by every event of one causal chain.",
    "workspace_id": "The workspace (tenant) the event belongs to.",
    "event_id": "The event's id (UUID): consumers process each id once.",
}
#: The headers the idempotent consumer adds to a record it dead-letters (``allot.runtime.consumer``).
DLQ_HEADERS = {
    "x-dlq-reason": "Why the record was dead-lettered (e.g. undecodable, invalid, poison).",
    "x-dlq-error": "The error, at most 2000 characters.",
    "x-dlq-source-topic": "The topic the record was read from.",
    "x-dlq-partition": "Its partition there.",
    "x-dlq-offset": "Its offset there.",
    "x-dlq-consumer-group": "The consumer group (service) that gave up on it.",
    "x-dlq-failed-at": "When (ISO 8601, UTC).",
}


def topic_schema(topic_name: str) -> dict[str, Any]:
    """JSON Schema of the full record (envelope + payload) of one topic."""
    schema = {"$schema": JSON_SCHEMA_DIALECT, "$id": f"{SCHEMA_BASE}/{topic_name}.json",
              **envelope_type(topic_name).model_json_schema()}
    schema["title"] = topic_name
    schema["x-partition-key"] = TOPICS[topic_name].key_field
    schema["x-schema-version"] = TOPICS[topic_name].schema_version
    return schema


def service_specs() -> list[ServiceSpec]:
    specs = []
    for name in SERVICE_MODULES:
        if not module_exists(f"allot.{name}.service"):
            continue
        module = importlib.import_module(f"allot.{name}.service")
        spec = getattr(module, "SPEC", None)
        if spec is None and hasattr(module, "make_spec"):
            spec = module.make_spec()
        if isinstance(spec, ServiceSpec):
            specs.append(spec)
    return specs


def asyncapi_document(spec: ServiceSpec) -> dict[str, Any]:
    """AsyncAPI 3.0 of a service: the topics it consumes, each typed by its handler's signature (``ServiceSpec``
    checks that it matches the registry's payload), and the topics it produces."""
    broker = KafkaBroker("kafka:9092")
    for topic_name, real_handler in spec.consumes.items():
        declared = handler_payloads(real_handler)
        # one payload: the handler's; a handler shared by several topics (a union): this topic's registry payload
        model = envelope_model(declared[0]) if len(declared) == 1 else envelope_type(topic_name)

        async def handler(event: Any) -> None:  # documentation only: the real consumer is IdempotentConsumer
            return None

        handler.__annotations__ = {"event": model, "return": None}
        handler.__name__ = f"on_{topic_name.replace('.', '_')}"
        broker.subscriber(topic_name, group_id=spec.name, title=f"{spec.name}:{topic_name}",
                          description=TOPICS[topic_name].description)(handler)
    for topic_name in spec.produces:
        broker.publisher(topic_name, schema=envelope_type(topic_name), title=f"{spec.name}:{topic_name}:publish",
                         description=TOPICS[topic_name].description)
    api = AsyncAPI(broker, title=f"Allot {spec.name}", version="1.0.0", description=spec.description or spec.title)
    document: dict[str, Any] = orjson.loads(api.to_specification().to_json())
    return with_kafka_details(document, spec)


def _kafka_channel(partitions: int, retention_ms: int, topic_name: str) -> dict[str, Any]:
    return {"kafka": {"bindingVersion": KAFKA_BINDING, "topic": topic_name, "partitions": partitions,
                      "topicConfiguration": {"retention.ms": retention_ms}}}


def with_kafka_details(document: dict[str, Any], spec: ServiceSpec) -> dict[str, Any]:
    """Add what FastStream does not write: the messages' headers and key, the channels' partitions and retention,
    and a DLQ channel (with its send operation) for every topic the service consumes."""
    messages = document["components"]["messages"]
    for channel in list(document["channels"].values()):
        topic = TOPICS[channel["address"]]
        channel["bindings"] = _kafka_channel(topic.partitions, topic.retention_ms, topic.name)
        for ref in channel["messages"].values():
            message = messages[ref["$ref"].rsplit("/", 1)[-1]]
            message["headers"] = _header_schema(RECORD_HEADERS)
            key = {"type": "string", "description": f"The payload's {topic.key_field} (kept in order per key)."}
            message["bindings"] = {"kafka": {"bindingVersion": KAFKA_BINDING, "key": key}}
    for topic_name in spec.consumes:
        topic = TOPICS[topic_name]
        name = f"{spec.name}:{topic.dlq}:publish"
        consumed = messages[document["channels"][f"{spec.name}:{topic_name}"]["messages"]["SubscribeMessage"]["$ref"]
                            .rsplit("/", 1)[-1]]
        messages[f"{name}:Message"] = {
            "title": f"{name}:Message", "payload": consumed["payload"],
            "headers": _header_schema({**RECORD_HEADERS, **DLQ_HEADERS}),
            "summary": f"A {topic_name} record {spec.name} could not process: its key, value and headers unchanged, "
                       "plus the x-dlq-* headers. The payload may not match the schema (that can be why).",
            "bindings": consumed["bindings"]}
        document["channels"][name] = {
            "address": topic.dlq, "description": f"Dead letters of {topic_name} (redrive: allot dlq redrive).",
            "bindings": _kafka_channel(DLQ_PARTITIONS, DLQ_RETENTION_MS, topic.dlq),
            "messages": {"Message": {"$ref": f"#/components/messages/{name}:Message"}},
            "servers": channel_servers(document)}
        document["operations"][name] = {
            "action": "send", "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/Message"}]}
    return document


def channel_servers(document: dict[str, Any]) -> list[dict[str, str]]:
    return [{"$ref": f"#/servers/{server}"} for server in document.get("servers", {})]


def topic_table() -> str:
    lines = ["| topic | payload | key | partitions | retention (days) | DLQ |", "|---|---|---|---|---|---|"]
    for spec in TOPICS.values():
        lines.append(f"| `{spec.name}` | `{spec.payload.__name__}` | `{spec.key_field}` | {spec.partitions} | "
                     f"{spec.retention_ms // 86_400_000} | `{spec.dlq}` |")
    return "\n".join(lines)


def write_all(out: Path, readme: Path | None = None) -> list[Path]:
    written: list[Path] = []
    (out / "schemas").mkdir(parents=True, exist_ok=True)
    (out / "asyncapi").mkdir(parents=True, exist_ok=True)
    for name in TOPICS:
        path = out / "schemas" / f"{name}.json"
        path.write_bytes(orjson.dumps(topic_schema(name), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        written.append(path)
    for spec in service_specs():
        path = out / "asyncapi" / f"{spec.name}.json"
        document = asyncapi_document(spec)
        path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        written.append(path)
    (out / "openapi").mkdir(parents=True, exist_ok=True)
    for spec in service_specs():
        if spec.routers:  # the OpenAPI document of every service with an HTTP API, as its /openapi.json
            path = out / "openapi" / f"{spec.name}.json"
            path.write_bytes(orjson.dumps(service_openapi(spec), option=orjson.OPT_INDENT_2) + b"\n")
            written.append(path)
    if readme is not None and readme.exists():
        text = readme.read_text()
        if README_BEGIN in text and README_END in text:
            head, rest = text.split(README_BEGIN, 1)
            _, tail = rest.split(README_END, 1)
            readme.write_text(f"{head}{README_BEGIN}\n{topic_table()}\n{README_END}{tail}")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs")
    parser.add_argument("--readme", default="README.md")
    args = parser.parse_args()
    for path in write_all(Path(args.out), Path(args.readme)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
