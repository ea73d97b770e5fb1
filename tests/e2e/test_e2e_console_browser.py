"""The console in real Chromium (Debian's /usr/bin/chromium driven by Playwright; no browser download) against the
running stack (sandbox, guardrails, executor, pools and the console as processes on the real broker and Postgres).

One stack and one browser for the module. Each test signs in with its own key, and saves a screenshot of its final
page in its pytest output folder (tmp_path)."""

from __future__ import annotations

import asyncio
import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from allot.contracts import new_envelope
from allot.contracts.payloads import MetricsIngested
from allot.runtime.auth import generate_key
from allot.runtime.stack import RunningStack, start_stack
from tests.e2e.conftest import SANDBOX_TOKEN, SECRET
from tests.support.kafka import eventually, publish

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@dataclass
class Console:
    stack: RunningStack
    url: str
    keys: dict[str, str]  # name -> raw key ("a-admin", "a-viewer", "b-admin", "c-admin")
    ws: dict[str, str]  # "a" / "b" / "c" -> workspace id
    accounts: dict[str, str]  # workspace letter -> its sandbox ad account

    def api(self, service: str, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.stack.url(service), timeout=30,
                            headers={"Authorization": f"Bearer {self.keys[key]}"})


def _report(ws: str, account: str, entity_id: str, name: str, day: date, *, revenue: int) -> Any:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    payload = MetricsIngested(platform="sandbox", ad_account_id=account, entity_type="adset", entity_id=entity_id,
                              entity_name=name, currency="EUR", daily_budget_cents=5_000, interval_start=start,
                              interval_end=start + timedelta(days=1), reported_at=start + timedelta(days=1, hours=1),
                              spend_cents=5_000, impressions=50_000, clicks=900, conversions=10,
                              revenue_cents=revenue, reach=20_000)
    return new_envelope(event_type="metrics.ingested", schema_version=1, payload=payload, producer="e2e",
                        workspace_id=ws, occurred_at=payload.reported_at)


def _seed(stack: RunningStack, ws: str, account: str, names: list[str]) -> None:
    """Three ad sets on the sandbox at 50 EUR/day with five days of reports, projected by pools."""
    ids = [f"{account}-{i}" for i in range(len(names))]
    with httpx.Client(base_url=stack.url("sandbox"), timeout=20,
                      headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}) as sb:
        for eid in ids:
            r = sb.post("/sandbox/entities", json={"id": eid, "ad_account_id": account, "entity_type": "adset",
                                                   "currency": "EUR", "daily_budget_cents": 5_000, "status": "paused"})
            assert r.status_code in (200, 201), r.text
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=d) for d in range(5, 0, -1)]
    asyncio.run(publish(stack.bootstrap, *(_report(ws, account, eid, name, d, revenue=15_000 + 1_000 * i)
                                           for i, (eid, name) in enumerate(zip(ids, names, strict=True))
                                           for d in days)))

    async def projected() -> bool:
        conn = await asyncpg.connect(stack.database_url)
        try:
            n = await conn.fetchval("SELECT count(*) FROM pools.member_metrics WHERE workspace_id = $1", ws)
            known = await conn.fetchval("SELECT count(*) FROM pools.entities WHERE workspace_id = $1", ws)
        finally:
            await conn.close()
        return n == 5 * len(ids) and known == len(ids)

    asyncio.run(eventually(projected, timeout=40, what="reports projected by pools"))


@pytest.fixture(scope="module")
def console(kafka_bootstrap: str, database_url: str) -> Iterator[Console]:
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: `make test` installs Debian's chromium package")
    prefix = uuid.uuid4().hex[:6]
    ws = {letter: f"console-{prefix}-{letter}" for letter in "abc"}
    keys, entries = {}, []
    for name, (letter, role) in {"a-admin": ("a", "admin"), "a-viewer": ("a", "viewer"), "b-admin": ("b", "admin"),
                                 "c-admin": ("c", "admin")}.items():
        raw, entry = generate_key(ws[letter], role)  # type: ignore[arg-type]
        keys[name] = raw
        entries.append(entry.model_dump())
    env = {"ALLOT_APPROVAL_SECRET": SECRET, "ALLOT_SANDBOX_TOKEN": SANDBOX_TOKEN,
           "ALLOT_KAFKA_SESSION_TIMEOUT_MS": "4000", "ALLOT_KAFKA_HEARTBEAT_INTERVAL_MS": "800",
           "ALLOT_POOLS_MANUAL_RATE_LIMIT_S": "2", "ALLOT_MAX_ATTEMPTS": "1"}
    stack = start_stack(Path(tempfile.mkdtemp(prefix="allot-console-e2e-")),
                        services=["sandbox", "guardrails", "executor", "pools", "console"], bootstrap=kafka_bootstrap,
                        database_url=database_url, api_keys=entries, extra_env=env, quiet=True, random_ports=True)
    try:
        accounts = {letter: f"act-{prefix}-{letter}" for letter in "ab"}
        _seed(stack, ws["a"], accounts["a"], ["Berlin prospecting", "Munich retargeting", "Hamburg lookalikes"])
        _seed(stack, ws["b"], accounts["b"], ["Paris broad", "Lyon interests", "Nice retargeting"])
        yield Console(stack, stack.url("console"), keys, ws, accounts)
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser(console: Console) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        pg.screenshot(path=str(tmp_path / "final-page.png"), full_page=True)
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def sign_in(page: Any, console: Console, key: str) -> None:
    page.goto(console.url + "/")
    expect(page).to_have_url(re.compile(r"/sign-in"))
    page.get_by_label("API key").fill(console.keys[key])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    # htmx (installed at set-up, served by the console itself: no CDN) boosts links and forms
    assert page.evaluate("typeof htmx") == "object"
    assert httpx.get(console.url + "/static/htmx.min.js").text.startswith("var htmx")


def test_sign_in_create_a_pool_simulate_allocate_and_undo_in_activity(page: Any, console: Console,
                                                                     tmp_path: Path) -> None:
    page.goto(console.url + "/sign-in")
    page.get_by_label("API key").fill("allot_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("API key: not a valid key")
    sign_in(page, console, "a-admin")
    cookie = next(c for c in page.context.cookies() if c["name"] == "allot_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    expect(page.get_by_test_id("workspace")).to_have_text(console.ws["a"])

    page.get_by_role("navigation").get_by_role("link", name="Budget pools").click()
    expect(page.get_by_role("heading", name="Budget pools")).to_be_visible()
    page.get_by_test_id("new-pool").click()
    page.get_by_label("Name").fill("Germany always-on")
    page.get_by_label("Daily budget").fill("lots")
    for name in ("Berlin prospecting", "Munich retargeting", "Hamburg lookalikes"):
        page.get_by_label(name).check()
    page.get_by_role("button", name="Create pool").click()
    expect(page.locator("#daily_budget-error")).to_contain_text("Daily budget")
    expect(page.get_by_label("Berlin prospecting")).to_be_checked()  # the form keeps what was entered
    page.get_by_label("Daily budget").fill("180")
    page.get_by_label("Floor per member (optional)").fill("400")  # floors over the budget: the API refuses
    page.get_by_role("button", name="Create pool").click()
    expect(page.locator("#daily_budget-error")).to_contain_text("Daily budget: active members' floors")
    expect(page.locator("#daily_budget-error")).to_contain_text("€1,200.00")  # money, not cents
    page.get_by_label("Floor per member (optional)").fill("")
    page.get_by_role("button", name="Create pool").click()

    expect(page.get_by_role("heading", name="Germany always-on")).to_be_visible()
    members = page.get_by_test_id("members")
    expect(members).to_contain_text("Munich retargeting")
    expect(members).to_contain_text("€50.00")
    expect(page.get_by_text("€180.00 a day")).to_be_visible()

    page.get_by_test_id("simulate").click()
    sim = page.get_by_test_id("simulation")
    expect(sim).to_be_visible()
    expect(sim.get_by_test_id("moves")).to_contain_text("Approved")
    expect(sim).to_contain_text("Hamburg lookalikes")
    page.screenshot(path=str(tmp_path / "pool-detail.png"), full_page=True)  # the README's picture

    page.get_by_test_id("allocate").click()
    expect(page.get_by_role("status")).to_contain_text("Allocated", timeout=30_000)
    expect(page.get_by_test_id("allocation").first).to_contain_text("executed")

    page.get_by_role("navigation").get_by_role("link", name="Activity").click()
    table = page.get_by_test_id("change-sets")
    expect(table).to_contain_text("Pool Germany always-on")
    expect(table).to_contain_text("Berlin prospecting")
    expect(table).to_contain_text("€50.00")
    expect(table).to_contain_text("Applied")
    page.get_by_test_id("undo").first.click()
    expect(page.get_by_role("heading", name="Undo a change set")).to_be_visible()
    page.get_by_role("button", name="Undo the change set").click()
    expect(page.get_by_role("status")).to_contain_text("Undo requested")
    expect(page.get_by_test_id("change-sets")).to_contain_text("undo requested")
    for _ in range(60):  # the inverse change set goes through the guardrails and the executor: reload until shown
        if page.get_by_test_id("change-sets").get_by_role("cell", name="Undo", exact=True).count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(page.get_by_test_id("change-sets").get_by_role("cell", name="Undo", exact=True)).to_be_visible()


def test_the_kill_switch_flips_with_a_confirmation_and_blocks_an_allocation(page: Any, console: Console) -> None:
    with console.api("pools", "b-admin") as api:
        r = api.post("/api/v1/budget-pools", json={
            "name": "France", "dailyBudgetCents": 18_000, "currency": "EUR", "autonomy": "live",
            "members": [{"entityType": "adset", "entityId": f"{console.accounts['b']}-{i}",
                         "adAccountId": console.accounts["b"]} for i in range(3)]})
        assert r.status_code == 201, r.text
        pool_id = r.json()["id"]
    sign_in(page, console, "b-admin")
    page.get_by_role("navigation").get_by_role("link", name="Limits & autonomy").click()
    expect(page.get_by_test_id("kill-switch-state")).to_contain_text("off")
    page.get_by_test_id("kill-switch").click()
    expect(page.get_by_role("alertdialog")).to_contain_text("Stop every budget change")
    page.get_by_role("button", name="Turn the kill switch on").click()
    expect(page.get_by_test_id("kill-switch-state")).to_contain_text("ON")
    with console.api("guardrails", "b-admin") as g:
        assert g.get("/api/v1/guardrails/limits").json()["limits"]["kill_switch"] is True

    page.goto(f"{console.url}/automation/budget-pools/{pool_id}")
    page.get_by_test_id("allocate").click()
    expect(page.get_by_role("alert").first).to_contain_text("Blocked by the guardrails", timeout=30_000)
    page.get_by_role("navigation").get_by_role("link", name="Activity").click()
    expect(page.get_by_test_id("blocked")).to_contain_text("kill switch")


def test_a_viewer_sees_no_buttons_that_change_things(page: Any, console: Console) -> None:
    sign_in(page, console, "a-viewer")
    expect(page.get_by_test_id("role")).to_have_text("viewer")
    page.get_by_role("navigation").get_by_role("link", name="Budget pools").click()
    expect(page.get_by_role("link", name="Germany always-on")).to_be_visible()
    expect(page.get_by_test_id("new-pool")).to_have_count(0)
    page.get_by_role("link", name="Germany always-on").click()
    expect(page.get_by_test_id("members")).to_contain_text("Berlin prospecting")
    expect(page.get_by_test_id("simulate")).to_have_count(0)
    expect(page.get_by_test_id("allocate")).to_have_count(0)
    expect(page.get_by_role("button", name="Add member")).to_have_count(0)
    page.get_by_role("navigation").get_by_role("link", name="Limits & autonomy").click()
    expect(page.get_by_test_id("kill-switch-state")).to_be_visible()
    expect(page.get_by_test_id("kill-switch")).to_have_count(0)
    page.get_by_role("navigation").get_by_role("link", name="Activity").click()
    expect(page.get_by_test_id("change-sets")).to_contain_text("Berlin prospecting")
    expect(page.get_by_test_id("undo")).to_have_count(0)
    page.goto(console.url + "/automation/budget-pools/new")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()


def test_a_second_workspace_sees_none_of_the_first_ones_data(page: Any, console: Console) -> None:
    with console.api("pools", "a-admin") as api:
        pool_id = next(p["id"] for p in api.get("/api/v1/budget-pools").json()["pools"]
                       if p["name"] == "Germany always-on")
    sign_in(page, console, "c-admin")
    page.get_by_role("navigation").get_by_role("link", name="Budget pools").click()
    expect(page.get_by_text("No budget pools yet.")).to_be_visible()
    page.goto(f"{console.url}/automation/budget-pools/{pool_id}")
    expect(page.get_by_role("heading", name="Budget pool not found")).to_be_visible()
    page.get_by_role("link", name="Back to the overview").click()
    page.get_by_role("navigation").get_by_role("link", name="Activity").click()
    expect(page.get_by_text("Nothing changed yet.")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("Berlin")
    page.goto(console.url + "/automation/budget-pools/new")
    expect(page.locator("body")).not_to_contain_text("Berlin prospecting")
    expect(page.get_by_text("Nothing reported yet.")).to_be_visible()
    # This stack runs no rules service: the page names it, and the rest of the console keeps working.
    page.get_by_role("navigation").get_by_role("link", name="Rules").click()
    expect(page.get_by_test_id("service-down")).to_contain_text("Rules service is unavailable")
    page.get_by_role("navigation").get_by_role("link", name="Limits & autonomy").click()
    expect(page.get_by_test_id("kill-switch-state")).to_contain_text("off")
    expect(page.get_by_test_id("service-down")).to_have_count(0)
