"""Handlers declare the payload of the topic they consume; a service whose handler and registry disagree is refused."""

from __future__ import annotations

from typing import Any

import pytest

from allot.contracts.envelope import Envelope
from allot.contracts.payloads import ActionExecuted, GuardrailBlocked, MetricsIngested
from allot.runtime.consumer import BatchContext, handler_payloads
from allot.runtime.docs import asyncapi_document, service_specs
from allot.runtime.service import ServiceSpec


async def on_metrics(ctx: BatchContext, events: list[Envelope[MetricsIngested]]) -> None:
    return None


async def on_either(ctx: BatchContext, events: list[Envelope[GuardrailBlocked | ActionExecuted]]) -> None:
    return None


async def on_anything(ctx: BatchContext, events: list[Envelope[Any]]) -> None:
    return None


def test_the_declared_payloads_are_read_from_the_signature() -> None:
    assert handler_payloads(on_metrics) == (MetricsIngested,)
    assert handler_payloads(on_either) == (GuardrailBlocked, ActionExecuted)
    assert handler_payloads(on_anything) == ()


def test_a_handler_that_does_not_declare_its_topics_payload_is_refused() -> None:
    ServiceSpec(name="ok", consumes={"metrics.ingested": on_metrics, "action.executed": on_either})
    refusal = r"on_metrics consumes action.executed \(ActionExecuted\) but declares MetricsIngested"
    with pytest.raises(TypeError, match=refusal):
        ServiceSpec(name="wrong", consumes={"action.executed": on_metrics})
    with pytest.raises(TypeError, match="declares Any"):
        ServiceSpec(name="untyped", consumes={"metrics.ingested": on_anything})


def test_every_service_documents_the_payloads_its_handlers_declare() -> None:
    specs = service_specs()
    assert {s.name for s in specs} >= {"pools", "rules", "pacing", "guardrails", "executor", "ingest", "connections"}
    for spec in specs:
        messages = asyncapi_document(spec)["components"]["messages"]
        for topic, handler in spec.consumes.items():
            ref = messages[f"{spec.name}:{topic}:SubscribeMessage"]["payload"]["$ref"]
            documented = ref.rsplit("/", 1)[1].replace("%5B", "[").replace("%5D", "]")
            assert documented in {f"Envelope[{p.__name__}]" for p in handler_payloads(handler)}, (spec.name, topic)
