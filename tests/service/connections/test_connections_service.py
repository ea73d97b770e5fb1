"""The connections service on the real broker and Postgres: tokens sealed to the right service, never shown,
connections scoped to their workspace, changes published on connection.changed."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from allot.connections.service import SPEC, SealingNotConfigured
from allot.contracts import decode
from allot.runtime.sealing import Keyring, SealingError, generate_keypair
from tests.support.kafka import read_topic
from tests.support.service import api_keys, auth, running_service

BASE = "/api/v1/connections"
READ = "EAAIngestReadOnly" + "r" * 60 + "R3AD"
WRITE = "EAAExecutorWrites" + "w" * 60 + "WR1T"


@pytest.fixture
def keyrings() -> tuple[Keyring, Keyring, str]:
    ingest, executor = generate_keypair("in-1"), generate_keypair("ex-1")
    public = f"ingest=in-1:{ingest.public_key},executor=ex-1:{executor.public_key}"
    return (Keyring.parse("ingest", f"in-1:{ingest.private_key}"),
            Keyring.parse("executor", f"ex-1:{executor.private_key}"), public)


async def changes(settings: Any, connection_id: str, count: int) -> list[Any]:
    records = await read_topic(settings.kafka_bootstrap, "connection.changed", min_count=count,
                               predicate=lambda r: r.key == connection_id.encode())
    return [decode("connection.changed", r.value) for r in records]


async def test_connect_publish_sealed_list_without_tokens_and_remove(
    settings: Any, unique: str, keyrings: tuple[Keyring, Keyring, str]
) -> None:
    ingest_ring, executor_ring, public = keyrings
    ws = f"ws-{unique}"
    (admin,), keys = api_keys((ws, "admin"))
    async with running_service(SPEC, settings, api_keys=keys, sealing_public_keys=public) as (http, ctx):
        r = await http.post(BASE, headers=auth(admin), json={
            "platform": "meta", "ad_account_ids": ["act_1001", "1002"], "read_token": READ, "write_token": WRITE,
            "graph_api_version": "v23.0"})
        assert r.status_code == 201, r.text
        created = r.json()
        cid = created["connection_id"]
        assert created["ad_account_ids"] == ["1001", "1002"]
        assert created["read_token_set"] and created["write_token_set"]
        assert (created["read_token_last4"], created["write_token_last4"]) == ("R3AD", "WR1T")
        assert (created["read_token_key_id"], created["write_token_key_id"]) == ("in-1", "ex-1")

        (event,) = await changes(settings, cid, 1)
        assert event.workspace_id == ws and event.payload.state == "active"
        assert event.payload.ad_account_ids == ["1001", "1002"]
        assert event.payload.graph_api_version == "v23.0"
        raw = event.model_dump_json()
        assert READ not in raw and WRITE not in raw, "tokens never travel in the clear"
        # each service opens only its own token
        assert ingest_ring.open(event.payload.read_token) == READ
        assert executor_ring.open(event.payload.write_token) == WRITE
        with pytest.raises(SealingError):
            executor_ring.open(event.payload.read_token)
        with pytest.raises(SealingError):
            ingest_ring.open(event.payload.write_token)

        # at rest: sealed only
        async with ctx.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM connections WHERE connection_id = $1", cid)
        stored = orjson.dumps(dict(row), default=str).decode()
        assert READ not in stored and WRITE not in stored

        listed = (await http.get(BASE, headers=auth(admin))).json()["connections"]
        assert [c["connection_id"] for c in listed] == [cid]
        one = (await http.get(f"{BASE}/{cid}", headers=auth(admin))).json()
        for body in (listed[0], one, created):
            text = orjson.dumps(body).decode()
            assert READ[:-4] not in text and WRITE[:-4] not in text and "ciphertext" not in text

        # PATCH the accounts only: the stored sealed tokens are re-published as they are
        r = await http.patch(f"{BASE}/{cid}", headers=auth(admin), json={"ad_account_ids": ["1001"]})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 2
        # PATCH a new write token: sealed to the executor, hint updated
        new_write = WRITE[:-4] + "N3W!"
        r = await http.patch(f"{BASE}/{cid}", headers=auth(admin), json={"write_token": new_write})
        assert r.status_code == 200 and r.json()["write_token_last4"] == "N3W!"

        r = await http.delete(f"{BASE}/{cid}", headers=auth(admin))
        assert r.status_code == 200 and r.json()["state"] == "removed"
        events = await changes(settings, cid, 4)
        assert [e.payload.state for e in events] == ["active", "active", "active", "removed"]
        assert events[1].payload.ad_account_ids == ["1001"]
        assert events[1].payload.write_token == event.payload.write_token
        assert executor_ring.open(events[2].payload.write_token) == new_write
        assert events[3].payload.read_token is None and events[3].payload.write_token is None
        assert len({e.event_id for e in events}) == 4

        assert (await http.get(BASE, headers=auth(admin))).json()["connections"] == []
        assert (await http.delete(f"{BASE}/{cid}", headers=auth(admin))).status_code == 404
        # a removed connection gives its accounts back
        r = await http.post(BASE, headers=auth(admin), json={
            "platform": "meta", "ad_account_ids": ["1001"], "read_token": READ, "write_token": WRITE})
        assert r.status_code == 201, r.text


async def test_workspaces_never_see_or_take_each_others_connections(
    settings: Any, unique: str, keyrings: tuple[Keyring, Keyring, str]
) -> None:
    _, _, public = keyrings
    (mine, theirs, viewer), keys = api_keys((f"a-{unique}", "admin"), (f"b-{unique}", "admin"),
                                            (f"a-{unique}", "viewer"))
    body = {"platform": "meta", "ad_account_ids": ["2001"], "read_token": READ, "write_token": WRITE}
    async with running_service(SPEC, settings, api_keys=keys, sealing_public_keys=public) as (http, _):
        r = await http.post(BASE, headers=auth(mine), json=body)
        assert r.status_code == 201
        cid = r.json()["connection_id"]
        assert (await http.get(BASE, headers=auth(viewer))).status_code == 403

        for method in ("GET", "PATCH", "DELETE"):
            r = await http.request(method, f"{BASE}/{cid}", headers=auth(theirs),
                                   json={"ad_account_ids": ["2002"]} if method == "PATCH" else None)
            assert r.status_code == 404, (method, r.text)
        assert (await http.get(BASE, headers=auth(theirs))).json()["connections"] == []

        r = await http.post(BASE, headers=auth(theirs), json={**body, "ad_account_ids": ["act_2001"]})
        assert r.status_code == 409 and r.json()["field"] == "ad_account_ids.0"
        assert f"a-{unique}" not in r.text and cid not in r.text, "the other workspace stays unnamed"
        # in the same workspace the holder is named
        r = await http.post(BASE, headers=auth(mine), json={**body, "ad_account_ids": ["2003", "2001"]})
        assert r.status_code == 409 and r.json()["field"] == "ad_account_ids.1" and cid in r.text
        # the original is untouched
        one = (await http.get(f"{BASE}/{cid}", headers=auth(mine))).json()
        assert one["ad_account_ids"] == ["2001"] and one["state"] == "active"


@pytest.mark.parametrize(("change", "field"), [
    ({"platform": "tiktok"}, "platform"),
    ({"ad_account_ids": []}, "ad_account_ids"),
    ({"ad_account_ids": ["act_12a"]}, "ad_account_ids.0"),
    ({"write_token": "too-short"}, "write_token"),
    ({"read_token": "EAA has spaces in it, pasted with a label"}, "read_token"),
    ({"write_token": READ}, "read_token"),
    ({"graph_api_version": "23"}, "graph_api_version"),
    ({"read_token": 12345}, "read_token"),
    ({"extra": 1}, "extra"),
])
async def test_bad_input_is_a_4xx_naming_the_field(
    settings: Any, unique: str, keyrings: tuple[Keyring, Keyring, str], change: dict[str, Any], field: str
) -> None:
    _, _, public = keyrings
    (admin,), keys = api_keys((f"ws-{unique}", "admin"))
    body = {"platform": "meta", "ad_account_ids": ["3001"], "read_token": READ, "write_token": WRITE, **change}
    async with running_service(SPEC, settings, api_keys=keys, sealing_public_keys=public) as (http, _):
        r = await http.post(BASE, headers=auth(admin), json=body)
    assert r.status_code == 422, r.text
    fields = {e["field"] for e in r.json().get("errors", [])} | {r.json().get("field")}
    assert field in fields, r.text
    assert READ not in r.text and WRITE not in r.text


async def test_refuses_to_start_without_both_public_keys(settings: Any) -> None:
    only_ingest = f"ingest=in-1:{generate_keypair('in-1').public_key}"
    with pytest.raises(SealingNotConfigured, match="no key for executor"):
        async with running_service(SPEC, settings, sealing_public_keys=only_ingest):
            pass
