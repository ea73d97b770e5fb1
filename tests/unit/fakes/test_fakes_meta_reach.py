"""The Graph fake's reach: deduplicated over each row's own period (all_days: the whole time_range), so a range's
reach is less than the sum of its daily rows' reach and at least the largest; never by the hour."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import httpx

from allot.fakes.meta import MetaFakeState, create_meta_fake

DAY = date(2026, 7, 2)


async def _get(http: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await http.get("/v25.0/act_77/insights", params={"access_token": "rt", "level": "adset", **params})


async def test_range_reach_is_deduplicated_daily_rows_are_not_and_hourly_reach_is_refused() -> None:
    st = MetaFakeState()
    st.access_tokens.add("rt")
    st.add_account("77", "EUR")
    st.add_object("c1", "campaign", "77")
    st.add_object("s1", "adset", "77", daily_budget=1000, parent_id="c1")
    for back, impressions in enumerate((300, 150, 600)):
        st.reads.deliver("s1", DAY - timedelta(days=back), 9, spend=100, impressions=impressions)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_meta_fake(st)), base_url="http://g")
    span = json.dumps({"since": str(DAY - timedelta(days=2)), "until": str(DAY)})

    daily: list[dict[str, Any]] = (await _get(http, fields="adset_id,reach", time_range=span,
                                              time_increment="1")).json()["data"]
    assert [(r["date_start"], r["reach"]) for r in daily] == [
        ("2026-06-30", "400"), ("2026-07-01", "100"), ("2026-07-02", "200")]  # impressions / 1.5
    [whole] = (await _get(http, fields="adset_id,reach", time_range=span)).json()["data"]
    assert (whole["date_start"], whole["date_stop"]) == ("2026-06-30", "2026-07-02")
    assert int(whole["reach"]) == 400 + (100 + 200) // 2 < 700  # the largest day in full, others half new

    refused = await _get(http, fields="adset_id,reach", time_range=span, time_increment="1",
                         breakdowns="hourly_stats_aggregated_by_advertiser_time_zone")
    assert refused.status_code == 400
