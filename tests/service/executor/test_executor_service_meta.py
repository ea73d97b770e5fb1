"""The executor with the Meta adapter on the real broker and Postgres, against the Graph fake on a real socket:
no connection → rejected; a deprecated Graph version keeps actions pending (no attempt counted) and shows in
/readyz until it is fixed; a version past its published expiry is named in /readyz."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from allot.contracts import decode, new_envelope, sign_approval
from allot.contracts.payloads import BudgetAction, GuardrailApproved
from allot.executor.service import SPEC
from allot.fakes.meta import MetaFakeState, create_meta_fake
from allot.sandbox.testing import serve_app
from tests.support.kafka import eventually, publish, read_topic
from tests.support.service import running_service

SECRET = "test-approval-secret"
TOKEN = "EAAservice" + uuid.uuid4().hex
APP_SECRET = "app-secret-" + uuid.uuid4().hex


@pytest.fixture
def graph() -> Iterator[tuple[str, MetaFakeState]]:
    state = MetaFakeState(access_tokens={TOKEN}, app_secret=APP_SECRET)
    state.add_account("3003", currency="HUF")
    with serve_app(create_meta_fake(state)) as url:
        yield url, state


def approval(workspace: str, entity_id: str, frm: int, to: int, *, currency: str = "HUF",
             account: str = "act_3003") -> Any:
    now = datetime.now(UTC)
    action = BudgetAction(action_id=uuid.uuid4(), platform="meta", ad_account_id=account, entity_type="adset",
                          entity_id=entity_id, action_type="set_budget", currency=currency, from_cents=frm,
                          to_cents=to, reason="test")
    unsigned = GuardrailApproved(decision_id=uuid.uuid4(), request_id=uuid.uuid4(), source="rule", source_id="r-1",
                                 actions=[action], approved_at=now, expires_at=now + timedelta(seconds=900),
                                 signature="")
    signed = unsigned.model_copy(update={"signature": sign_approval(unsigned, workspace, SECRET.encode())})
    return new_envelope(event_type="guardrail.approved", schema_version=1, payload=signed, producer="guardrails",
                        workspace_id=workspace, occurred_at=now)


def overrides(url: str, **extra: Any) -> dict[str, Any]:
    return {"meta_base_url": url, "meta_app_secret": APP_SECRET, "approval_secret": SECRET, "retry_base_s": 0.05,
            "retry_cap_s": 0.2, **extra}


async def executed(settings: Any, entity_id: str) -> Any:
    [record] = await read_topic(settings.kafka_bootstrap, "action.executed", min_count=1,
                                predicate=lambda r: r.key == entity_id.encode())
    return decode("action.executed", record.value).payload


async def test_an_account_without_a_connection_is_rejected_and_never_called(
    settings: Any, unique: str, graph: tuple[str, MetaFakeState]
) -> None:
    url, state = graph
    entity = str(uuid.uuid4().int % 10**15)
    state.add_object(entity, "adset", "3003", daily_budget=50_000)
    async with running_service(SPEC, settings, **overrides(url)):          # no global token, no connection
        await publish(settings.kafka_bootstrap, approval(unique, entity, 50_000, 55_000))
        outcome = await executed(settings, entity)
    assert outcome.outcome == "rejected"
    assert outcome.error == f"no active Meta connection for account act_3003 in workspace {unique}"
    assert state.writes == [] and state.objects[entity].daily_budget == 50_000


async def test_a_deprecated_version_keeps_the_action_pending_until_fixed(
    settings: Any, unique: str, graph: tuple[str, MetaFakeState]
) -> None:
    url, state = graph
    entity = str(uuid.uuid4().int % 10**15)
    state.add_object(entity, "adset", "3003", daily_budget=50_000)
    state.deprecated_versions = {"v26.0"}
    async with running_service(SPEC, settings, **overrides(url, meta_access_token=TOKEN, meta_api_version="v26.0",
                                                            meta_config_retry_s=0.2)) as (client, ctx):
        await publish(settings.kafka_bootstrap, approval(unique, entity, 50_000, 55_000))

        async def held() -> Any:
            async with ctx.pool.acquire() as conn:
                row = await conn.fetchrow("SELECT status, attempts, error FROM actions WHERE entity_id = $1", entity)
            return row if row is not None and row["error"] else None

        row = await eventually(held, what="the action held back by the configuration problem")
        assert (row["status"], row["attempts"]) == ("pending", 0)          # no attempt burnt
        assert "v26.0" in row["error"] and "2635" in row["error"]
        ready = (await client.get("/readyz")).json()
        assert "v26.0" in ready["details"]["meta_config_problem"]
        assert TOKEN not in str(ready) and APP_SECRET not in str(ready)

        state.deprecated_versions = set()                                 # Meta (or the operator) fixes it
        outcome = await executed(settings, entity)
        assert outcome.outcome == "succeeded" and outcome.attempts == 1
        assert "meta_config_problem" not in ((await client.get("/readyz")).json().get("details") or {})
    assert [(w.field, w.new) for w in state.writes] == [("daily_budget", "55000")]


async def test_readyz_names_a_version_past_its_published_expiry(
    settings: Any, graph: tuple[str, MetaFakeState]
) -> None:
    url, _ = graph
    async with running_service(SPEC, settings, **overrides(url, meta_access_token=TOKEN,
                                                            meta_api_version="v24.0")) as (client, _):
        detail = (await client.get("/readyz")).json()["details"]["meta_api_version"]
    assert "v24.0 expired on 2026-11-10" in detail and "ALLOT_META_API_VERSION" in detail


@pytest.mark.parametrize(("account_currency", "action_currency", "error"), [
    ("HUF", "EUR", "currency mismatch: the action is in EUR, the meta account of {e} is in HUF"),
    ("KWD", "KWD", "currency 'KWD' is not a Meta ad account currency"),
])
async def test_a_currency_the_write_cannot_be_read_in_is_rejected_before_any_write(
    settings: Any, unique: str, graph: tuple[str, MetaFakeState], account_currency: str, action_currency: str,
    error: str,
) -> None:
    url, state = graph
    state.add_account("4004", currency=account_currency)
    entity = str(uuid.uuid4().int % 10**15)
    state.add_object(entity, "adset", "4004", daily_budget=50_000)
    async with running_service(SPEC, settings, **overrides(url, meta_access_token=TOKEN)):
        await publish(settings.kafka_bootstrap,
                      approval(unique, entity, 50_000, 55_000, currency=action_currency, account="act_4004"))
        outcome = await executed(settings, entity)
    assert outcome.outcome == "rejected" and error.format(e=entity) in outcome.error
    assert state.writes == []
