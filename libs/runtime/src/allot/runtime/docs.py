"""`make schemas`: JSON Schema of every topic's envelope, the AsyncAPI document of every service, and the
README's topic table, all generated from the registry and the service specs."""

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
from allot.contracts.registry import TOPICS
from allot.runtime.consumer import handler_payloads
from allot.runtime.openapi import service_openapi
from allot.runtime.service import ServiceSpec, module_exists

SERVICE_MODULES = ["guardrails", "executor", "pools", "rules", "pacing", "sandbox", "connections", "notify", "ingest"]
README_BEGIN = "<!-- topic-table:begin -->"
README_END = "<!-- topic-table:end -->"


def topic_schema(topic_name: str) -> dict[str, Any]:
    """JSON Schema of the full record (envelope + payload) of one topic."""
    schema = envelope_type(topic_name).model_json_schema()
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
    return document


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
