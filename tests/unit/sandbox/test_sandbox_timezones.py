"""Sandbox account time zones: configured ones are checked at start; the profile carries them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from allot.contracts.payloads import MetricsIngested
from allot.sandbox.service import SandboxSettings, account_profile

NOW = datetime(2026, 3, 8, tzinfo=UTC)


def test_unknown_zones_refuse_to_start_naming_them() -> None:
    with pytest.raises(ValidationError, match="Mars/Base"):
        SandboxSettings(sandbox_account_timezones={"act_1": "Mars/Base"})
    with pytest.raises(ValidationError, match="sandbox_default_timezone"):
        SandboxSettings(sandbox_default_timezone="Nowhere/Else")
    ok = SandboxSettings(sandbox_account_timezones={"act_1": "America/New_York"})
    assert ok.sandbox_default_timezone == "UTC" and ok.sandbox_account_timezones == {"act_1": "America/New_York"}


def test_the_profile_of_an_account_is_its_currency_and_zone() -> None:
    report = MetricsIngested(platform="sandbox", ad_account_id="act_1", entity_type="adset", entity_id="as_1",
                             currency="EUR", interval_start=NOW, interval_end=NOW + timedelta(hours=1),
                             reported_at=NOW + timedelta(hours=1), spend_cents=1, impressions=1)
    p = account_profile(report, "America/New_York", NOW)
    assert (p.platform, p.ad_account_id, p.currency, p.timezone_name, p.observed_at, p.state) == (
        "sandbox", "act_1", "EUR", "America/New_York", NOW, "connected")
