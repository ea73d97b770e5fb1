"""One valid example payload per topic: used by tests (every consumer is tested against them) and docs."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel

from allot.contracts.payloads import (
    AccountProfiled,
    ActionExecuted,
    AllocationRequested,
    BudgetAction,
    ChannelPacing,
    ConnectionChanged,
    GuardrailApproved,
    GuardrailBlocked,
    MetricsIngested,
    NotificationRequested,
    NotifiedEntity,
    PacingDeviationDetected,
    PacingReallocationRecommended,
    PacingSnapshotTaken,
    PoolMemberRef,
    PoolMembersChanged,
    RangeReach,
    SealedToken,
)

T0 = datetime(2026, 8, 15, 12, 0, tzinfo=UTC)
_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
_ACTION = BudgetAction(
    action_id=uuid.UUID("00000000-0000-4000-8000-000000000002"), platform="sandbox", ad_account_id="act_1",
    entity_type="adset", entity_id="as_1", action_type="set_budget", currency="EUR",
    from_cents=10_000, to_cents=11_500, reason="marginal ROAS 3.1 vs pool 2.2",
)

EXAMPLES: dict[str, BaseModel] = {
    "metrics.ingested": MetricsIngested(
        platform="sandbox", ad_account_id="act_1", entity_type="adset", entity_id="as_1", entity_name="Prospecting",
        parent_id="c_1", currency="EUR", daily_budget_cents=10_000, interval_start=T0,
        interval_end=T0 + timedelta(hours=1), reported_at=T0 + timedelta(hours=1, minutes=5), spend_cents=412,
        impressions=5_100, clicks=61, conversions=2, revenue_cents=1_890, reach=4_700, extra={"link_clicks": 55},
        range_reach=RangeReach(through=date(2026, 8, 14), yesterday=61_000, last_3d=150_000, last_7d=290_000,
                               last_14d=470_000, last_30d=820_000),
    ),
    "pacing.snapshot_taken": PacingSnapshotTaken(
        plan_id="plan_1", campaign_id="campaign-abc", snapshot_id=_ID, taken_at=T0, currency="USD",
        total_budget_cents=15_000_000, total_spend_cents=6_800_000, expected_spend_cents=7_417_582,
        pacing_pct=91.67, deviation_pct=-8.33, channel_count=1, deal_count=0,
        channels=[ChannelPacing(channel="CTV", allocated_budget_cents=7_500_000, spend_cents=3_000_000,
                                expected_spend_cents=3_708_791, pacing_pct=80.89, deviation_pct=-19.11,
                                impressions=1_200_000)],
    ),
    "pacing.deviation_detected": PacingDeviationDetected(
        plan_id="plan_1", campaign_id="campaign-abc", snapshot_id=_ID, alert_level="critical", direction="underpacing",
        deviation_pct=-32.2, threshold_pct=-25.0, message="Critical underpacing: -32.2% deviation (threshold: -25.0%)",
        state_before="ACTIVE", state_after="PACING_HOLD",
    ),
    "pacing.reallocation_recommended": PacingReallocationRecommended(
        plan_id="plan_1", campaign_id="campaign-abc", proposal_id=_ID, snapshot_id=_ID, source_channel="CTV",
        target_channel="DISPLAY", amount_cents=500_000, currency="USD", reason="CTV underpacing -19.1%",
        requires_approval=False,
    ),
    "allocation.requested": AllocationRequested(
        request_id=_ID, source="pool", source_id="pool_1", idempotency_key="pool_1/2026-08-15/12",
        actions=[_ACTION], pool_daily_budget_cents=50_000, currency="EUR", requested_by="pools",
    ),
    "guardrail.approved": GuardrailApproved(
        decision_id=_ID, request_id=_ID, source="pool", source_id="pool_1", actions=[_ACTION], approved_at=T0,
        expires_at=T0 + timedelta(minutes=15), signature="0" * 64,
    ),
    "guardrail.blocked": GuardrailBlocked(
        decision_id=_ID, request_id=_ID, source="pool", source_id="pool_1", check="daily_cap",
        reason="daily cap 500.00 EUR would be exceeded",
        details={"cap_eur_cents": 50_000, "exposure_eur_cents": 62_500},
    ),
    "action.executed": ActionExecuted(
        action_id=_ACTION.action_id, request_id=_ID, decision_id=_ID, source="pool", source_id="pool_1",
        platform="sandbox", ad_account_id="act_1", entity_type="adset", entity_id="as_1", action_type="set_budget",
        outcome="succeeded", currency="EUR", before_cents=10_000, after_cents=11_500, platform_response_id="w_1",
        executed_at=T0,
    ),
    "connection.changed": ConnectionChanged(
        connection_id="conn_1", platform="meta", ad_account_ids=["1234567890"], state="active",
        read_token=SealedToken(recipient="ingest", key_id="ingest-2026-12", ciphertext="c2VhbGVk"),
        write_token=SealedToken(recipient="executor", key_id="executor-2026-12", ciphertext="c2VhbGVk"),
        changed_at=T0,
    ),
    "account.profiled": AccountProfiled(
        platform="meta", ad_account_id="1234567890", connection_id="conn_1", name="Shop EU", currency="EUR",
        timezone_name="Europe/Berlin", account_status="active", observed_at=T0,
    ),
    "notification.requested": NotificationRequested(
        notification_id=uuid.UUID("00000000-0000-4000-8000-000000000003"), workspace_id="ws_1",
        kind="rule_notify_only", severity="warning", title="Rule 'Daily spend protection' matched 2 ad sets",
        summary="Spend passed 80% of the daily budget; no action taken (notify only).",
        condition="spend_cents > 80% of daily_budget_cents", facts={"threshold_pct": 80, "matched": 2},
        currency="EUR",
        entities=[NotifiedEntity(entity_type="adset", entity_id="as_1", name="Prospecting", amount_cents=8_412,
                                 currency="EUR", detail="spend 84.12 EUR of 100.00 EUR")],
        source="rules", source_id="rule_1", console_path="/rules/rule_1", occurred_at=T0,
    ),
    "pool.members_changed": PoolMembersChanged(
        pool_id="pool_1", workspace_id="ws_1", version=3, changed_at=T0,
        members=[PoolMemberRef(entity_id="as_1", entity_type="adset", platform="sandbox", ad_account_id="act_1"),
                 PoolMemberRef(entity_id="as_2", entity_type="adset", platform="sandbox", ad_account_id="act_1")],
    ),
}
