"""MetaGraphReader against the Graph fake's read side (in-process): paging, batch, async report runs, throttling,
debug_token, appsecret_proof, and that the reader has no way to write."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta

import httpx
import pytest

from allot.fakes.meta import MetaFakeState, create_meta_fake
from allot.fakes.meta.insights import reach_of
from allot.ingest.adapters.graph import GraphError, MetaGraphReader, Pacer
from allot.ingest.domain.ratelimit import PacePolicy

DAY = date(2026, 7, 2)


def _world(**state: object) -> tuple[MetaFakeState, httpx.AsyncClient]:
    st = MetaFakeState(**state)  # type: ignore[arg-type]
    st.access_tokens.add("rt")
    st.reads.grant("rt", "ads_read")
    st.add_account("77", "JPY")
    st.reads.set_account("77", timezone_name="Asia/Tokyo")
    st.add_object("c1", "campaign", "77", daily_budget=100_000)
    for i in range(5):
        st.add_object(f"s{i}", "adset", "77", daily_budget=3000 + i, parent_id="c1")
        for hour in range(3):
            st.reads.deliver(f"s{i}", DAY, hour, spend=100 * (i + 1), impressions=10, actions={"purchase": 1})
    st.reads.page_size = 2
    return st, httpx.AsyncClient(transport=httpx.ASGITransport(app=create_meta_fake(st)), base_url="http://g")


def _reader(http: httpx.AsyncClient, slept: list[float], **kw: object) -> MetaGraphReader:
    async def sleep(s: float) -> None:
        slept.append(s)

    return MetaGraphReader(http, token="rt", version="v25.0", pacer=Pacer(sleep=sleep, policy=PacePolicy()),
                           page_limit=2, async_poll_s=1.0, **kw)  # type: ignore[arg-type]


def test_reader_has_no_write_method() -> None:
    public = {n for n in dir(MetaGraphReader) if not n.startswith("_")}
    assert public == {"account", "batch_get", "debug_token", "entities", "insights", "range_reach"}


async def test_paging_batch_sync_and_async_insights_agree() -> None:
    st, http = _world()
    slept: list[float] = []
    r = _reader(http, slept)
    assert (await r.debug_token()).scopes == ["ads_read"]
    acc = await r.account("77")
    assert (acc["currency"], acc["timezone_name"], acc["account_status"]) == ("JPY", "Asia/Tokyo", 1)
    adsets, campaigns = await r.entities("77")
    assert [a["id"] for a in adsets] == [f"s{i}" for i in range(5)] and len(campaigns) == 1  # 3 pages of ad sets
    assert adsets[4]["daily_budget"] == "3004" and adsets[4]["campaign_id"] == "c1"
    sync = await r.insights("77", "adset", "2026-07-02", "2026-07-02", use_async=False)
    assert len(sync) == 15 and sync[0]["spend"] == "100"  # JPY: offset 1
    assert sync[0]["attribution_setting"] == "7d_click_1d_view"
    assert len(await r.insights("77", "adset", "2026-07-02", "2026-07-02", use_async=True)) == 15
    assert slept == [1.0]  # one poll saw "Job Running", the next "Job Completed"
    camp = await r.insights("77", "campaign", "2026-07-02", "2026-07-02", use_async=False)
    assert len(camp) == 3 and camp[0]["spend"] == "1500"


async def test_throttling_waits_for_regain_then_succeeds_and_pace_slows_before_the_limit() -> None:
    st, http = _world()
    st.add_fault("rate_limit", count=1, object_id="act_77", on="read", code=80000, regain_access_minutes=3)
    slept: list[float] = []
    r = _reader(http, slept)
    rows = await r.insights("77", "campaign", "2026-07-02", "2026-07-02", use_async=False)
    assert len(rows) == 3 and slept[0] == 180  # estimated_time_to_regain_access, minutes → seconds
    st.reads.usage_pct["77"] = 95
    slept.clear()
    await r.account("77")  # the account read has no usage headers; the edge read does
    await r.entities("77")
    await r.account("77")
    assert slept and slept[-1] == pytest.approx(48.0)  # 95 % of a 75→100 % ramp to 60 s


async def test_errors_name_the_graph_code() -> None:
    st, http = _world()
    slept: list[float] = []
    with pytest.raises(GraphError) as unknown:
        await _reader(http, slept).account("404")
    assert (unknown.value.code, unknown.value.subcode) == (100, 33)
    bad = MetaGraphReader(http, token="nope", version="v25.0", pacer=Pacer(sleep=asyncio.sleep))
    with pytest.raises(GraphError) as revoked:
        await bad.debug_token()
    assert revoked.value.code == 190
    st.reads.grant("rt", "ads_read", "ads_management")
    assert "ads_management" in (await _reader(http, slept).debug_token()).scopes


async def test_appsecret_proof_is_sent_when_configured() -> None:
    st, http = _world(app_secret="s3cret")
    slept: list[float] = []
    with pytest.raises(GraphError):
        await _reader(http, slept).account("77")
    assert (await _reader(http, slept, app_secret="s3cret").account("77"))["currency"] == "JPY"
    assert st.writes == []


async def test_too_much_data_for_a_sync_call_falls_back_to_an_async_report_run() -> None:
    st, http = _world()
    st.reads.max_sync_rows = 10
    rows = await _reader(http, []).insights("77", "adset", "2026-07-02", "2026-07-02", use_async=False)
    assert len(rows) == 15
    assert [c["mode"] for c in st.reads.insights_calls] == ["sync", "async"]


async def test_range_reach_reads_each_range_as_one_deduplicated_row_per_entity_in_one_batch() -> None:
    st, http = _world()
    for back in range(1, 10):  # s0 also delivered on the 9 days before DAY: 3 hours × 10 impressions a day
        for hour in range(3):
            st.reads.deliver("s0", DAY - timedelta(days=back), hour, spend=100, impressions=10)
    sent: list[str] = []

    async def record(request: httpx.Request) -> None:
        sent.append(f"{request.method} {request.url.path}")

    http.event_hooks["request"].append(record)
    r = _reader(http, [])
    got = await r.range_reach("77", through=DAY)
    assert set(got) == {(level, name) for level in ("adset", "campaign")
                        for name in ("yesterday", "last_3d", "last_7d", "last_14d", "last_30d")}
    by_range = {name: {row["adset_id"]: int(row["reach"]) for row in got[("adset", name)]}
                for name in ("yesterday", "last_3d", "last_7d", "last_30d")}
    assert by_range["yesterday"] == dict.fromkeys([f"s{i}" for i in range(5)], 20)  # 30 impressions / 1.5
    # deduplicated over the range: less than the sum of the daily reaches (7 × 20), at least one day's
    assert by_range["last_7d"]["s0"] == reach_of([30] * 7, daily_frequency=1.5, overlap=0.5) == 80 < 7 * 20
    assert by_range["last_30d"]["s0"] == 110 and by_range["last_30d"]["s1"] == 20
    assert got[("campaign", "last_7d")] == [{"campaign_id": "c1", "reach": "120", "date_start": "2026-06-26",
                                             "date_stop": "2026-07-02"}]
    assert sent[0] == "POST /v25.0" and sent.count("POST /v25.0") == 1  # the ten first pages in one batch ...
    assert sent[1:] == ["GET /v25.0/act_77/insights"] * 10  # ... then the ad sets' further pages (2 a range)
    reads = [c for c in st.reads.insights_calls if "reach" in c["fields"] and "after" not in c]
    assert len(reads) == 10 and all("time_increment" not in c and "breakdowns" not in c for c in reads)
    assert {(c["level"], json.loads(c["time_range"])["since"]) for c in reads if c["level"] == "adset"} == {
        ("adset", str(DAY - timedelta(days=n - 1))) for n in (1, 3, 7, 14, 30)}
    assert all(json.loads(c["time_range"])["until"] == "2026-07-02" for c in reads)
    assert await r.range_reach("77", through=DAY, use_async=True) == got  # large accounts: async report runs
    assert sum(c["mode"] == "async" for c in st.reads.insights_calls) == 10
