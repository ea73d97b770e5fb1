"""Migrations record the sha256 of their SQL; an applied migration whose file changed is refused at start-up,
naming the file. Databases migrated before checksums existed upgrade cleanly. Against the real PostgreSQL."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog

from allot.rules.service import SPEC
from allot.runtime.db import (
    ACCOUNTS_MIGRATIONS,
    RUNTIME_MIGRATIONS,
    Migration,
    MigrationChecksumMismatch,
    create_pool,
    load_migrations,
    migrate,
    migrations_dir,
)
from tests.support.service import running_service

SVC = [
    Migration("svc", 1, "things", "CREATE TABLE things (id int PRIMARY KEY)"),
    Migration("svc", 2, "more", "ALTER TABLE things ADD COLUMN name text"),
]


def _sha(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()


async def _recorded(pool: asyncpg.Pool) -> dict[tuple[str, int], str | None]:
    rows = await pool.fetch("SELECT component, version, checksum FROM schema_migrations")
    return {(r["component"], r["version"]): r["checksum"] for r in rows}


@pytest.fixture
async def pool(settings: Any) -> Any:
    p = await create_pool(settings.database_url, settings.schema, max_size=2)
    try:
        yield p
    finally:
        await p.close()


def test_loaded_migrations_name_their_file_and_hash_its_content() -> None:
    runtime = load_migrations("runtime", "allot.runtime.migrations")
    assert [m.file for m in runtime] == ["allot.runtime.migrations/0001_runtime.sql"]
    text = (migrations_dir("allot.runtime.migrations") / "0001_runtime.sql").read_text()
    assert runtime[0].checksum == _sha(text)
    pools = load_migrations("pools", "allot.pools.migrations")
    assert all(m.file == f"allot.pools.migrations/{m.version:04d}_{m.name}.sql" for m in pools)
    assert len({m.checksum for m in pools}) == len(pools)


async def test_applied_migrations_record_their_checksum(pool: Any, settings: Any) -> None:
    migrations = load_migrations("runtime", "allot.runtime.migrations") + SVC
    assert len(await migrate(pool, settings.schema, migrations)) == 3
    assert await _recorded(pool) == {(m.component, m.version): m.checksum for m in migrations}
    assert await _recorded(pool) == {("runtime", 1): migrations[0].checksum, ("svc", 1): _sha(SVC[0].sql),
                                     ("svc", 2): _sha(SVC[1].sql)}
    # Unchanged files: a restart applies nothing and is not refused.
    assert await migrate(pool, settings.schema, migrations) == []


async def test_an_edited_applied_migration_is_refused_naming_the_file(pool: Any, settings: Any) -> None:
    runtime = load_migrations("runtime", "allot.runtime.migrations")
    await migrate(pool, settings.schema, runtime + SVC)
    edited = dataclasses.replace(SVC[0], sql=SVC[0].sql.replace("id int", "id bigint"), source="svc/0001_things.sql")
    new = Migration("svc", 3, "newer", "CREATE TABLE newer (id int)")
    with pytest.raises(MigrationChecksumMismatch) as refused:
        await migrate(pool, settings.schema, [*runtime, edited, SVC[1], new])
    message = str(refused.value)
    assert "svc/0001_things.sql" in message
    assert SVC[0].checksum[:12] in message and edited.checksum[:12] in message
    assert "0002_more" not in message, "only the changed file is named"
    assert "new migration" in message
    # Nothing after the refusal ran: the new migration is neither applied nor recorded.
    assert await pool.fetchval("SELECT to_regclass('newer')") is None
    assert ("svc", 3) not in await _recorded(pool)
    # The advisory lock was released: the original files still migrate (and add the new one).
    assert await migrate(pool, settings.schema, [*runtime, *SVC, new]) == ["svc:0003_newer"]


async def test_an_edited_packaged_migration_names_its_package_file(pool: Any, settings: Any) -> None:
    runtime = load_migrations("runtime", "allot.runtime.migrations")
    await migrate(pool, settings.schema, runtime)
    touched = dataclasses.replace(runtime[0], sql=runtime[0].sql + "\n-- a comment is a change too\n")
    with pytest.raises(MigrationChecksumMismatch, match=r"allot\.runtime\.migrations/0001_runtime\.sql"):
        await migrate(pool, settings.schema, [touched])


async def test_a_database_from_before_checksums_upgrades_cleanly(pool: Any, settings: Any) -> None:
    """The runner before checksums: the old table shape, rows without checksum, migrations applied."""
    schema = settings.schema
    await pool.execute(
        f"""CREATE TABLE "{schema}".schema_migrations (
                component text NOT NULL, version int NOT NULL, name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (component, version))"""
    )
    for mig in SVC:
        await pool.execute(mig.sql)
        await pool.execute("INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)",
                           mig.component, mig.version, mig.name)
    new = Migration("svc", 3, "newer", "CREATE TABLE newer (id int)")
    # Nothing already applied runs again (it would fail: things exists); the new one is applied.
    assert await migrate(pool, schema, [*SVC, new]) == ["svc:0003_newer"]
    assert await _recorded(pool) == {("svc", 1): SVC[0].checksum, ("svc", 2): SVC[1].checksum,
                                     ("svc", 3): new.checksum}
    # From now on an edit of a backfilled migration is refused.
    edited = dataclasses.replace(SVC[1], sql=SVC[1].sql + " NOT NULL")
    with pytest.raises(MigrationChecksumMismatch, match="svc/0002_more.sql"):
        await migrate(pool, schema, [SVC[0], edited, new])
    assert await migrate(pool, schema, [*SVC, new]) == []


async def test_rows_of_migrations_no_longer_shipped_are_left_alone(pool: Any, settings: Any) -> None:
    await migrate(pool, settings.schema, SVC)
    assert await migrate(pool, settings.schema, SVC[:1]) == []
    assert set(await _recorded(pool)) == {("svc", 1), ("svc", 2)}


def test_checksum_ignores_crlf_checkouts(tmp_path: Path) -> None:
    """read_text() turns CRLF into LF, so a Windows checkout of an applied file is not a change."""
    (tmp_path / "lf.sql").write_bytes(b"CREATE TABLE a (id int);\nSELECT 1;\n")
    (tmp_path / "crlf.sql").write_bytes(b"CREATE TABLE a (id int);\r\nSELECT 1;\r\n")
    lf, crlf = (Migration("x", 1, "a", (tmp_path / f).read_text()) for f in ("lf.sql", "crlf.sql"))
    assert lf.checksum == crlf.checksum
    assert lf.checksum != Migration("x", 1, "a", "CREATE TABLE a (id bigint);\nSELECT 1;\n").checksum


async def test_a_service_refuses_to_start_on_an_edited_migration(settings: Any, capsys: Any) -> None:
    """The rules service's start-up (its real lifespan) stops before the broker, naming the changed file."""
    assert SPEC.migrations_package
    shipped = load_migrations("runtime", "allot.runtime.migrations") + load_migrations(SPEC.name,
                                                                                        SPEC.migrations_package)
    first = shipped[1]
    setup = await create_pool(settings.database_url, settings.schema, max_size=1)
    try:
        await migrate(setup, settings.schema, shipped)
        # What the database would hold had the file been different when it was applied.
        await setup.execute("UPDATE schema_migrations SET checksum = $1 WHERE component = $2 AND version = $3",
                            _sha("something else"), first.component, first.version)
    finally:
        await setup.close()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with pytest.raises(MigrationChecksumMismatch, match=first.file.replace(".", r"\.")):
            async with running_service(SPEC, settings):
                pytest.fail("the service started")
        assert "refusing_to_start" in capsys.readouterr().out
    finally:
        # The service's logging setup bound capsys' stream, which closes after this test: log to whatever
        # sys.stdout is at each call again, as before the service started.
        structlog.configure(logger_factory=structlog.PrintLoggerFactory())
        root.handlers[:] = handlers
        root.setLevel(level)


def _directory_migrations() -> tuple[list[Migration], list[Migration], list[Migration]]:
    return (load_migrations("runtime", RUNTIME_MIGRATIONS), load_migrations("accounts", ACCOUNTS_MIGRATIONS),
            load_migrations("guardrails", "allot.guardrails.migrations"))


async def test_the_account_directory_migration_joins_schemas_that_already_have_its_table(
        pool: Any, settings: Any) -> None:
    """A schema migrated before the runtime owned ad_accounts (a service's own 0003 created it): the runtime's
    migration is applied without touching the table or its rows, and nothing of the service's is refused."""
    runtime, accounts, guardrails = _directory_migrations()
    await migrate(pool, settings.schema, runtime + guardrails)
    await pool.execute("INSERT INTO ad_accounts (workspace_id, platform, ad_account_id, currency, timezone_name, "
                       "account_status, state, observed_at, updated_at) "
                       "VALUES ('ws', 'meta', '1', 'EUR', 'Europe/Berlin', 'active', 'connected', now(), now())")
    assert await migrate(pool, settings.schema, runtime + accounts + guardrails) == ["accounts:0001_ad_accounts"]
    assert await pool.fetchval("SELECT timezone_name FROM ad_accounts") == "Europe/Berlin"
    assert await migrate(pool, settings.schema, runtime + accounts + guardrails) == []


async def test_a_new_schema_gets_the_account_directory_from_the_runtime(pool: Any, settings: Any) -> None:
    runtime, accounts, guardrails = _directory_migrations()
    applied = await migrate(pool, settings.schema, runtime + accounts + guardrails)
    assert applied[:2] == ["runtime:0001_runtime", "accounts:0001_ad_accounts"]
    assert "guardrails:0003_ad_accounts" in applied  # recorded, and changed nothing: the table was there
    assert await pool.fetchval("SELECT to_regclass('ad_accounts')") is not None
