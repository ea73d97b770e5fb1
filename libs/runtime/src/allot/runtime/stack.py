"""`make run`: the whole system on one machine, in the foreground, stopped cleanly by Ctrl-C or SIGTERM.

Starts the embedded broker and PostgreSQL (unless ALLOT_KAFKA_BOOTSTRAP / ALLOT_DATABASE_URL point at
real ones), creates the topics, starts every service that exists as its own process, waits until each
is ready, runs the demo, and on a signal stops everything it started, by process id.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from pydantic import ValidationError

from allot.runtime.auth import ApiKeyStore, generate_key
from allot.runtime.embedded import EmbeddedBroker, EmbeddedPostgres, free_port, start_broker, start_postgres
from allot.runtime.kafka import ensure_topics
from allot.runtime.service import module_exists
from allot.runtime.settings import Settings, approval_secret_problems

#: service name → default HTTP port. Order = start order.
SERVICES: dict[str, int] = {
    "sandbox": 8100,
    "guardrails": 8101,
    "executor": 8102,
    "pools": 8103,
    "rules": 8104,
    "pacing": 8105,
    "connections": 8106,
    "ingest": 8107,
    "notify": 8109,
    "console": 8110,  # the web console (started last; it only calls the others' HTTP APIs)
}
#: What the demo's ad platform is (ALLOT_DEMO_PLATFORM): the sandbox, or Meta played by the Graph fake.
PLATFORMS = ("sandbox", "meta")
GRAPH_FAKE = "graph-fake"
GRAPH_FAKE_PORT = 8108


@dataclass
class RunningStack:
    """Everything the stack started, so it can be stopped by pid."""

    root: Path
    bootstrap: str
    database_url: str
    env: dict[str, str]
    broker: EmbeddedBroker | None = None
    postgres: EmbeddedPostgres | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    admin_key: str = ""
    #: per service: variables only that service gets (its own sealing private keys)
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)

    def start_service(self, name: str, *, module: str | None = None, args: tuple[str, ...] = (),
                      **extra_env: str) -> subprocess.Popen[bytes]:
        """Start (or restart) one service process (``python -m allot.<name>`` unless ``module`` says otherwise)
        with the stack's environment."""
        proc_env = {**self.env, "ALLOT_SERVICE_NAME": name, "ALLOT_HTTP_PORT": str(self.ports[name]),
                    **self.service_env.get(name, {}), **extra_env}
        out = open(self.root / "logs" / f"{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", module or f"allot.{name}", *args], env=proc_env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = proc
        return proc

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, proc in self.processes.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"  {name} did not stop in time; killing pid {proc.pid}")
                proc.kill()
                proc.wait(5)
        if self.postgres:
            self.postgres.stop()
        if self.broker:
            self.broker.stop()


def available_services() -> list[str]:
    """Services whose package is installed (those not built yet are simply not started)."""
    return [s for s in SERVICES if module_exists(f"allot.{s}.__main__")]


def _port(preferred: int) -> int:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def start_stack(root: Path, *, services: list[str] | None = None, clock_speed: float | None = None,
                extra_env: dict[str, str] | None = None, quiet: bool = False, bootstrap: str | None = None,
                database_url: str | None = None, api_keys: list[dict[str, str]] | None = None,
                random_ports: bool = False, platform: str = "sandbox") -> RunningStack:
    """Start infrastructure and services; returns when every started service reports ready.

    ``random_ports``: give every service a free ephemeral HTTP port instead of its default (81xx). Tests use it:
    two stacks starting at once on one machine could otherwise both pick a default port, and the loser's
    readiness check would be answered by the other stack's process.
    ``platform="meta"``: also start the Graph fake (``python -m allot.fakes.meta --demo``, development only) and
    point ingest and the executor at it, with a read token, a write token and an app secret made for this run."""
    if platform not in PLATFORMS:
        raise SystemExit(f"ALLOT_DEMO_PLATFORM must be one of {', '.join(PLATFORMS)}, not {platform!r}")
    if platform == "meta" and not module_exists("allot.fakes.meta.__main__"):
        raise SystemExit("ALLOT_DEMO_PLATFORM=meta needs the Graph fake (libs/fakes); run `make venv` first")
    say = (lambda *_: None) if quiet else print
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    base = Settings()
    broker = postgres = None
    bootstrap = bootstrap or os.environ.get("ALLOT_KAFKA_BOOTSTRAP")
    if not bootstrap:
        broker = start_broker(_port(9092), log_path=logs / "broker.log")
        bootstrap = broker.bootstrap
        say(f"  broker     embedded Tansu on {bootstrap} (in memory)")
    else:
        say(f"  broker     {bootstrap} (ALLOT_KAFKA_BOOTSTRAP)")
    database_url = database_url or os.environ.get("ALLOT_DATABASE_URL")
    if not database_url:
        postgres = start_postgres(root / "pgdata", _port(5433), fresh=True)
        database_url = postgres.dsn
        say(f"  postgres   embedded PostgreSQL on 127.0.0.1:{postgres.port} (fresh data in {root / 'pgdata'})")
    else:
        say("  postgres   ALLOT_DATABASE_URL")
    asyncio.run(ensure_topics(base.model_copy(update={"kafka_bootstrap": bootstrap})))

    raw_key, entry = generate_key("demo", "admin", key_id="demo-admin")
    configured = configured_api_keys(os.environ.get("ALLOT_API_KEYS", ""))
    keys = [entry.model_dump(), *configured, *(api_keys or [])]
    if configured:
        say(f"  api keys   demo-admin + {len(configured)} from ALLOT_API_KEYS "
            f"({', '.join(k['key_id'] for k in configured)})")
    env = {k: v for k, v in os.environ.items()}
    secret, generated = approval_secret_for_run(os.environ)
    problems = [] if generated or base.env == "development" else approval_secret_problems(secret)
    if problems:
        raise SystemExit("; ".join(problems) + " (unset it and `make run` generates one per run, or set "
                         "ALLOT_ENV=development)")
    say("  approvals  " + ("a random ALLOT_APPROVAL_SECRET generated for this run" if generated
                           else "ALLOT_APPROVAL_SECRET from the environment"))
    env.update({
        "ALLOT_KAFKA_BOOTSTRAP": bootstrap,
        "ALLOT_DATABASE_URL": database_url,
        "ALLOT_API_KEYS": orjson.dumps(keys).decode(),
        "ALLOT_APPROVAL_SECRET": secret,
        "ALLOT_KAFKA_CREATE_TOPICS": "false",
        "PYTHONUNBUFFERED": "1",
    })
    if clock_speed:
        env.update({"ALLOT_CLOCK": "simulated", "ALLOT_CLOCK_SPEED": str(clock_speed),
                    "ALLOT_CLOCK_ANCHOR_REAL": repr(time.time()),
                    "ALLOT_CLOCK_ANCHOR_SIM": env.get("ALLOT_CLOCK_ANCHOR_SIM", "2026-11-02T00:00:00+00:00")})
    env.update(extra_env or {})
    stack = RunningStack(root, bootstrap, database_url, env, broker, postgres, admin_key=raw_key,
                         service_env=sealing_env_for_run())
    # The demo's notifications go to a receiver on loopback (sandbox.demo): only the notifier runs as development.
    stack.service_env["notify"].update({"ALLOT_ENV": "development", "ALLOT_NOTIFY_ALLOW_LOOPBACK": "true"})
    say("  sealing    token keypairs for ingest and executor generated for this run (connections holds the "
        "public halves)")
    wanted = services if services is not None else available_services()
    for name in wanted:
        stack.ports[name] = free_port() if random_ports else _port(SERVICES[name])
    shared_urls = {f"ALLOT_{n.upper()}_URL": stack.url(n) for n in stack.ports}
    env.update(shared_urls)
    try:
        if platform == "meta":
            start_graph_fake(stack, free_port() if random_ports else _port(GRAPH_FAKE_PORT))
            say(f"  graph-fake ready  {stack.url(GRAPH_FAKE)}  (Meta Graph API fake; ingest and the executor use it)")
        for name in wanted:
            stack.start_service(name)
        for name in wanted:
            wait_ready(stack, name)
            say(f"  {name:<10} ready  {stack.url(name)}  (pid {stack.processes[name].pid}, "
                f"log {logs / (name + '.log')})")
    except BaseException:
        stack.stop()
        raise
    return stack


def start_graph_fake(stack: RunningStack, port: int) -> None:
    """The Graph fake as a process of the stack, with this run's tokens and app secret; ingest and the executor
    are pointed at it (their own variables only) and ingest reads every simulated hour, two days back."""
    read_token, write_token = f"EAAread{secrets.token_hex(16)}", f"EAAwrite{secrets.token_hex(16)}"
    app_secret = secrets.token_hex(16)
    stack.ports[GRAPH_FAKE] = port
    url = stack.url(GRAPH_FAKE)
    stack.env.update({"ALLOT_FAKE_META_READ_TOKEN": read_token, "ALLOT_FAKE_META_WRITE_TOKEN": write_token})
    stack.service_env.setdefault("ingest", {}).update({
        "ALLOT_INGEST_GRAPH_URL": url, "ALLOT_INGEST_META_APP_SECRET": app_secret,
        "ALLOT_INGEST_SCAN_INTERVAL_S": "1", "ALLOT_INGEST_WINDOW_DAYS": "2"})
    stack.service_env.setdefault("executor", {}).update({"ALLOT_META_BASE_URL": url,
                                                         "ALLOT_META_APP_SECRET": app_secret})
    stack.service_env[GRAPH_FAKE] = {"ALLOT_META_APP_SECRET": app_secret}
    stack.start_service(GRAPH_FAKE, module="allot.fakes.meta", args=("--demo",))
    wait_ready(stack, GRAPH_FAKE)


def sealing_env_for_run() -> dict[str, dict[str, str]]:
    """Fresh token-sealing keypairs for this run: connections gets both public keys, ingest and the executor
    each only their own private key (see allot.runtime.sealing); notify its own key for channel secrets."""
    from allot.runtime.sealing import generate_keypair

    pairs = {r: generate_keypair(f"{r}-run-{secrets.token_hex(3)}") for r in ("ingest", "executor")}
    public = ",".join(f"{r}={p.key_id}:{p.public_key}" for r, p in pairs.items())
    notify = generate_keypair(f"notify-run-{secrets.token_hex(3)}")
    return {
        "connections": {"ALLOT_SEALING_PUBLIC_KEYS": public},
        **{r: {"ALLOT_SEALING_PRIVATE_KEYS": f"{p.key_id}:{p.private_key}"} for r, p in pairs.items()},
        "notify": {"ALLOT_SEALING_PRIVATE_KEYS": f"{notify.key_id}:{notify.private_key}"},
    }


def configured_api_keys(text: str) -> list[dict[str, str]]:
    """The hashed entries of an exported ALLOT_API_KEYS (validated: a malformed list stops the run, named)."""
    if not text.strip():
        return []
    try:
        return [e.model_dump() for e in ApiKeyStore.entries_from_json(text)]
    except (ValueError, ValidationError) as exc:
        raise SystemExit(
            f"ALLOT_API_KEYS is not a JSON list of {{key_id, sha256, workspace_id, role}}: {exc}") from None


def approval_secret_for_run(environ: Mapping[str, str]) -> tuple[str, bool]:
    """(secret, generated): an exported ALLOT_APPROVAL_SECRET, else a random one for this run only."""
    exported = environ.get("ALLOT_APPROVAL_SECRET")
    if exported:
        return exported, False
    return secrets.token_hex(32), True


def wait_ready(stack: RunningStack, name: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    proc = stack.processes[name]
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {stack.root / 'logs' / (name + '.log')}")
        with contextlib.suppress(httpx.HTTPError):  # not listening yet
            if httpx.get(stack.url(name) + "/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{name} not ready after {timeout_s}s; see {stack.root / 'logs' / (name + '.log')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="allot-stack", description=__doc__)
    parser.add_argument("command", choices=["run"], nargs="?", default="run")
    parser.add_argument("--root", default=".allot", help="where data and logs go")
    parser.add_argument("--speed", type=float, default=float(os.environ.get("ALLOT_DEMO_SPEED", "3600")),
                        help="simulated seconds per real second (3600 = one simulated hour per second)")
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--seconds", type=float, default=0, help="stop by itself after this many seconds (smoke runs)")
    args = parser.parse_args(argv)

    stopping = False

    def _stop(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    platform = os.environ.get("ALLOT_DEMO_PLATFORM", "sandbox")
    print(f"Allot: starting the embedded stack (demo platform: {platform}; ALLOT_DEMO_PLATFORM=meta runs it on the "
          "Meta adapter path against the Graph fake)")
    stack = start_stack(Path(args.root), clock_speed=args.speed, platform=platform)
    try:
        if "console" in stack.ports:
            print(f"\nConsole (web app): {stack.url('console')}  (sign in with the admin API key below)")
        print("\nAll started. HTTP APIs (OpenAPI docs at /docs):")
        for name in stack.processes:
            print(f"  {name:<10} {stack.url(name)}")
        print(f"\nDemo workspace 'demo', admin API key: {stack.admin_key}")
        configured = configured_api_keys(os.environ.get("ALLOT_API_KEYS", ""))
        if configured:
            print(f"  the {len(configured)} key(s) of the exported ALLOT_API_KEYS are accepted too: "
                  + ", ".join(f"{k['key_id']} ({k['workspace_id']}, {k['role']})" for k in configured))
        print("  e.g. curl -H 'Authorization: Bearer <key>' " + (stack.url("pools") + "/api/v1/budget-pools"
              if "pools" in stack.ports else "http://127.0.0.1:PORT/..."))
        print("Stop with Ctrl-C (or SIGTERM); everything started here is stopped by pid.\n")
        if not args.no_demo and module_exists("allot.sandbox.demo"):
            if args.seconds:
                os.environ["ALLOT_DEMO_SECONDS"] = str(args.seconds)
            if platform == "meta":
                from allot.fakes.meta.demo import run_meta_demo

                asyncio.run(run_meta_demo(stack))
            else:
                from allot.sandbox.demo import run_demo

                asyncio.run(run_demo(stack))
            if args.seconds:
                return 0
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while deadline is None or time.monotonic() < deadline:
            for name, proc in stack.processes.items():
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; stopping (see {stack.root}/logs/{name}.log)")
                    return 1
            time.sleep(1)
        return 0
    except KeyboardInterrupt:
        print("\nStopping...")
        return 0
    finally:
        stack.stop()
        print("Stopped.")


if __name__ == "__main__":
    sys.exit(main())
