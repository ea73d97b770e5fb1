"""One read of one account: check the token, profile the account, read entities and hourly insights, publish
what changed — cursor, fingerprints and events in ONE transaction (outbox), so a crash loses nothing and a
restart never publishes an interval twice with different ids.

Reach is not additive, and the hourly rows carry none, so once per account and local day ingest also reads
the platform's deduplicated reach of every entity over the complete-day ranges ending yesterday
(``MetaGraphReader.range_reach``; kept in the process until the local day rolls over) and attaches it as
``range_reach`` to each entity's latest interval report of the cycle. A failed reach read does not stop the
metrics: they are published without it and the read is retried next cycle."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import httpx

from allot.contracts.envelope import Envelope, derive_event_id, new_envelope
from allot.contracts.payloads import AccountProfiled, MetricsIngested, RangeReach, SealedToken
from allot.contracts.registry import TOPICS
from allot.ingest.adapters import postgres as db
from allot.ingest.adapters.graph import GraphError, MetaGraphReader, Pacer
from allot.ingest.domain.errors import AccountProblem
from allot.ingest.domain.intervals import trailing_window, zone
from allot.ingest.domain.mapping import (
    Entity,
    IntervalReport,
    account_status,
    fingerprint,
    map_insight_row,
    meta_offset,
    parse_entity,
    profile_fingerprint,
    range_reach_by_entity,
    report_event_id,
    write_scopes,
)
from allot.ingest.domain.ratelimit import PacePolicy
from allot.ingest.settings import IngestSettings
from allot.runtime.deps import need
from allot.runtime.logging import get_logger
from allot.runtime.service import ServiceContext

log = get_logger(__name__)

_ISO = re.compile(r"^[A-Z]{3}$")

TokenOpener = Callable[[SealedToken], str]


@dataclass
class IngestState:
    """Per-process state of ingest: shared HTTP client, one pacer per account, what /readyz reports."""

    settings: IngestSettings
    http: httpx.AsyncClient
    open_token: TokenOpener
    pacers: dict[str, Pacer] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    running: dict[str, asyncio.Task[str]] = field(default_factory=dict)
    #: per account: the ``through`` day of its range reach read and each entity's range reach (one read a day)
    range_reach: dict[str, tuple[date, dict[tuple[str, str], RangeReach]]] = field(default_factory=dict)


def _key(a: db.AccountToRead) -> str:
    return f"{a.connection_id}/act_{a.ad_account_id}"


def _profile(a: db.AccountToRead, *, now: datetime, state: Literal["connected", "error"], detail: str = "",
             name: str = "", currency: str | None = None, timezone_name: str | None = None,
             status: str = "unknown") -> AccountProfiled:
    return AccountProfiled(platform="meta", ad_account_id=a.ad_account_id, connection_id=a.connection_id, name=name,
                           currency=currency or a.currency or "XXX",  # XXX: ISO 4217 "no currency" (never read)
                           timezone_name=timezone_name or a.timezone_name or "UTC",
                           account_status=status, state=state, detail=detail[:500], observed_at=now)  # type: ignore[arg-type]


def _envelope(topic: str, payload: Any, a: db.AccountToRead, now: datetime, event_id: Any) -> Envelope[Any]:
    return new_envelope(event_type=topic, schema_version=TOPICS[topic].schema_version, payload=payload,
                        producer="ingest", workspace_id=a.workspace_id, occurred_at=now, event_id=event_id)


def _profile_envelope(a: db.AccountToRead, p: AccountProfiled, now: datetime,
                      previous: str | None) -> tuple[str, Envelope[Any]]:
    fp = profile_fingerprint(p.state, p.detail, p.name, p.currency, p.timezone_name, p.account_status)
    # chained on the previous fingerprint: A → B → A publishes a third, new event (not a duplicate of the first)
    eid = derive_event_id(f"ingest/profile/{a.workspace_id}/{a.connection_id}/{a.ad_account_id}/{previous}", fp)
    return fp, _envelope("account.profiled", p, a, now, eid)


async def _fail(ctx: ServiceContext, st: IngestState, a: db.AccountToRead, detail: str, now: datetime,
                seen: dict[str, str] | None = None) -> str:
    """Record and publish (once per distinct problem) that the account cannot be read; ``seen`` is what the
    platform said about the account before the problem (currency, time zone), if it got that far."""
    st.problems[_key(a)] = detail
    log.error("ingest_account_error", connection_id=a.connection_id, ad_account_id=a.ad_account_id, detail=detail)
    seen = seen or {}
    profile = _profile(a, now=now, state="error", detail=detail, name=seen.get("name", ""),
                       currency=seen.get("currency") if _ISO.match(seen.get("currency", "")) else None,
                       timezone_name=seen.get("timezone_name") or None)
    async with ctx.pool.acquire() as conn, conn.transaction():
        previous = await db.lock_account(conn, a)
        fp, env = _profile_envelope(a, profile, now, previous)
        await db.save_profile(conn, a, state="error", detail=detail, profile_fp=fp)
        if fp != previous:
            await ctx.emit(conn, env)
    ctx.flush()
    return "error"


def _latest_per_entity(reports: list[IntervalReport]) -> dict[tuple[str, str], datetime]:
    latest: dict[tuple[str, str], datetime] = {}
    for r in reports:
        k = (r.entity_type, r.entity_id)
        if k not in latest or r.interval_start > latest[k]:
            latest[k] = r.interval_start
    return latest


async def read_account(ctx: ServiceContext, st: IngestState, a: db.AccountToRead) -> str:
    """Read one account once; returns "ok", "error" (published) or "retry" (transient, next cycle)."""
    s = st.settings
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn:
        await db.mark_attempt(conn, a, now)
    pacer = st.pacers.setdefault(_key(a), Pacer(sleep=ctx.clock.sleep, policy=PacePolicy(
        slow_at=s.ingest_slow_at_pct, max_delay_s=s.ingest_max_delay_s, throttled_default_s=s.ingest_throttled_wait_s)))
    try:
        if a.read_token is None:
            raise AccountProblem("the connection carries no read token for ingest; add one to the connection")
        try:
            token = st.open_token(a.read_token)
        except Exception as exc:  # noqa: BLE001 - the sealing library names the reason (never the token)
            raise AccountProblem(f"the read token cannot be opened by ingest: {exc}") from None
        secret = s.ingest_meta_app_secret.get_secret_value() or None
        reader = MetaGraphReader(st.http, token=token, version=a.graph_api_version or s.ingest_graph_api_version,
                                 pacer=pacer, app_secret=secret, async_poll_s=s.ingest_async_poll_s)
        info = await reader.debug_token()
        if not info.valid:
            raise AccountProblem(f"the read token is not valid ({info.error}); reconnect with a new token")
        writes = write_scopes(info.scopes)
        if writes:
            log.error("read_token_refused", connection_id=a.connection_id, write_scopes=writes)
            raise AccountProblem(
                f"refused: the read token can write ({', '.join(writes)}); ingest holds read-only credentials only. "
                "Give the connection a system-user token with ads_read (no ads_management) as its read token")
        return await _read(ctx, st, a, reader, now)
    except AccountProblem as exc:
        return await _fail(ctx, st, a, str(exc), now, exc.seen)
    except GraphError as exc:
        if exc.code == 190:
            return await _fail(ctx, st, a, f"the read token was revoked or has expired (Graph code 190: "
                                           f"{exc.message}); reconnect with a new token", now)
        if exc.code == 100 and exc.subcode == 33:
            return await _fail(ctx, st, a, f"ad account act_{a.ad_account_id} does not exist or the read token "
                                           f"cannot see it (Graph code 100/33); check the account id and the "
                                           "system user's assets", now)
        if exc.code in (10, 200, 294) or (exc.code is not None and 200 <= exc.code <= 299):
            return await _fail(ctx, st, a, f"the read token lacks permission on act_{a.ad_account_id} "
                                           f"(Graph code {exc.code}: {exc.message})", now)
        st.problems[_key(a)] = f"last read failed, retried next cycle: {exc}"
        log.warning("ingest_read_failed", connection_id=a.connection_id, ad_account_id=a.ad_account_id,
                    error=str(exc))
        return "retry"
    except (httpx.HTTPError, OSError) as exc:
        st.problems[_key(a)] = f"Graph unreachable, retried next cycle: {exc!r}"
        log.warning("ingest_graph_unreachable", ad_account_id=a.ad_account_id, error=repr(exc))
        return "retry"


async def _read(ctx: ServiceContext, st: IngestState, a: db.AccountToRead, reader: MetaGraphReader,
                now: datetime) -> str:
    s = st.settings
    acc = await reader.account(a.ad_account_id)
    currency = str(acc.get("currency", ""))
    tz_name = str(acc.get("timezone_name", ""))
    seen = {"currency": currency, "timezone_name": tz_name, "name": str(acc.get("name", ""))}
    try:
        offset = meta_offset(currency)
        tz = zone(tz_name)
        if a.accepted_timezone and tz_name != a.accepted_timezone:
            raise AccountProblem(
                f"the account's time zone changed from {a.accepted_timezone} to {tz_name}; its hours and days "
                "moved, so ingest stopped reading it. Reconnect the account (update the connection) to accept the "
                "new zone")
    except AccountProblem as exc:
        exc.seen = seen
        raise
    status = account_status(acc.get("account_status"))
    profile = _profile(a, now=now, state="connected", name=str(acc.get("name", "")), currency=currency,
                       timezone_name=tz_name, status=status)
    adset_rows, campaign_rows = await reader.entities(a.ad_account_id)
    entities: dict[tuple[str, str], Entity] = {}
    for et, rows in (("adset", adset_rows), ("campaign", campaign_rows)):
        for row in rows:
            e = parse_entity(et, row)  # type: ignore[arg-type]
            entities[(et, e.entity_id)] = e
    since, until = trailing_window(now, tz, s.ingest_window_days)
    use_async = len(adset_rows) >= s.ingest_async_min_entities
    reports: list[IntervalReport] = []
    levels: tuple[Literal["adset", "campaign"], ...] = ("adset", "campaign")
    for level in levels:
        rows = await reader.insights(a.ad_account_id, level, since.isoformat(), until.isoformat(),
                                     use_async=use_async)
        for row in rows:
            r = map_insight_row(level, row, timezone_name=tz_name, offset=offset,
                                conversion_action=s.ingest_conversion_action)
            if r is not None:
                reports.append(r)
    reach = await _range_reach(st, a, reader, until - timedelta(days=1), entities, use_async)
    return await _commit(ctx, st, a, profile, entities, reports, since, until, now, reach)


async def _range_reach(st: IngestState, a: db.AccountToRead, reader: MetaGraphReader, through: date,
                       entities: dict[tuple[str, str], Entity], use_async: bool) -> dict[tuple[str, str], RangeReach]:
    """Each entity's range reach through ``through`` (the account's local yesterday): read once a local day."""
    held = st.range_reach.get(_key(a))
    if held is not None and held[0] == through:
        return held[1]
    try:
        rows = await reader.range_reach(a.ad_account_id, through, use_async=use_async)
    except GraphError as exc:
        # Throttling was already waited out and retried by the reader; the metrics go out without it.
        log.warning("ingest_range_reach_failed", connection_id=a.connection_id, ad_account_id=a.ad_account_id,
                    through=through.isoformat(), error=str(exc))
        return {}
    reach = {key: RangeReach(through=through, **ranges)
             for key, ranges in range_reach_by_entity(rows, entities).items()}
    st.range_reach[_key(a)] = (through, reach)
    log.info("ingest_range_reach_read", connection_id=a.connection_id, ad_account_id=a.ad_account_id,
             through=through.isoformat(), entities=len(reach))
    return reach


async def _commit(ctx: ServiceContext, st: IngestState, a: db.AccountToRead, profile: AccountProfiled,
                  entities: dict[tuple[str, str], Entity], reports: list[IntervalReport], since: date, until: date,
                  now: datetime, reach: dict[tuple[str, str], RangeReach]) -> str:
    latest = _latest_per_entity(reports)
    window_start = datetime.combine(since, time(0), zone(profile.timezone_name)).astimezone(UTC)
    async with ctx.pool.acquire() as conn, conn.transaction():
        previous_profile = await db.lock_account(conn, a)
        known = await db.published_fingerprints(conn, a, window_start)
        envelopes: list[Envelope[Any]] = []
        published: list[tuple[str, str, datetime, str, Any]] = []
        for r in reports:
            entity = entities.get((r.entity_type, r.entity_id))
            is_latest = latest[(r.entity_type, r.entity_id)] == r.interval_start
            range_reach = reach.get((r.entity_type, r.entity_id)) if is_latest else None
            fp = fingerprint(r, entity, latest=is_latest, range_reach=() if range_reach is None else tuple(
                range_reach.model_dump(mode="json").items()))
            previous = known.get((r.entity_type, r.entity_id, r.interval_start))
            if previous == fp:
                continue  # unchanged: consumers already hold this report
            eid = report_event_id(a.workspace_id, a.ad_account_id, r, f"{previous}->{fp}")
            payload = MetricsIngested(
                platform="meta", ad_account_id=a.ad_account_id, entity_type=r.entity_type, entity_id=r.entity_id,
                entity_name=(entity.name if entity else r.entity_name), parent_id=r.parent_id,
                status=entity.status if entity else "active", currency=profile.currency,
                daily_budget_cents=entity.daily_budget if entity else None, interval_start=r.interval_start,
                interval_end=r.interval_end, reported_at=now, spend_cents=r.spend, impressions=r.impressions,
                clicks=r.clicks, conversions=r.conversions, revenue_cents=r.revenue,
                extra={**r.extra, **({"lifetime_budget_cents": entity.lifetime_budget}
                                     if entity and entity.lifetime_budget is not None else {})},
                range_reach=range_reach)
            envelopes.append(_envelope("metrics.ingested", payload, a, now, eid))
            published.append((r.entity_type, r.entity_id, r.interval_start, fp, eid))
        fp, profile_env = _profile_envelope(a, profile, now, previous_profile)
        if fp != previous_profile:
            envelopes.insert(0, profile_env)
        await db.save_profile(conn, a, state="connected", detail="", profile_fp=fp, currency=profile.currency,
                              timezone_name=profile.timezone_name, accept_timezone=True)
        await db.record_published(conn, a, published, now)
        await db.forget_published_before(conn, a, window_start)  # outside the window nothing is re-read
        await db.save_cursor(conn, a, since, until, now)
        await ctx.emit(conn, *envelopes)
    ctx.flush()
    st.problems.pop(_key(a), None)
    log.info("ingest_account_read", connection_id=a.connection_id, ad_account_id=a.ad_account_id,
             intervals=len(reports), published=len(published), since=since.isoformat(), until=until.isoformat())
    return "ok"


async def run_cycle(ctx: ServiceContext, *, due_only: bool = False) -> dict[str, str]:
    """Read every active account now, each in its own task (a slow or throttled one delays no other)."""
    st = need(ctx, IngestState)
    async with ctx.pool.acquire() as conn:
        accounts = await db.accounts_to_read(conn)
    results = await asyncio.gather(*(read_account(ctx, st, a) for a in accounts), return_exceptions=True)
    out: dict[str, str] = {}
    for a, res in zip(accounts, results, strict=True):
        out[_key(a)] = res if isinstance(res, str) else f"crashed: {res!r}"
        if not isinstance(res, str):
            st.problems[_key(a)] = f"read crashed, retried next cycle: {res!r}"
            log.error("ingest_account_crashed", ad_account_id=a.ad_account_id, error=repr(res))
    return out
