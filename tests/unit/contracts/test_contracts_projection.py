"""The one metrics.ingested projection: which report of an interval and of an entity is current, in any delivery
order."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from allot.contracts.envelope import new_envelope
from allot.contracts.payloads import MetricsIngested
from allot.contracts.projection import (
    NIL_EVENT_ID,
    Report,
    latest_entities,
    latest_intervals,
    platform_interval_key,
)

T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)


def report(*, spend: int, reported_h: float, event: int, start_h: int = 0, entity: str = "as_1", platform: str = "meta",
           budget: int | None = 5000, ws: str = "ws_a"):
    m = MetricsIngested(platform=platform, ad_account_id="act_1", entity_type="adset", entity_id=entity, currency="EUR",
                        daily_budget_cents=budget, interval_start=T0 + timedelta(hours=start_h),
                        interval_end=T0 + timedelta(hours=start_h + 1),
                        reported_at=T0 + timedelta(hours=reported_h), spend_cents=spend, impressions=10)
    return new_envelope(event_type="metrics.ingested", schema_version=1, payload=m, producer="ingest", workspace_id=ws,
                        occurred_at=m.reported_at, event_id=uuid.UUID(int=event))


def test_an_equal_reported_at_goes_to_the_greater_event_id_in_every_delivery_order():
    a = report(spend=100, reported_h=2, event=7)
    b = report(spend=130, reported_h=2, event=9)  # same moment, greater id: kept
    older = report(spend=90, reported_h=1, event=99)  # a greater id does not beat a later report
    kept = set()
    for order in itertools.permutations([a, b, older]):
        (only,) = latest_intervals(order)
        kept.add((only.metrics.spend_cents, only.event_id))
    assert kept == {(130, uuid.UUID(int=9))}


def test_a_batch_split_anywhere_keeps_what_the_whole_batch_keeps():
    """The SQL guard uses the same order, so keeping per batch then comparing kept rows is the same as one batch."""
    events = [report(spend=s, reported_h=h, event=e) for s, h, e in ((1, 1, 5), (2, 3, 1), (3, 3, 4), (4, 2, 8))]
    whole = latest_intervals(events)[0].order
    for cut in range(1, len(events)):
        first, second = latest_intervals(events[:cut]), latest_intervals(events[cut:])
        assert max(first[0].order, second[0].order) == whole
    assert whole == (T0 + timedelta(hours=3), uuid.UUID(int=4))


def test_intervals_are_kept_per_key():
    events = [report(spend=1, reported_h=1, event=1, start_h=0), report(spend=2, reported_h=1, event=2, start_h=1),
              report(spend=3, reported_h=1, event=3, entity="as_2"), report(spend=4, reported_h=1, event=4, ws="ws_b"),
              report(spend=5, reported_h=1, event=5, platform="sandbox")]
    assert sorted(r.metrics.spend_cents for r in latest_intervals(events, platform_interval_key)) == [1, 2, 3, 4, 5]
    # pools and rules key intervals without the platform (their tables do): the later event id of the pair wins
    assert sorted(r.metrics.spend_cents for r in latest_intervals(events)) == [2, 3, 4, 5]


def test_an_entity_is_described_by_its_latest_report_and_a_report_without_a_budget_keeps_the_known_one():
    old_interval = report(spend=1, reported_h=5, event=50, start_h=0, budget=7000)
    new_interval = report(spend=1, reported_h=5, event=10, start_h=3, budget=None)  # same moment, later interval
    for order in itertools.permutations([old_interval, new_interval]):
        (entity,) = latest_entities(order)
        assert entity.report.event_id == uuid.UUID(int=10)
        assert entity.known_budget_cents == 7000
    (alone,) = latest_entities([report(spend=1, reported_h=1, event=1, budget=None)])
    assert alone.known_budget_cents is None


def test_stored_rows_without_an_event_id_lose_to_any_report_at_the_same_time():
    r = Report.of(report(spend=1, reported_h=1, event=1))
    assert r.order > (r.metrics.reported_at, NIL_EVENT_ID)
