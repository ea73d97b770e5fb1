"""The account directory: each service's own projection of ``account.profiled`` (which workspace owns an ad
account, its currency and its time zone), and the in-memory ``zone_for`` lookup built on it.

Every service that needs an account's local day stores the projection in ITS OWN schema, in a table of the
same name (``ad_accounts``). The runtime owns its migration (``allot.runtime.accounts_migrations``, applied into
the schema of every service that consumes ACCOUNT_TOPIC); the identical copies the services shipped before (see
``MIGRATION_FILE_SUFFIX``) stay, since applied migrations are never edited, and change nothing once the table is
there. Each such service registers the same handler and start-up hooks:

    consumes={..., ACCOUNT_TOPIC: on_account_profiled}, tasks=[..., refresh_directory],
    on_start=<the service's own on_start, calling ``await load_directory(ctx)`` first>

Semantics:
- Later reports win: a report is applied only when its ``observed_at`` is later than the stored one, so
  replays and out-of-order deliveries change nothing.
- An unknown IANA zone name can never be applied: the event goes to the DLQ with the reason (``PoisonEvent``).
- ``zone_for`` of an account nobody reported is UTC, i.e. exactly the behaviour from before the projection.
- The in-memory directory is updated by this instance's consumer as it applies events, and re-read from the
  table by ``refresh_directory`` (instances of one consumer group each see only some partitions). Merges never
  go back in time (observed_at), so a refresh cannot undo a newer report. A batch that rolls back after
  updating memory is re-delivered and applied again, so memory never keeps a report the table will not.

Tenancy: the projection also says which workspaces an ad account is connected to (every report not
``disconnected``). ``ownership_problem`` is the pure rule APIs use before a workspace may reference an account
(pools' members, rules' scopes, pacing plans' entities, guardrails' account settings): never an account another
workspace has connected and this one has not; with ``require_connected_accounts`` (the default outside tests)
only an account connected to this workspace. ``account_refusals`` applies it to a request's fields after
re-reading those accounts from the table (a report another instance consumed counts at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from allot.contracts.envelope import Envelope
from allot.contracts.localday import UnknownTimeZone, zone_named
from allot.contracts.payloads import AccountProfiled
from allot.runtime.consumer import BatchContext, Handler, PoisonEvent
from allot.runtime.db import Conn
from allot.runtime.logging import get_logger

if TYPE_CHECKING:
    from allot.runtime.service import ServiceContext

log = get_logger(__name__)

ACCOUNT_TOPIC = "account.profiled"
#: The migrations that create the projection end with this name (the runtime's and the services' older copies).
MIGRATION_FILE_SUFFIX = "_ad_accounts.sql"
#: Seconds between re-reads of the table (reports consumed by other instances of the service).
REFRESH_S = 30.0
UTC_ZONE = ZoneInfo("UTC")

AccountKey = tuple[str, str, str]  #: (workspace_id, platform, ad_account_id)
#: A reference to check: (API field, platform or None for any platform, ad account id or None when absent).
AccountRef = tuple[str, str | None, str | None]


def bare_account_id(ad_account_id: str) -> str:
    """The id without Meta's ``act_`` prefix (``act_123`` and ``123`` name one account)."""
    return ad_account_id[4:] if ad_account_id[:4].lower() == "act_" else ad_account_id


def ownership_problem(ad_account_id: str, *, workspace_id: str, owners: Collection[str], strict: bool) -> str | None:
    """Why ``workspace_id`` may not reference the account that ``owners`` (the workspaces it is connected to)
    have connected, or None: another workspace's account always; with ``strict``, any account not connected here."""
    if workspace_id in owners:
        return None
    if owners:
        return f"ad account {ad_account_id} is connected to another workspace"
    if strict:
        return f"ad account {ad_account_id} is not connected to this workspace"
    return None


@dataclass(frozen=True, slots=True)
class AccountProfile:
    """What a service knows about one ad account (the latest report)."""

    workspace_id: str
    platform: str
    ad_account_id: str
    currency: str
    timezone_name: str
    zone: ZoneInfo
    account_status: str
    state: str
    observed_at: datetime

    @property
    def key(self) -> AccountKey:
        return (self.workspace_id, self.platform, self.ad_account_id)


def profile_from_event(workspace_id: str, p: AccountProfiled) -> AccountProfile:
    """The profile an ``account.profiled`` payload describes; raises ``UnknownTimeZone`` for an unknown zone."""
    return AccountProfile(workspace_id=workspace_id, platform=p.platform, ad_account_id=p.ad_account_id,
                          currency=p.currency, timezone_name=p.timezone_name, zone=zone_named(p.timezone_name),
                          account_status=p.account_status, state=p.state, observed_at=p.observed_at)


class AccountDirectory:
    """In-memory ``(workspace, platform, ad account) → profile``; later ``observed_at`` wins on every merge."""

    def __init__(self) -> None:
        self._profiles: dict[AccountKey, AccountProfile] = {}
        #: (platform, bare ad account id) → workspaces whose latest report is not ``disconnected``
        self._owners: dict[tuple[str, str], set[str]] = {}

    def __len__(self) -> int:
        return len(self._profiles)

    def put(self, profile: AccountProfile) -> bool:
        """Keep ``profile`` unless a report observed at the same time or later is held; True when kept."""
        held = self._profiles.get(profile.key)
        if held is not None and held.observed_at >= profile.observed_at:
            return False
        self._profiles[profile.key] = profile
        owners = self._owners.setdefault((profile.platform, bare_account_id(profile.ad_account_id)), set())
        if profile.state == "disconnected":
            owners.discard(profile.workspace_id)
        else:
            owners.add(profile.workspace_id)
        return True

    def get(self, workspace_id: str, platform: str, ad_account_id: str) -> AccountProfile | None:
        return self._profiles.get((workspace_id, platform, ad_account_id))

    def owners_of(self, platform: str | None, ad_account_id: str) -> frozenset[str]:
        """Workspaces the account is connected to (on ``platform``, or on any platform when None)."""
        bare = bare_account_id(ad_account_id)
        if platform is not None:
            return frozenset(self._owners.get((platform, bare), ()))
        return frozenset(w for (_, a), ws in self._owners.items() if a == bare for w in ws)

    def owner_check(self, workspace_id: str, platform: str | None, ad_account_id: str, *,
                    strict: bool) -> str | None:
        """Why ``workspace_id`` may not reference the account (``ownership_problem``), or None."""
        return ownership_problem(ad_account_id, workspace_id=workspace_id,
                                 owners=self.owners_of(platform, ad_account_id), strict=strict)

    def refusals(self, workspace_id: str, refs: Sequence[AccountRef], *, strict: bool) -> list[tuple[str, str]]:
        """(field, reason) for each reference the workspace may not make; a missing id counts only when strict."""
        out: list[tuple[str, str]] = []
        for field, platform, ad_account_id in refs:
            if ad_account_id is None:
                if strict:
                    out.append((field, "required: an ad account connected to this workspace"))
                continue
            problem = self.owner_check(workspace_id, platform, ad_account_id, strict=strict)
            if problem is not None:
                out.append((field, problem))
        return out

    def zone_for(self, workspace_id: str, platform: str, ad_account_id: str) -> ZoneInfo:
        """The account's time zone; UTC for an account no report has named (the behaviour before profiles)."""
        held = self._profiles.get((workspace_id, platform, ad_account_id))
        return UTC_ZONE if held is None else held.zone

    async def refresh(self, conn: Conn, ad_account_ids: Collection[str] | None = None) -> int:
        """Merge every stored profile (this service's ``ad_accounts`` table), or only those of ``ad_account_ids``
        (with or without ``act_``); returns how many were newer."""
        query = """SELECT workspace_id, platform, ad_account_id, currency, timezone_name, account_status, state,
                          observed_at FROM ad_accounts"""
        if ad_account_ids is None:
            rows = await conn.fetch(query)
        else:
            bare = {bare_account_id(a) for a in ad_account_ids}
            rows = await conn.fetch(query + " WHERE ad_account_id = ANY($1::text[])",
                                    sorted(bare | {f"act_{a}" for a in bare}))
        kept = 0
        for r in rows:
            try:
                zone = zone_named(r["timezone_name"])
            except UnknownTimeZone:  # stored under a newer tz database than this process has: keep the old
                log.warning("account_zone_unknown_here", ad_account_id=r["ad_account_id"],
                            timezone_name=r["timezone_name"])
                continue
            kept += self.put(AccountProfile(zone=zone, **dict(r)))
        return kept


async def account_refusals(extra: dict[Any, Any], conn: Conn, workspace_id: str,
                           refs: Sequence[AccountRef], *, strict: bool) -> list[tuple[str, str]]:
    """(field, reason) for each ad account the workspace may not reference, after re-reading those accounts."""
    directory = directory_of(extra)
    ids = {a for _, _, a in refs if a is not None}
    if ids:
        await directory.refresh(conn, ids)
    return directory.refusals(workspace_id, refs, strict=strict)


def directory_of(extra: dict[Any, Any]) -> AccountDirectory:
    """The service's one directory, kept in its context's ``extra`` under its class (shared by handlers, tasks
    and routes; created on first use)."""
    directory = extra.get(AccountDirectory)
    if directory is None:
        directory = extra[AccountDirectory] = AccountDirectory()
    assert isinstance(directory, AccountDirectory)
    return directory


#: (workspace_id, platform, ad_account_id, previous zone name, new zone name); an account first reported in a
#: zone other than UTC counts as a change from UTC (what the service assumed until then).
ZoneChange = tuple[str, str, str, str, str]
ZoneChangeHook = Callable[[Conn, list[ZoneChange]], Awaitable[None]]


def account_profiled_handler(on_zone_changed: ZoneChangeHook | None = None) -> Handler:
    """The ``account.profiled`` handler; ``on_zone_changed`` runs in the same transaction for accounts whose
    zone changed (e.g. to re-bucket daily aggregates that were counted in the old zone)."""

    async def on_account_profiled(ctx: BatchContext, events: list[Envelope[AccountProfiled]]) -> None:
        changes = await apply_profiles(ctx, events)
        if changes and on_zone_changed is not None:
            await on_zone_changed(ctx.conn, changes)

    return on_account_profiled


async def apply_profiles(ctx: BatchContext, events: list[Envelope[AccountProfiled]]) -> list[ZoneChange]:
    """Store the latest report per account (later ``observed_at`` wins); an unknown zone goes to the DLQ.
    Returns the accounts whose zone changed."""
    latest: dict[AccountKey, tuple[AccountProfile, AccountProfiled]] = {}
    for event in events:
        p: AccountProfiled = event.payload
        try:
            profile = profile_from_event(event.workspace_id, p)
        except UnknownTimeZone as exc:
            raise PoisonEvent(event.event_id, f"account {p.platform}/{p.ad_account_id}: {exc}") from exc
        held = latest.get(profile.key)
        if held is None or held[0].observed_at < profile.observed_at:
            latest[profile.key] = (profile, p)
    if not latest:
        return []
    now = ctx.clock.now()
    rows = [(pr.workspace_id, pr.platform, pr.ad_account_id, p.connection_id, p.name, pr.currency,
             pr.timezone_name, pr.account_status, pr.state, p.detail, pr.observed_at, now)
            for pr, p in latest.values()]
    applied = await ctx.conn.fetch(
        """WITH incoming AS (
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                    $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[],
                                    $12::timestamptz[])
                   AS t(workspace_id, platform, ad_account_id, connection_id, name, currency, timezone_name,
                        account_status, state, detail, observed_at, updated_at)),
           before AS (
               SELECT a.workspace_id, a.platform, a.ad_account_id, a.timezone_name FROM ad_accounts a
               JOIN incoming i USING (workspace_id, platform, ad_account_id))
           INSERT INTO ad_accounts AS a (workspace_id, platform, ad_account_id, connection_id, name, currency,
                                         timezone_name, account_status, state, detail, observed_at, updated_at)
           SELECT * FROM incoming
           ON CONFLICT (workspace_id, platform, ad_account_id) DO UPDATE SET
               connection_id = EXCLUDED.connection_id, name = EXCLUDED.name, currency = EXCLUDED.currency,
               timezone_name = EXCLUDED.timezone_name, account_status = EXCLUDED.account_status,
               state = EXCLUDED.state, detail = EXCLUDED.detail, observed_at = EXCLUDED.observed_at,
               updated_at = EXCLUDED.updated_at
           WHERE a.observed_at < EXCLUDED.observed_at
           RETURNING a.workspace_id, a.platform, a.ad_account_id, a.timezone_name,
                     (SELECT b.timezone_name FROM before b WHERE b.workspace_id = a.workspace_id
                        AND b.platform = a.platform AND b.ad_account_id = a.ad_account_id) AS previous_zone""",
        *map(list, zip(*rows, strict=True)))
    directory = directory_of(ctx.extra)
    changes: list[ZoneChange] = []
    for r in applied:
        profile, _ = latest[(r["workspace_id"], r["platform"], r["ad_account_id"])]
        directory.put(profile)
        previous = r["previous_zone"] or "UTC"
        if previous != r["timezone_name"]:
            changes.append((r["workspace_id"], r["platform"], r["ad_account_id"], previous, r["timezone_name"]))
            if r["previous_zone"] is not None:
                log.warning("account_time_zone_changed", workspace_id=r["workspace_id"], platform=r["platform"],
                            ad_account_id=r["ad_account_id"], previous=previous, current=r["timezone_name"])
    return changes


#: The handler for services that only need the directory.
on_account_profiled = account_profiled_handler()


async def load_directory(ctx: ServiceContext) -> AccountDirectory:
    """Read the whole projection into the service's directory (call from the service's ``on_start``)."""
    directory = directory_of(ctx.extra)
    async with ctx.pool.acquire() as conn:
        n = await directory.refresh(conn)
    log.info("account_directory_loaded", accounts=len(directory), newer=n)
    return directory


async def refresh_directory(ctx: ServiceContext) -> None:
    """Background task: re-read the projection every ``REFRESH_S`` real seconds (reports other instances took)."""
    directory = directory_of(ctx.extra)
    while True:
        await asyncio.sleep(REFRESH_S)
        async with ctx.pool.acquire() as conn:
            await directory.refresh(conn)
