"""The console in real Chromium (Debian's /usr/bin/chromium driven by Playwright; no browser download) against the
running stack (sandbox, guardrails, executor, pools, rules, pacing and the console as processes on the real broker and
Postgres).

One stack and one browser for the module. Each test signs in with its own key, and saves a screenshot of its final
page in its pytest output folder (tmp_path)."""

from __future__ import annotations

import asyncio
import re
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
from allot.runtime.embedded import free_port
from allot.runtime.stack import RunningStack, start_stack, wait_ready
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
                        services=["sandbox", "guardrails", "executor", "pools", "rules", "pacing", "console"],
                        bootstrap=kafka_bootstrap, database_url=database_url, api_keys=entries, extra_env=env,
                        quiet=True, random_ports=True)
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


def in_thread(coro: Any) -> Any:
    """Run a coroutine to completion from a test that has a page (Playwright's sync API owns this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def sign_in(page: Any, console: Console, key: str, url: str | None = None) -> None:
    url = url or console.url
    page.goto(url + "/")
    expect(page).to_have_url(re.compile(r"/sign-in"))
    page.get_by_label("API key").fill(console.keys[key])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    # htmx (installed at set-up, served by the console itself: no CDN) boosts links and forms
    assert page.evaluate("typeof htmx") == "object"
    assert httpx.get(url + "/static/htmx.min.js").text.startswith("var htmx")


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
    page.screenshot(path=str(tmp_path / "pool-simulation.png"), full_page=True)

    page.get_by_test_id("allocate").click()
    expect(page.get_by_role("status")).to_contain_text("Allocated", timeout=30_000)
    expect(page.get_by_test_id("allocation").first).to_contain_text("executed")
    # after the first allocation: the members' shares over time and spend against return, with their tables
    expect(page.get_by_test_id("share-chart")).to_be_visible()
    expect(page.get_by_test_id("share-table")).to_contain_text("Berlin prospecting")
    expect(page.get_by_test_id("share-table")).to_contain_text("now (reported)")
    expect(page.get_by_test_id("returns-chart")).to_be_visible()
    expect(page.get_by_test_id("returns-table")).to_contain_text("Munich retargeting")
    page.get_by_test_id("simulate").click()
    expect(page.get_by_test_id("simulation")).to_be_visible()  # right after the allocation: nothing left to move
    expect(page.get_by_test_id("share-chart")).to_be_visible()
    page.screenshot(path=str(tmp_path / "pool-detail.png"), full_page=True)  # the README's picture

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


def test_an_admin_sets_the_daily_cap_in_eur_and_a_refusal_names_its_field(page: Any, console: Console,
                                                                          tmp_path: Path) -> None:
    sign_in(page, console, "b-admin")
    page.get_by_role("navigation").get_by_role("link", name="Limits & autonomy").click()
    caps = page.get_by_test_id("caps-form")
    caps.get_by_label("Daily cap (EUR)").fill("lots")
    caps.get_by_role("button", name="Save caps and limits").click()
    expect(page.locator("#daily_cap-error")).to_contain_text("Daily cap: “lots” is not an amount in EUR")
    page.get_by_label("Daily cap (EUR)").fill("500.00")
    page.get_by_label("Largest single change (%)").fill("5000")  # the guardrails refuse it, naming the field
    page.get_by_role("button", name="Save caps and limits").click()
    expect(page.locator("#max_change_pct-error")).to_contain_text("Largest single change:")
    expect(page.get_by_label("Daily cap (EUR)")).to_have_value("500.00")  # the form keeps what was typed
    page.get_by_label("Largest single change (%)").fill("25")
    page.get_by_role("button", name="Save caps and limits").click()
    expect(page.get_by_role("status")).to_contain_text("Saved: Daily cap, Largest single change")
    expect(page.get_by_test_id("caps")).to_contain_text("€500.00")
    with console.api("guardrails", "b-admin") as g:
        limits = g.get("/api/v1/guardrails/limits").json()["limits"]
    assert limits["daily_cap_eur_cents"] == 50_000 and limits["max_change_pct"] == "25"
    page.get_by_label("Rules", exact=True).select_option("observe")
    page.get_by_role("button", name="Save autonomy").click()
    expect(page.get_by_role("status")).to_contain_text("Saved: Autonomy")
    page.screenshot(path=str(tmp_path / "limits.png"), full_page=True)
    page.get_by_role("navigation").get_by_role("link", name="Activity").click()
    expect(page.get_by_test_id("audit")).to_contain_text("Daily cap: no cap → €500.00")
    expect(page.get_by_test_id("audit")).to_contain_text("Autonomy rule: live → observe")
    page.get_by_role("navigation").get_by_role("link", name="Overview").click()
    expect(page.get_by_test_id("card-spend")).to_contain_text("daily cap")
    expect(page.get_by_test_id("card-kill-switch")).to_contain_text("ON")  # the previous test's switch


def test_a_rule_s_page_shows_its_execution_after_it_fires(page: Any, console: Console, tmp_path: Path) -> None:
    definition = {"name": "Winners to watch", "scope": {"ad_account_ids": [console.accounts["a"]],
                                                         "entity_level": "adset"},
                  "conditions": [{"metric": "roas", "operator": "gt", "value": 3.1, "time_range": "last_7d"}],
                  "actions": [{"type": "notify_only"}], "schedule": {"interval_minutes": 60}}
    with console.api("rules", "a-admin") as api:
        async def created() -> Any:
            r = api.post("/api/v1/rules", json=definition)
            return r if r.status_code == 201 else None

        rule_id = in_thread(eventually(created, timeout=40, what="the account known to rules")).json()["id"]

        async def projected() -> bool:  # ROAS 3.0, 3.2 and 3.4 over the five days: two of three match
            r = api.post("/api/v1/rules/preview", json={"rule_id": rule_id})
            return r.status_code == 200 and (r.json()["entities_evaluated"], r.json()["matched_count"]) == (3, 2)

        in_thread(eventually(projected, timeout=40, what="rules projected the five days of reports"))
    sign_in(page, console, "a-admin")
    page.get_by_role("navigation").get_by_role("link", name="Rules").click()
    page.get_by_role("link", name="Winners to watch").click()
    expect(page.get_by_role("heading", name="Winners to watch")).to_be_visible()
    expect(page.get_by_test_id("rule-definition")).to_contain_text(
        "Return on ad spend (ROAS) over the last 7 days is above 3.1")
    expect(page.get_by_test_id("rule-definition")).to_contain_text("Only notify")
    expect(page.get_by_test_id("rule-status")).to_contain_text("paused")
    page.get_by_role("button", name="Activate rule").click()
    expect(page.get_by_role("status")).to_contain_text("Rule “Winners to watch” is active.")
    expect(page.get_by_test_id("rule-status")).to_contain_text("active")
    page.get_by_role("button", name="Evaluate now").click()  # the schedule may get there first: same execution
    expect(page).to_have_url(re.compile(f"/rules/{rule_id}/executions$"))
    execution = page.get_by_test_id("execution").first
    expect(execution).to_contain_text("3 evaluated, 2 matched, 0 acted on, 1 skipped")
    expect(execution).to_contain_text("Notified (nothing changed)")
    matched = execution.get_by_test_id("matched")
    expect(matched).to_contain_text("Munich retargeting")
    expect(matched).to_contain_text("Hamburg lookalikes")
    expect(matched).to_contain_text("Return on ad spend (ROAS) over the last 7 days: 3.4")
    expect(execution.get_by_test_id("skipped")).to_contain_text("Berlin prospecting")
    expect(execution.get_by_test_id("skipped")).to_contain_text("conditions not met")
    page.screenshot(path=str(tmp_path / "rule-detail.png"), full_page=True)


def test_build_a_rule_in_the_wizard_preview_it_and_create_and_activate_it(page: Any, console: Console,
                                                                         tmp_path: Path) -> None:
    account = console.accounts["a"]
    probe = {"definition": {"name": "probe", "scope": {"ad_account_ids": [account], "entity_level": "adset"},
                            "conditions": [{"metric": "roas", "operator": "gt", "value": 0, "time_range": "last_7d"}],
                            "actions": [{"type": "notify_only"}]}}
    with console.api("rules", "a-admin") as api:
        async def known() -> bool:  # the account and its five days of reports, as the rules service sees them
            r = api.post("/api/v1/rules/preview", json=probe)
            return r.status_code == 200 and r.json()["entities_evaluated"] == 3

        in_thread(eventually(known, timeout=40, what="rules projected the five days of reports"))
    sign_in(page, console, "a-admin")
    page.get_by_role("navigation").get_by_role("link", name="Rules").click()
    page.get_by_test_id("new-rule").click()
    page.get_by_label("A blank rule").check()
    page.get_by_role("button", name="Start").click()
    # 1. scope: a bad step first (no account), shown next to the field
    page.get_by_label("Rule name").fill("Wizard scale winners")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#account-error")).to_contain_text("Ad accounts: pick at least one ad account")
    page.get_by_label(account).check()
    page.get_by_label("Ad sets", exact=True).check()
    page.get_by_role("button", name="Next").click()
    # 2. conditions: ROAS above 3.1 AND spend above 20.00 (two rows), OR a second group that never holds
    page.get_by_label("Group 1, condition 1: metric", exact=True).select_option("roas")
    page.get_by_label("Group 1, condition 1: value", exact=True).fill("3.1")
    page.get_by_label("Group 1, condition 1: time range", exact=True).select_option("last_7d")
    page.get_by_role("button", name="Save and add a row").click()
    page.get_by_label("Group 1, condition 2: metric", exact=True).select_option("spend")
    page.get_by_label("Group 1, condition 2: value", exact=True).fill("twenty")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#g0_r1_value-error")).to_contain_text("“twenty” is not an amount in EUR")
    page.get_by_label("Group 1, condition 2: value", exact=True).fill("20")
    page.get_by_role("button", name="Add a group").click()
    page.get_by_label("Group 2, condition 1: metric", exact=True).select_option("ctr")
    page.get_by_label("Group 2, condition 1: value", exact=True).fill("50")
    page.get_by_label("Combine the groups").select_option("or")
    page.get_by_role("button", name="Next").click()
    # 3. actions, 4. schedule, 5. protections (defaults kept)
    page.get_by_label("Raise the daily budget by a percentage").check()
    page.locator("#increase_budget_pct_pct").fill("10")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Every (minutes)").fill("60")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_label("Cooldown (minutes)")).to_have_value("360")
    page.get_by_role("button", name="Review").click()
    review = page.get_by_test_id("rule-review")
    expect(review).to_contain_text("Any of these (OR)")
    expect(review).to_contain_text("Return on ad spend (ROAS) over the last 7 days is above 3.1")
    expect(review).to_contain_text("Spend over the last 7 days is above €20.00")
    expect(review).to_contain_text("Raise its daily budget by 10")
    page.get_by_role("button", name="Preview").click()
    preview = page.get_by_test_id("preview")
    expect(preview.get_by_test_id("preview-counts")).to_contain_text("3 evaluated, 2 matched, 1 skipped")
    matched = preview.get_by_test_id("preview-matched")
    expect(matched).to_contain_text("Munich retargeting")
    expect(matched).to_contain_text("Hamburg lookalikes")
    expect(matched).to_contain_text(re.compile(r"approved|trimmed|dropped|blocked"))
    expect(preview.get_by_test_id("preview-skipped")).to_contain_text("Berlin prospecting")
    expect(preview.get_by_test_id("preview-skipped")).to_contain_text("conditions not met")
    expect(preview.get_by_test_id("preview-guardrails")).to_be_visible()
    expect(preview.get_by_test_id("preview-warning").first).to_contain_text("budget pool")  # Germany always-on
    page.screenshot(path=str(tmp_path / "rule-wizard-preview.png"), full_page=True)
    page.get_by_role("button", name="Create and activate").click()
    expect(page.get_by_role("heading", name="Wizard scale winners")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/rules/[0-9a-f-]{36}$"))
    expect(page.get_by_text("Rule “Wizard scale winners” created and active.")).to_be_visible()
    expect(page.get_by_test_id("rule-status")).to_contain_text("active")
    expect(page.locator(".flash.warn").first).to_contain_text("budget pool")
    expect(page.get_by_test_id("rule-definition")).to_contain_text("Any of these (OR)")
    page.screenshot(path=str(tmp_path / "rule-wizard-created.png"), full_page=True)

    # edit it: the same steps with its definition, a refusal of the rules API on its field, then saved with PUT
    page.get_by_test_id("edit-rule").click()
    expect(page.get_by_role("heading", name="Edit rule “Wizard scale winners”")).to_be_visible()
    expect(page.get_by_label("Rule name")).to_have_value("Wizard scale winners")
    expect(page.get_by_label(account)).to_be_checked()
    page.get_by_label("Rule name").fill("Wizard scale winners (edited)")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_label("Group 1, condition 2: value", exact=True)).to_have_value("20.00")
    page.get_by_role("navigation", name="Wizard steps").get_by_role("link", name="5. Protections").click()
    page.get_by_label("Cooldown (minutes)").fill("99999")
    page.get_by_role("button", name="Review").click()
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#cooldown_minutes-error")).to_contain_text("Cooldown (minutes)")
    page.get_by_label("Cooldown (minutes)").fill("720")
    page.get_by_role("button", name="Review").click()
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="Wizard scale winners (edited)")).to_be_visible()
    expect(page.get_by_text("Rule “Wizard scale winners (edited)” saved; it is active.")).to_be_visible()
    expect(page.get_by_test_id("rule-definition")).to_contain_text("Waits 12 hours")
    expect(page.get_by_test_id("rule-definition")).to_contain_text("Spend over the last 7 days is above €20.00")
    page.screenshot(path=str(tmp_path / "rule-edited.png"), full_page=True)


def _pacing_report(ws: str, account: str, entity_id: str, name: str, start: datetime, spend: int) -> Any:
    payload = MetricsIngested(platform="sandbox", ad_account_id=account, entity_type="adset", entity_id=entity_id,
                              entity_name=name, currency="EUR", daily_budget_cents=3_000, interval_start=start,
                              interval_end=start + timedelta(days=1), reported_at=start + timedelta(days=1),
                              spend_cents=spend, impressions=10_000)
    return new_envelope(event_type="metrics.ingested", schema_version=1, payload=payload, producer="e2e",
                        workspace_id=ws, occurred_at=payload.reported_at)


def test_approve_a_pacing_proposal_on_the_plan_page_and_see_the_budgets_move(page: Any, console: Console,
                                                                             tmp_path: Path) -> None:
    ws, account = console.ws["a"], f"{console.accounts['a']}-flight"
    ctv, display = f"{account}-ctv", f"{account}-display"
    with httpx.Client(base_url=console.stack.url("sandbox"), timeout=20,
                      headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}) as sb:
        for eid in (ctv, display):
            r = sb.post("/sandbox/entities", json={"id": eid, "ad_account_id": account, "entity_type": "adset",
                                                   "currency": "EUR", "daily_budget_cents": 3_000, "status": "paused"})
            assert r.status_code in (200, 201), r.text
    # A 10-day flight half gone: CTV spent 1,000 of ~3,000 EUR expected, DISPLAY 3,200 of ~2,000.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=5), today + timedelta(days=5)
    reports = [_pacing_report(ws, account, eid, name, start + timedelta(days=d), spend) for d in range(5)
               for eid, name, spend in ((ctv, "CTV prospecting", 20_000), (display, "Display retargeting", 64_000))]
    in_thread(publish(console.stack.bootstrap, *reports))

    def ent(eid: str) -> dict[str, str]:
        return {"platform": "sandbox", "ad_account_id": account, "entity_type": "adset", "entity_id": eid}

    with console.api("pacing", "a-admin") as api:
        r = api.post("/api/v1/pacing/plans", json={
            "campaign_id": f"cmp-{account}", "name": "Winter flight", "currency": "EUR",
            "total_budget_cents": 1_000_000, "flight_start": start.isoformat(), "flight_end": end.isoformat(),
            "channels": [
                {"name": "CTV", "allocated_budget_cents": 600_000, "entities": [ent(ctv)], "budget_entity": ent(ctv)},
                {"name": "DISPLAY", "allocated_budget_cents": 400_000, "entities": [ent(display)],
                 "budget_entity": ent(display)}],
            "approval_config": {"PACING_ADJUSTMENT": True}})
        assert r.status_code == 201, r.text
        plan_id = r.json()["plan_id"]

        async def projected() -> bool:
            conn = await asyncpg.connect(console.stack.database_url)
            try:
                n = await conn.fetchval("SELECT count(*) FROM pacing.metric_reports WHERE workspace_id = $1 "
                                        "AND entity_id = ANY($2::text[])", ws, [ctv, display])
            finally:
                await conn.close()
            return bool(n == len(reports))

        in_thread(eventually(projected, timeout=40, what="pacing projected the flight's reports"))
        snap = api.post(f"/api/v1/pacing/plans/{plan_id}/snapshots")
        assert snap.status_code == 201, snap.text
        (proposal_id,) = snap.json()["proposal_ids"]

    sign_in(page, console, "a-admin")
    page.get_by_role("navigation").get_by_role("link", name="Pacing").click()
    page.get_by_role("link", name="Winter flight", exact=True).click()
    expect(page.get_by_role("heading", name="Winter flight")).to_be_visible()
    expect(page.get_by_test_id("plan-state")).to_contain_text("pacing")
    expect(page.get_by_test_id("flight-chart")).to_have_count(3)  # the whole flight, CTV and DISPLAY
    expect(page.get_by_test_id("channels")).to_contain_text("CTV prospecting")
    proposal = page.get_by_test_id("proposal")
    expect(proposal).to_contain_text("from CTV to DISPLAY")
    expect(proposal).to_contain_text("Waiting for approval")
    proposal.get_by_test_id("approve").click()
    expect(page.get_by_role("status").first).to_contain_text("Proposal approved")
    expect(page.get_by_test_id("inbox-empty")).to_be_visible()
    moves = page.get_by_test_id("decided-proposals")
    for _ in range(60):  # the executor applies both steps through the guardrails: reload until pacing saw them
        if moves.get_by_text("Applied", exact=True).count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(moves.get_by_text("Applied", exact=True)).to_be_visible()
    expect(moves).to_contain_text("Display retargeting (gets): €30.00 → €36.00 — Applied")
    expect(moves).to_contain_text("CTV prospecting (gives): €30.00 → €24.00 — Applied")
    with httpx.Client(base_url=console.stack.url("sandbox"), timeout=20,
                      headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}) as sb:
        assert {e: sb.get(f"/v1/entities/{e}").json()["daily_budget_cents"] for e in (ctv, display)} == {
            ctv: 2_400, display: 3_600}, "the budgets moved on the platform"
    with console.api("pacing", "a-admin") as api:
        assert api.get(f"/api/v1/pacing/plans/{plan_id}/proposals/{proposal_id}").json()["status"] == "applied"
    page.screenshot(path=str(tmp_path / "pacing-plan.png"), full_page=True)  # the README's picture


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
    page.get_by_role("navigation").get_by_role("link", name="Rules").click()
    expect(page).to_have_url(re.compile(r"/rules$"))  # not Activity, whose rules audit log links the rule too
    expect(page.get_by_test_id("bulk")).to_have_count(0)
    expect(page.locator('input[name="rule_id"]')).to_have_count(0)
    page.get_by_test_id("rules").get_by_role("link", name="Winners to watch").click()
    expect(page.get_by_test_id("rule-definition")).to_be_visible()
    expect(page.get_by_test_id("rule-toggle")).to_have_count(0)
    expect(page.get_by_test_id("edit-rule")).to_have_count(0)
    expect(page.get_by_test_id("evaluate-now")).to_have_count(0)
    page.get_by_role("navigation").get_by_role("link", name="Pacing").click()
    page.get_by_role("link", name="Winter flight", exact=True).click()
    expect(page.get_by_test_id("decided-proposals")).to_contain_text("Applied")
    expect(page.get_by_test_id("approve")).to_have_count(0)
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
    # the overview's cards load several services: wait for it, or a later click can be overtaken by its load
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    page.get_by_role("navigation").get_by_role("link", name="Activity").click()
    expect(page).to_have_url(re.compile(r"/activity$"))
    expect(page.get_by_text("Nothing changed yet.")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("Berlin")
    page.goto(console.url + "/automation/budget-pools/new")
    expect(page.locator("body")).not_to_contain_text("Berlin prospecting")
    expect(page.get_by_text("Nothing reported yet.")).to_be_visible()
    page.get_by_role("navigation").get_by_role("link", name="Pacing").click()
    expect(page.get_by_text("No flight plans yet.")).to_be_visible()
    page.get_by_role("navigation").get_by_role("link", name="Rules").click()
    expect(page.get_by_text("No rules yet.")).to_be_visible()


def test_a_service_that_is_down_is_named_and_the_rest_of_the_console_works(page: Any, console: Console) -> None:
    # A second console of the same stack whose rules service does not answer (nothing listens on its port).
    stack = console.stack
    stack.ports["console-no-rules"] = free_port()
    stack.start_service("console-no-rules", module="allot.console", ALLOT_RULES_URL=f"http://127.0.0.1:{free_port()}")
    wait_ready(stack, "console-no-rules")
    url = stack.url("console-no-rules")
    with console.api("pacing", "a-admin") as api:
        plan_id = next(p["plan_id"] for p in api.get("/api/v1/pacing/plans").json()["plans"]
                       if p["name"] == "Winter flight")
    sign_in(page, console, "a-admin", url)
    page.get_by_role("navigation").get_by_role("link", name="Rules").click()
    expect(page.get_by_test_id("service-down")).to_contain_text("Rules service is unavailable")
    page.goto(f"{url}/rules/{uuid.uuid4()}")
    expect(page.get_by_test_id("service-down")).to_contain_text("Rules service is unavailable")
    page.goto(f"{url}/pacing/plans/{plan_id}")
    expect(page.get_by_role("heading", name="Winter flight")).to_be_visible()
    expect(page.get_by_test_id("service-down")).to_have_count(0)
    page.get_by_role("navigation").get_by_role("link", name="Limits & autonomy").click()
    expect(page.get_by_test_id("kill-switch-state")).to_contain_text("off")
    expect(page.get_by_test_id("service-down")).to_have_count(0)
