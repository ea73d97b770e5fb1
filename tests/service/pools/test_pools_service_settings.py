"""Per-pool engine settings (seed 001: "thresholds you define"): persistence, cooldown, dead band, composite weights,
exploration share — defaults are PoolSettings', set on create/PATCH (camelCase or snake_case), null resets, 422s
name the field with its allowed range, stored, and what the engine is built with. ``tier`` is gone: sending it is
refused like any unknown field."""

from __future__ import annotations

import uuid
from typing import Any

from allot.pools import workflow
from allot.pools.adapters import postgres as db
from allot.pools.domain import OptimizationMetric, PoolSettings
from tests.service.pools.pools_support import BASE, PoolsCase, auth, field_of

KNOBS = ("persistenceIntervals", "cooldownHours", "deadbandPct", "explorationShare", "compositeWeights")
CUSTOM = {
    "persistenceIntervals": 3,
    "cooldownHours": 6,
    "deadbandPct": 5,
    "explorationShare": 0.02,
    "compositeWeights": {"roas": 0.4, "cpa": 0.3, "frequencyRisk": 0.2, "engagementDecay": 0.1},
}


def _weights(cw: Any) -> dict[str, float]:
    return {"roas": cw.roas, "cpa": cw.cpa, "frequencyRisk": cw.frequency_risk, "engagementDecay": cw.engagement_decay}


async def test_pool_engine_settings_defaults_validation_storage_and_engine(settings: Any, unique: str) -> None:
    P = PoolsCase(settings, unique)
    async with P.service() as (client, ctx, _clock):
        op = auth(P.operator)

        # defaults: PoolSettings' own (composite derived from the metric), all listed as engine defaults
        pool = await P.create_pool(client)
        engine = PoolSettings(pool_id="x", daily_budget_cents=1)
        assert pool["persistenceIntervals"] == engine.persistence_intervals
        assert pool["cooldownHours"] == engine.cooldown_hours and pool["deadbandPct"] == engine.deadband_pct
        assert pool["explorationShare"] == engine.exploration_share
        assert pool["compositeWeights"] == _weights(engine.composite)
        assert pool["engineDefaults"] == list(KNOBS)
        cpa = await P.create_pool(client, members=0, optimizationMetric="cpa")
        by_conversions = PoolSettings("x", 1, optimization_metric=OptimizationMetric.CPA).composite
        assert cpa["compositeWeights"] == _weights(by_conversions)

        # set on create (the seed's e-commerce weighting), camelCase ...
        r = await client.post(BASE, json=P.pool_body(members=0) | CUSTOM, headers=op)
        assert r.status_code == 201, r.text
        custom = r.json()
        assert {k: custom[k] for k in KNOBS} == CUSTOM and custom["engineDefaults"] == []
        assert (await client.get(f"{BASE}/{custom['id']}", headers=op)).json() == custom
        # ... or snake_case
        r = await client.post(BASE, headers=op, json=P.pool_body(members=0) | {
            "persistence_intervals": 1, "cooldown_hours": 0, "exploration_share": 0,
            "composite_weights": {"roas": 1, "cpa": 0, "frequency_risk": 0, "engagement_decay": 0}})
        assert r.status_code == 201, r.text
        snake = r.json()
        assert snake["persistenceIntervals"] == 1 and snake["cooldownHours"] == 0 and snake["explorationShare"] == 0
        assert snake["engineDefaults"] == ["deadbandPct"]

        # stored, and what the engine is built with
        async with ctx.pool.acquire() as conn:
            row = await db.get_pool(conn, P.ws, uuid.UUID(custom["id"]))
            zero = await db.get_pool(conn, P.ws, uuid.UUID(snake["id"]))
        assert row is not None and zero is not None
        assert row.persistence_intervals == 3 and row.cooldown_hours == 6.0 and row.deadband_pct == 5.0
        assert row.exploration_share == 0.02 and row.composite_weights is not None
        assert row.composite_weights["frequency_risk"] == 0.2
        built = workflow.pool_settings(workflow.settings_snapshot(row))
        assert (built.persistence_intervals, built.cooldown_hours, built.deadband_pct, built.exploration_share) == (
            3, 6.0, 5.0, 0.02)
        assert _weights(built.composite_weights) == CUSTOM["compositeWeights"]
        assert built.continuation_cooldown_hours <= built.cooldown_hours
        built = workflow.pool_settings(workflow.settings_snapshot(zero))  # a zero cooldown is a valid PoolSettings
        assert built.cooldown_hours == 0 and built.continuation_cooldown_hours == 0

        # 422s naming the field, with the allowed range in the message
        weights = CUSTOM["compositeWeights"]
        cases: list[tuple[dict[str, Any], str, str]] = [
            ({"persistenceIntervals": 0}, "persistenceIntervals", "[1, 24]"),
            ({"persistenceIntervals": 25}, "persistenceIntervals", "[1, 24]"),
            ({"persistenceIntervals": 10**30}, "persistenceIntervals", ""),
            ({"persistenceIntervals": 1.5}, "persistenceIntervals", ""),
            ({"cooldownHours": -1}, "cooldownHours", "[0, 168]"),
            ({"cooldownHours": 169}, "cooldownHours", "[0, 168]"),
            ({"deadbandPct": 50.5}, "deadbandPct", "[0, 50]"),
            ({"deadbandPct": -0.1}, "deadbandPct", "[0, 50]"),
            ({"explorationShare": 0.11}, "explorationShare", "[0, 0.10]"),
            ({"explorationShare": -0.01}, "explorationShare", "[0, 0.10]"),
            ({"explorationShare": "lots"}, "explorationShare", ""),
            ({"compositeWeights": weights | {"roas": -0.1}}, "compositeWeights.roas", "[0, 100]"),
            ({"compositeWeights": weights | {"cpa": 101}}, "compositeWeights.cpa", "[0, 100]"),
            ({"compositeWeights": weights | {"roas": 0, "cpa": 0}}, "compositeWeights.roas", "above 0"),
            ({"compositeWeights": weights | {"frequencyRisk": 0.6}}, "compositeWeights.frequencyRisk", "[0, 0.50]"),
            ({"compositeWeights": weights | {"frequencyRisk": 0.3, "engagementDecay": 0.3}},
             "compositeWeights.frequencyRisk", "[0, 0.5]"),
            ({"compositeWeights": {"roas": 1, "cpa": 0, "frequencyRisk": 0.1}},
             "compositeWeights.engagementDecay", ""),
            ({"compositeWeights": weights | {"ctr": 1}}, "compositeWeights.ctr", ""),
            ({"compositeWeights": 0.5}, "compositeWeights", ""),
        ]
        for extra, field, text in cases:
            r = await client.post(BASE, json=P.pool_body(members=0) | extra, headers=op)
            assert r.status_code == 422, (extra, r.text)
            assert field in field_of(r), (field, r.json())
            assert text in r.json()["message"], (text, r.json())
            r = await client.patch(f"{BASE}/{custom['id']}", json=extra, headers=op)
            assert r.status_code == 422 and field in field_of(r), (extra, r.text)
        assert (await client.get(f"{BASE}/{custom['id']}", headers=op)).json() == custom  # no refused PATCH applied

        # PATCH: one knob, then null resets it to the engine's default
        r = await client.patch(f"{BASE}/{custom['id']}", json={"explorationShare": 0.1}, headers=op)
        assert r.status_code == 200 and r.json()["explorationShare"] == 0.1, r.text
        assert r.json()["cooldownHours"] == 6 and r.json()["version"] == custom["version"] + 1
        r = await client.patch(
            f"{BASE}/{custom['id']}", json={"cooldown_hours": None, "compositeWeights": None}, headers=op
        )
        assert r.status_code == 200, r.text
        assert r.json()["cooldownHours"] == engine.cooldown_hours
        assert r.json()["compositeWeights"] == _weights(engine.composite)
        assert r.json()["engineDefaults"] == ["cooldownHours", "compositeWeights"]
        # a pool's metric change moves weights it never set, never ones it set
        r = await client.patch(f"{BASE}/{cpa['id']}", json={"optimizationMetric": "roas"}, headers=op)
        assert r.json()["compositeWeights"] == _weights(engine.composite)


async def test_pool_tier_is_gone(settings: Any, unique: str) -> None:
    P = PoolsCase(settings, unique)
    async with P.service() as (client, ctx, _clock):
        op = auth(P.operator)
        r = await client.post(BASE, json=P.pool_body(tier=2), headers=op)
        assert r.status_code == 422 and field_of(r) == ["tier"], r.text  # like any unknown field
        pool = await P.create_pool(client)
        assert "tier" not in pool
        r = await client.patch(f"{BASE}/{pool['id']}", json={"tier": None}, headers=op)
        assert r.status_code == 422 and field_of(r) == ["tier"], r.text
        async with ctx.pool.acquire() as conn:
            columns = await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'pools' "
                "AND table_schema = current_schema()"
            )
        assert "tier" not in {c["column_name"] for c in columns}
        assert "tier" not in db.SETTINGS_COLUMNS
