"""Where a rule's today starts for ``fires_today``: its scoped accounts' shared time zone, else UTC."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from allot.rules.domain.stored import FireStats, StoredRule
from allot.rules.workflow import fires_day_start, with_fires

NOW = datetime(2026, 5, 17, 2, 30, tzinfo=UTC)
ZONES = {"tokyo": ZoneInfo("Asia/Tokyo"), "tokyo2": ZoneInfo("Asia/Tokyo"), "ny": ZoneInfo("America/New_York")}


def _zones(workspace_id: str, platform: str, ad_account_id: str) -> tzinfo:
    return ZONES.get(ad_account_id, ZoneInfo("UTC")) if platform == "meta" else ZoneInfo("UTC")


def _rule(*accounts: str) -> StoredRule:
    return StoredRule(rule_id=uuid.uuid4(), workspace_id="ws", name="r",
                      definition={"scope": {"ad_account_ids": list(accounts)}}, status="active", interval_minutes=15,
                      template=None, last_evaluated_at=None, last_slot=None, last_error=None, auto_pause_reason=None,
                      auto_paused_at=None, breaker_reset_at=None, version=1, created_by="k", created_at=NOW,
                      updated_at=NOW)


def test_today_starts_at_midnight_of_the_accounts_shared_zone() -> None:
    # 02:30 UTC is 11:30 in Tokyo (today began at 15:00 UTC the day before) and 22:30 the day before in New York
    assert fires_day_start(_rule("tokyo", "tokyo2"), NOW, _zones) == datetime(2026, 5, 16, 15, 0, tzinfo=UTC)
    assert fires_day_start(_rule("ny"), NOW, _zones) == datetime(2026, 5, 16, 4, 0, tzinfo=UTC)


def test_several_zones_or_none_known_use_utc() -> None:
    utc_midnight = datetime(2026, 5, 17, tzinfo=UTC)
    assert fires_day_start(_rule("tokyo", "ny"), NOW, _zones) == utc_midnight
    assert fires_day_start(_rule("unknown"), NOW, _zones) == utc_midnight
    assert fires_day_start(_rule(), NOW, _zones) == utc_midnight


def test_with_fires_defaults_to_never_fired() -> None:
    assert with_fires({"id": "x"}, None) == {"id": "x", "last_fired_at": None, "fires_today": 0}
    stats = FireStats(rule_id=uuid.uuid4(), last_fired_at=NOW, fires_today=3)
    assert with_fires({"id": "x"}, stats) == {"id": "x", "last_fired_at": NOW, "fires_today": 3}
