"""Builders for the ingest service tests: a Graph fake with accounts, sealed tokens, connection events."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime
from typing import Any

import httpx
import orjson

from allot.contracts.envelope import Envelope, new_envelope
from allot.contracts.payloads import ConnectionChanged
from allot.contracts.registry import TOPICS
from allot.fakes.meta import MetaFakeState, create_meta_fake
from allot.ingest.service import make_spec
from allot.ingest.settings import IngestSettings
from allot.runtime.clock import ManualClock
from allot.runtime.sealing import Keyring, generate_keypair, seal
from allot.runtime.service import ServiceContext, ServiceSpec
from allot.runtime.settings import Settings
from tests.support.kafka import eventually

# 12:00 UTC = 08:00 in New York (EDT): local hours 0..7 of 2 July have happened.
NOW = datetime(2026, 7, 2, 12, tzinfo=UTC)
DAY = date(2026, 7, 2)


def payloads(records: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records]


def for_account(account: str) -> Any:
    return lambda r: orjson.loads(r.value)["payload"]["ad_account_id"] == account


def new_account_id() -> str:
    return str(random.randint(10**11, 10**12 - 1))


class IngestWorld:
    """One test's fake Graph, keys, workspace and clock."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        self.fake = MetaFakeState()
        self.fake.access_tokens |= {"read-token", "admin-token"}
        self.fake.reads.grant("read-token", "ads_read", "read_insights")
        self.fake.reads.grant("admin-token", "ads_read", "ads_management")
        kp = generate_keypair("k1")
        self.ring = Keyring.parse("ingest", f"k1:{kp.private_key}")
        self.ws = f"ws-{uuid.uuid4().hex[:8]}"
        self.clock = ManualClock(NOW)
        self.spec: ServiceSpec = make_spec(graph_transport=httpx.ASGITransport(app=create_meta_fake(self.fake)))
        base = {**settings.model_dump(), "ingest_graph_url": "http://graph.local", "ingest_scan_interval_s": 3600.0,
                "sealing_private_keys": f"k1:{kp.private_key}", **overrides}
        self.settings = IngestSettings.model_validate(base)

    def account(self, account_id: str, *, currency: str = "EUR", timezone_name: str = "America/New_York",
                hours: int = 4, budget: int = 5000) -> None:
        """An account with one campaign and one ad set that delivered in local hours 0..hours-1 of DAY."""
        self.fake.add_account(account_id, currency, name="Shop")
        self.fake.reads.set_account(account_id, timezone_name=timezone_name)
        self.fake.add_object(f"c{account_id}", "campaign", account_id, name="Summer")
        self.fake.add_object(f"s{account_id}", "adset", account_id, name="Prospecting", daily_budget=budget,
                             parent_id=f"c{account_id}")
        for hour in range(hours):
            self.fake.reads.deliver(f"s{account_id}", DAY, hour, spend=1000 + hour, impressions=500, clicks=5,
                                    actions={"purchase": 1}, action_values={"purchase": 2500})

    def connection(self, account: str, token: str, *, cid: str | None = None, changed_at: datetime = NOW,
                   state: str = "active") -> Envelope[Any]:
        payload = ConnectionChanged(connection_id=cid or f"con-{account}", platform="meta", ad_account_ids=[account],
                                    state=state, read_token=seal(token, self.ring.public_key()),  # type: ignore[arg-type]
                                    changed_at=changed_at)
        return new_envelope(event_type="connection.changed", payload=payload, producer="test", workspace_id=self.ws,
                            schema_version=TOPICS["connection.changed"].schema_version, occurred_at=changed_at)


async def wait_projected(ctx: ServiceContext, *accounts: str) -> None:
    """Wait until these accounts' connections are projected (other tests' connections share the topic)."""
    async def projected() -> bool:
        async with ctx.pool.acquire() as conn:
            seen = await conn.fetch("SELECT ad_account_id FROM accounts WHERE ad_account_id = ANY($1::text[])",
                                    list(accounts))
            return {r["ad_account_id"] for r in seen} == set(accounts)
    await eventually(projected, what=f"accounts {sorted(accounts)} projected")
