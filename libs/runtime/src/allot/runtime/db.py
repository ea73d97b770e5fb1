"""The one asyncpg pool per service, its own schema, and versioned SQL migrations applied at start-up.

Each applied migration is recorded with the sha256 of its SQL; an applied migration whose file has changed since
is refused at start-up (MigrationChecksumMismatch), so an edit to history never silently diverges databases.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson

from allot.runtime.logging import get_logger

log = get_logger(__name__)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    #: What code that runs SQL takes: a connection from ``pool.acquire()`` (asyncpg's proxy) or a plain one.
    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    # At run time asyncpg's Connection: its isinstance() accepts a pool's proxy too (asyncpg's ConnectionMeta).
    Conn = asyncpg.Connection

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

RUNTIME_MIGRATIONS = "allot.runtime.migrations"
#: The account directory's table (allot.runtime.accounts), for services that consume account.profiled.
ACCOUNTS_MIGRATIONS = "allot.runtime.accounts_migrations"


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str
    #: Where the SQL came from (``package/NNNN_name.sql``), for error messages.
    source: str = ""

    @property
    def checksum(self) -> str:
        """sha256 (hex) of the SQL text (newlines as read: a CRLF checkout gives the same checksum)."""
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def file(self) -> str:
        return self.source or f"{self.component}/{self.version:04d}_{self.name}.sql"


class MigrationChecksumMismatch(RuntimeError):
    """An already-applied migration's SQL is not what was applied: never edit an applied migration, add one."""



def load_migrations(component: str, package: str) -> list[Migration]:
    """Numbered SQL files (NNNN_name.sql) shipped inside ``package``, in version order."""
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        m = _MIGRATION_RE.match(entry.name)
        if m:
            source = f"{package}/{entry.name}"
            found.append(Migration(component, int(m.group(1)), m.group(2), entry.read_text(), source))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {package}: {versions}")
    return found


def check_schema_name(schema: str) -> str:
    """Schema names are interpolated into SQL, so only plain identifiers are accepted."""
    if not _SCHEMA_RE.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ, schema="pg_catalog", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, format="text"
        )


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections use ``schema`` first on the search path and decode json with orjson."""
    check_schema_name(schema)
    boot = await asyncpg.connect(dsn)
    try:
        await boot.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        await boot.close()
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": f'"{schema}",public', "application_name": f"allot-{schema}"},
        init=_init_connection,
        command_timeout=30,
    )
    assert pool is not None
    return pool


async def migrate(pool: asyncpg.Pool, schema: str, migrations: list[Migration]) -> list[str]:
    """Apply each migration not yet recorded, in its own transaction; safe to run from many instances at once.

    Recorded migrations are checked first: one whose SQL differs from the checksum recorded when it was applied
    raises MigrationChecksumMismatch naming the file(s), and nothing is applied. Rows recorded before checksums
    existed (NULL) get the current file's checksum (the upgrade of an existing database)."""
    check_schema_name(schema)
    applied_now: list[str] = []
    lock_key = zlib.crc32(f"allot-migrate:{schema}".encode())
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
        try:
            await conn.execute(
                f"""CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations (
                        component text NOT NULL, version int NOT NULL, name text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now(), checksum text,
                        PRIMARY KEY (component, version))"""
            )
            # Databases created before checksums were recorded: add the column (their rows start NULL). Checked
            # first so a normal start takes no ACCESS EXCLUSIVE lock on the table.
            has_checksum = await conn.fetchval(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = $1"
                " AND table_name = 'schema_migrations' AND column_name = 'checksum'",
                schema,
            )
            if not has_checksum:
                await conn.execute(f'ALTER TABLE "{schema}".schema_migrations ADD COLUMN IF NOT EXISTS checksum text')
            rows = await conn.fetch(
                f'SELECT component, version, checksum, applied_at FROM "{schema}".schema_migrations'
            )
            done = {(r["component"], r["version"]): r for r in rows}
            _check_applied(schema, migrations, done)
            backfilled = []
            for mig in migrations:
                row = done.get((mig.component, mig.version))
                if row is not None and row["checksum"] is None:
                    await conn.execute(
                        f'UPDATE "{schema}".schema_migrations SET checksum = $3'
                        " WHERE component = $1 AND version = $2 AND checksum IS NULL",
                        mig.component, mig.version, mig.checksum,
                    )
                    backfilled.append(mig.file)
            if backfilled:
                log.info("migration_checksums_recorded", schema=schema, migrations=backfilled)
            for mig in migrations:
                if (mig.component, mig.version) in done:
                    continue
                async with conn.transaction():
                    await conn.execute(mig.sql)
                    await conn.execute(
                        f'INSERT INTO "{schema}".schema_migrations (component, version, name, checksum)'
                        " VALUES ($1, $2, $3, $4)",
                        mig.component, mig.version, mig.name, mig.checksum,
                    )
                applied_now.append(f"{mig.component}:{mig.version:04d}_{mig.name}")
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
    if applied_now:
        log.info("migrations_applied", schema=schema, migrations=applied_now)
    return applied_now


def _check_applied(schema: str, migrations: list[Migration], done: dict[tuple[str, int], Any]) -> None:
    changed = []
    for mig in migrations:
        row = done.get((mig.component, mig.version))
        if row is not None and row["checksum"] is not None and row["checksum"] != mig.checksum:
            changed.append(
                f"{mig.file} (applied {row['applied_at']:%Y-%m-%d %H:%M:%S %Z} with sha256 {row['checksum'][:12]}…,"
                f" the file now has {mig.checksum[:12]}…)"
            )
    if changed:
        raise MigrationChecksumMismatch(
            f'schema "{schema}": applied migration(s) changed since they were applied: {"; ".join(changed)}. '
            "An applied migration must never be edited: restore the file and put the change in a new migration."
        )


async def open_database(dsn: str, schema: str, service_package: str | None, component: str,
                        *, accounts: bool = False, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Create the pool and apply the runtime's, the account directory's (``accounts``: the service consumes
    account.profiled) and then the service's migrations."""
    pool = await create_pool(dsn, schema, min_size=min_size, max_size=max_size)
    migrations = load_migrations("runtime", RUNTIME_MIGRATIONS)
    if accounts:
        migrations += load_migrations("accounts", ACCOUNTS_MIGRATIONS)
    if service_package:
        migrations += load_migrations(component, service_package)
    await migrate(pool, schema, migrations)
    return pool


def json_insert_rows(columns: Sequence[tuple[str, str]]) -> str:
    """What follows ``INSERT INTO <table>`` for a batch passed as ONE JSON parameter ($1, an array of rows):
    ``(<names>) SELECT (r->>0)::<type>, ... FROM jsonb_array_elements($1::jsonb) AS r``.

    ``columns`` are (name, SQL type) in row order; pass the rows themselves (tuples) as $1. orjson
    encodes them and Postgres parses them once: binding one typed array per column costs the service
    more CPU per row than the whole upsert costs Postgres (measured in bench/load.py)."""
    names = ", ".join(name for name, _ in columns)
    casts = ", ".join(f"(r->>{i})::{sql_type}" for i, (_, sql_type) in enumerate(columns))
    return f"({names}) SELECT {casts} FROM jsonb_array_elements($1::jsonb) AS r"


def migrations_dir(package: str) -> Path:
    """Filesystem folder of a migrations package (for docs and tools)."""
    return Path(str(resources.files(package)))


Record = dict[str, Any]
