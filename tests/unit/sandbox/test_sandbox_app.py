"""The sandbox platform's HTTP contract: auth, validation, call log, faults and out-of-band edits (in-process ASGI)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allot.contracts.codec import decode, encode
from allot.contracts.envelope import new_envelope
from allot.contracts.payloads import MetricsIngested
from allot.sandbox.app import create_app
from allot.sandbox.state import SandboxState

TOKEN = "test-sandbox-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def state() -> SandboxState:
    return SandboxState(api_token=TOKEN)


@pytest.fixture
async def api(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox", headers=AUTH) as client:
        yield client


async def make(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body.setdefault("ad_account_id", "acc-1")
    body.setdefault("entity_type", "adset")
    resp = await api.post("/sandbox/entities", json=body)
    assert resp.status_code == 201, resp.text
    result: dict[str, Any] = resp.json()
    return result


def field_of(resp: httpx.Response) -> str:
    assert resp.status_code == 422, resp.text
    return str(resp.json()["detail"][0]["loc"][-1])


async def test_healthz_needs_no_token(api: httpx.AsyncClient) -> None:
    resp = await api.get("/healthz", headers={"Authorization": ""})
    assert resp.json() == {"status": "ok"}


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dGVzdA==", "Bearer "])
async def test_missing_or_wrong_token_is_401(api: httpx.AsyncClient, header: str | None) -> None:
    entity = await make(api, daily_budget_cents=5_000)
    headers = {"Authorization": header} if header is not None else {}
    async with httpx.AsyncClient(transport=api._transport, base_url="http://sandbox", headers=headers) as anon:
        for resp in (
            await anon.get(f"/v1/entities/{entity['id']}"),
            await anon.post(f"/v1/entities/{entity['id']}", json={"daily_budget_cents": 6_000}),
            await anon.get("/sandbox/calls"),
        ):
            assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    assert (await api.get(f"/v1/entities/{entity['id']}")).json()["daily_budget_cents"] == 5_000


async def test_create_read_and_write(api: httpx.AsyncClient) -> None:
    campaign = await make(api, entity_type="campaign", name="Brand", currency="EUR", ad_account_id="acc-eu")
    adset = await make(
        api,
        id="as-1",
        parent_id=campaign["id"],
        daily_budget_cents=5_000,
        currency="EUR",
        ad_account_id="acc-eu",
        profile="strong",
    )
    assert adset["currency"] == "EUR" and adset["parent_id"] == campaign["id"]
    resp = await api.post(
        "/v1/entities/as-1", json={"daily_budget_cents": 7_000, "status": "paused"}, headers={"Idempotency-Key": "a-1"}
    )
    assert resp.status_code == 200 and resp.json()["write_id"]
    got = (await api.get("/v1/entities/as-1")).json()
    assert (got["daily_budget_cents"], got["status"]) == (7_000, "paused")
    listed = (await api.get("/v1/entities", params={"ad_account_id": "acc-eu"})).json()["entities"]
    assert [e["id"] for e in listed] == [campaign["id"], "as-1"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"daily_budget_cents": 12.5}, "daily_budget_cents"),
        ({"daily_budget_cents": "7000"}, "daily_budget_cents"),
        ({"daily_budget_cents": -1}, "daily_budget_cents"),
        ({"daily_budget_cents": 150}, "daily_budget_cents"),  # below the platform minimum
        ({"status": "deleted"}, "status"),
        ({"budget": 7_000}, "budget"),
        ({}, "daily_budget_cents"),
    ],
)
async def test_invalid_writes_are_422_naming_the_field_and_change_nothing(
    api: httpx.AsyncClient, state: SandboxState, body: dict[str, Any], field: str
) -> None:
    entity = await make(api, daily_budget_cents=5_000)
    assert field_of(await api.post(f"/v1/entities/{entity['id']}", json=body)) == field
    assert state.calls == []


async def test_budget_write_on_entity_without_budget_is_422(api: httpx.AsyncClient) -> None:
    ad = await make(api, entity_type="ad")
    assert (
        field_of(await api.post(f"/v1/entities/{ad['id']}", json={"daily_budget_cents": 5_000})) == "daily_budget_cents"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"entity_type": "keyword"}, "entity_type"),
        ({"currency": "usd"}, "currency"),
        ({"parent_id": "nope"}, "parent_id"),
        ({"entity_type": "ad", "daily_budget_cents": 100}, "daily_budget_cents"),
        ({"profile": "legendary"}, "profile"),
        ({"curve": {"scale_cents": -5}}, "scale_cents"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_invalid_creates_are_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    body = {"ad_account_id": "acc-1", "entity_type": "adset", **body}
    assert field_of(await api.post("/sandbox/entities", json=body)) == field


async def test_account_currency_is_fixed_and_ids_are_unique(api: httpx.AsyncClient) -> None:
    await make(api, id="x-1", currency="USD")
    assert (
        await api.post("/sandbox/entities", json={"id": "x-1", "ad_account_id": "acc-1", "entity_type": "adset"})
    ).status_code == 409
    assert (
        field_of(
            await api.post(
                "/sandbox/entities", json={"ad_account_id": "acc-1", "entity_type": "adset", "currency": "EUR"}
            )
        )
        == "currency"
    )


async def test_unknown_entity_is_404(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/entities/ghost")).status_code == 404
    assert (await api.post("/v1/entities/ghost", json={"status": "paused"})).status_code == 404
    assert (await api.post("/v1/entities/ghost/relaunch")).status_code == 404
    assert (await api.post("/sandbox/out-of-band", json={"entity_id": "ghost", "status": "paused"})).status_code == 404


async def test_call_log_records_every_write_once_and_filters(api: httpx.AsyncClient) -> None:
    a = await make(api, daily_budget_cents=5_000)
    b = await make(api, daily_budget_cents=5_000)
    w1 = (
        await api.post(
            f"/v1/entities/{a['id']}", json={"daily_budget_cents": 6_000}, headers={"Idempotency-Key": "act-1"}
        )
    ).json()["write_id"]
    # A replay with the same key reaches the platform again: the log must show it (nothing hides a double apply).
    w2 = (
        await api.post(
            f"/v1/entities/{a['id']}", json={"daily_budget_cents": 6_000}, headers={"Idempotency-Key": "act-1"}
        )
    ).json()["write_id"]
    await api.post(f"/v1/entities/{b['id']}", json={"status": "paused"})
    await api.post("/sandbox/out-of-band", json={"entity_id": a["id"], "daily_budget_cents": 4_000})

    log_a = (await api.get("/sandbox/calls", params={"entity_id": a["id"]})).json()["calls"]
    assert [(c["write_id"], c["old"], c["new"], c["source"], c["idempotency_key"]) for c in log_a] == [
        (w1, 5_000, 6_000, "api", "act-1"),
        (w2, 6_000, 6_000, "api", "act-1"),
        (log_a[2]["write_id"], 6_000, 4_000, "human", None),
    ]
    humans = (await api.get("/sandbox/calls", params={"source": "human"})).json()["calls"]
    assert [c["entity_id"] for c in humans] == [a["id"]]
    later = (await api.get("/sandbox/calls", params={"since_seq": log_a[1]["seq"]})).json()["calls"]
    assert [c["seq"] for c in later] == [log_a[1]["seq"] + 1, log_a[1]["seq"] + 2]


async def test_out_of_band_edit_is_a_human_change(api: httpx.AsyncClient, state: SandboxState) -> None:
    entity = await make(api, daily_budget_cents=5_000)
    resp = await api.post(
        "/sandbox/out-of-band",
        json={"entity_id": entity["id"], "status": "paused", "daily_budget_cents": 100, "actor": "media-buyer"},
    )
    assert resp.status_code == 200
    got = (await api.get(f"/v1/entities/{entity['id']}")).json()
    assert (got["daily_budget_cents"], got["status"]) == (100, "paused")  # people are not held to the API minimum
    assert {(c.field, c.source, c.actor) for c in state.calls} == {
        ("daily_budget_cents", "human", "media-buyer"),
        ("status", "human", "media-buyer"),
    }


async def test_fault_by_count_fails_the_next_n_calls_only(api: httpx.AsyncClient) -> None:
    entity = await make(api, daily_budget_cents=5_000)
    armed = await api.post("/sandbox/faults", json={"kind": "server_error", "count": 2, "status_code": 502})
    assert armed.status_code == 201
    codes = [(await api.get(f"/v1/entities/{entity['id']}")).status_code for _ in range(3)]
    assert codes == [502, 502, 200]
    assert (await api.get("/sandbox/faults")).json()["faults"] == []


async def test_fault_by_entity_and_operation(api: httpx.AsyncClient, state: SandboxState) -> None:
    hit = await make(api, daily_budget_cents=5_000)
    spared = await make(api, daily_budget_cents=5_000)
    await api.post(
        "/sandbox/faults",
        json={"kind": "rate_limit", "count": 10, "entity_id": hit["id"], "on": "write", "retry_after_s": 1.2},
    )
    assert (await api.get(f"/v1/entities/{hit['id']}")).status_code == 200  # reads pass
    limited = await api.post(f"/v1/entities/{hit['id']}", json={"daily_budget_cents": 6_000})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    assert limited.json()["retry_after_s"] == 1.2
    assert (await api.post(f"/v1/entities/{spared['id']}", json={"daily_budget_cents": 6_000})).status_code == 200
    assert [c.entity_id for c in state.calls] == [spared["id"]]
    assert (await api.delete("/sandbox/faults")).json() == {"cleared": 1}
    assert (await api.post(f"/v1/entities/{hit['id']}", json={"daily_budget_cents": 6_000})).status_code == 200


async def test_probability_faults_are_reproducible_with_a_seed() -> None:
    async def outcomes() -> list[int]:
        app = create_app(SandboxState(api_token=TOKEN))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s", headers=AUTH) as c:
            entity = await make(c, daily_budget_cents=5_000)
            await c.post("/sandbox/faults", json={"kind": "server_error", "probability": 0.5, "seed": 42})
            return [(await c.get(f"/v1/entities/{entity['id']}")).status_code for _ in range(40)]

    first, second = await outcomes(), await outcomes()
    assert first == second and set(first) == {200, 503}


async def test_count_and_probability_together_are_refused(api: httpx.AsyncClient) -> None:
    resp = await api.post("/sandbox/faults", json={"kind": "timeout", "count": 1, "probability": 0.5})
    assert resp.status_code == 422


async def test_slow_fault_delays_but_serves(api: httpx.AsyncClient) -> None:
    entity = await make(api, daily_budget_cents=5_000)
    await api.post("/sandbox/faults", json={"kind": "slow", "delay_s": 0.2})
    started = time.monotonic()
    assert (await api.get(f"/v1/entities/{entity['id']}")).status_code == 200
    assert time.monotonic() - started >= 0.2


async def test_timeout_fault_without_apply_returns_504_and_changes_nothing(
    api: httpx.AsyncClient, state: SandboxState
) -> None:
    entity = await make(api, daily_budget_cents=5_000)
    await api.post("/sandbox/faults", json={"kind": "timeout", "delay_s": 0.05})
    assert (await api.post(f"/v1/entities/{entity['id']}", json={"daily_budget_cents": 6_000})).status_code == 504
    assert state.calls == [] and state.entities[entity["id"]].daily_budget_cents == 5_000


async def test_relaunch_copies_and_logs(api: httpx.AsyncClient, state: SandboxState) -> None:
    entity = await make(api, daily_budget_cents=5_000, status="paused", name="Old")
    resp = (await api.post(f"/v1/entities/{entity['id']}/relaunch", headers={"Idempotency-Key": "r-1"})).json()
    copy = (await api.get(f"/v1/entities/{resp['new_entity_id']}")).json()
    assert (copy["status"], copy["daily_budget_cents"], copy["relaunched_from"]) == ("active", 5_000, entity["id"])
    (record,) = state.calls
    assert (record.field, record.new, record.idempotency_key) == ("relaunch", resp["new_entity_id"], "r-1")


async def test_delivery_advance_emits_contract_valid_metrics(api: httpx.AsyncClient) -> None:
    entity = await make(api, daily_budget_cents=24_000, profile="strong")
    await make(api, daily_budget_cents=24_000, status="paused")
    assert (await api.post("/sandbox/delivery/advance", json={"to": "2024-03-04T00:00:00Z"})).json() == {"metrics": []}
    metrics = (await api.post("/sandbox/delivery/advance", json={"to": "2024-03-04T02:00:00Z"})).json()["metrics"]
    assert [(m["entity_id"], m["interval_start"]) for m in metrics] == [
        (entity["id"], "2024-03-04T00:00:00Z"),
        (entity["id"], "2024-03-04T01:00:00Z"),
    ]
    payload = MetricsIngested.model_validate(metrics[0])
    assert 0 < payload.spend_cents <= 24_000 * 1.25 / 24
    envelope = new_envelope(
        event_type="metrics.ingested",
        schema_version=1,
        payload=payload,
        producer="sandbox",
        workspace_id="ws-1",
        occurred_at=payload.reported_at,
        step="test",
    )
    record = encode(envelope)
    assert record.key == entity["id"].encode()
    assert decode("metrics.ingested", record.value).payload == payload


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**15), 10**15)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_bodies = _json | st.fixed_dictionaries(
    {},
    optional={
        "daily_budget_cents": _json,
        "status": _json,
        "entity_id": st.sampled_from(["e1", "ghost"]),
        "kind": _json,
        "count": _json,
        "probability": _json,
        "ad_account_id": _json,
        "entity_type": _json,
        "parent_id": _json,
        "curve": _json,
    },
)


_FUZZ_STATE = SandboxState(api_token=TOKEN)
_FUZZ_STATE.create_entity(entity_id="e1", ad_account_id="acc-1", entity_type="adset", daily_budget_cents=5_000)
_FUZZ_APP = create_app(_FUZZ_STATE)


@settings(max_examples=80, deadline=None)
@given(
    body=_bodies,
    path=st.sampled_from(
        [
            "/v1/entities/e1",
            "/v1/entities/ghost",
            "/sandbox/entities",
            "/sandbox/out-of-band",
            "/sandbox/faults",
            "/v1/entities/e1/relaunch",
        ]
    ),
)
def test_never_500_on_arbitrary_json(body: Any, path: str) -> None:
    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=_FUZZ_APP, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://s", headers=AUTH) as client:
            return await client.post(path, json=body)

    _FUZZ_STATE.faults.clear()  # a fuzzed body may arm a fault; it must not leak into the next example
    resp = asyncio.run(post())
    assert resp.status_code < 500, resp.text
