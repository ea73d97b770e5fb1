"""Connection input rules: account ids normalised, tokens plausibly tokens, errors name the field, never the token."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from allot.connections.domain import (
    Connection,
    ConnectionProblem,
    changed_payload,
    normalise_ad_account_ids,
    token_hint,
    validate_api_version,
    validate_token,
    validate_token_pair,
)
from allot.contracts.payloads import SealedToken

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
TOKEN = "EAAGm0PX4ZCpsBA" + "Zx9" * 30


def test_act_prefix_is_dropped_and_duplicates_collapse_in_order() -> None:
    assert normalise_ad_account_ids("meta", ["act_123", " 456 ", "123", "ACT_789"]) == ["123", "456", "789"]


@pytest.mark.parametrize(("platform", "ids", "field"), [
    ("google", ["123"], "platform"),
    ("sandbox", ["123"], "platform"),
    ("meta", [], "ad_account_ids"),
    ("meta", ["123", "act_"], "ad_account_ids.1"),
    ("meta", ["act_12x"], "ad_account_ids.0"),
    ("meta", ["12 34"], "ad_account_ids.0"),
])
def test_bad_accounts_name_the_field(platform: str, ids: list[str], field: str) -> None:
    with pytest.raises(ConnectionProblem) as err:
        normalise_ad_account_ids(platform, ids)
    assert err.value.field == field and err.value.status == 422


def test_too_many_accounts_are_refused() -> None:
    with pytest.raises(ConnectionProblem, match="at most 200"):
        normalise_ad_account_ids("meta", [str(i) for i in range(1, 202)])


@pytest.mark.parametrize("token", [
    "", "short", "EAAB with spaces " + "x" * 30, "EAAB\n" + "x" * 30, "Bearer_" + "x" * 30,
    "x" * 4097, "EAABé" + "x" * 30,
])
def test_malformed_tokens_are_refused_without_echoing_them(token: str) -> None:
    with pytest.raises(ConnectionProblem) as err:
        validate_token("write_token", token)
    assert err.value.field == "write_token"
    assert "x" * 10 not in str(err.value), "the message never carries the token"


def test_a_plausible_token_passes_and_shows_only_its_last_four() -> None:
    assert validate_token("read_token", TOKEN) == TOKEN
    assert token_hint(TOKEN) == "9Zx9"


def test_one_token_cannot_serve_as_read_and_write_token() -> None:
    with pytest.raises(ConnectionProblem) as err:
        validate_token_pair(TOKEN, TOKEN)
    assert err.value.field == "read_token"
    validate_token_pair(TOKEN, TOKEN + "2")


@pytest.mark.parametrize(("version", "ok"), [("v23.0", True), (None, True), ("23.0", False), ("v23", False),
                                              ("latest", False)])
def test_graph_api_version(version: str | None, ok: bool) -> None:
    if ok:
        assert validate_api_version(version) == version
    else:
        with pytest.raises(ConnectionProblem) as err:
            validate_api_version(version)
        assert err.value.field == "graph_api_version"


def _connection(state: str) -> Connection:
    sealed = SealedToken(recipient="executor", key_id="ex-1", ciphertext="c2VhbGVk")
    read = SealedToken(recipient="ingest", key_id="in-1", ciphertext="c2VhbGVk")
    return Connection(connection_id="conn_1", workspace_id="ws", platform="meta", ad_account_ids=["1", "2"],
                      state=state, read_token=read, write_token=sealed, read_token_hint="abcd",  # type: ignore[arg-type]
                      write_token_hint="wxyz", graph_api_version=None, version=1, created_at=NOW, updated_at=NOW)


def test_view_shows_presence_hint_and_key_id_never_ciphertext() -> None:
    view = _connection("active").view()
    assert view["read_token_set"] is True and view["write_token_last4"] == "wxyz"
    assert view["write_token_key_id"] == "ex-1"
    assert "c2VhbGVk" not in repr(view)


def test_removed_connection_publishes_no_tokens() -> None:
    active = changed_payload(_connection("active"), now=NOW)
    assert active.write_token is not None and active.read_token is not None
    removed = changed_payload(_connection("removed"), now=NOW)
    assert removed.state == "removed" and removed.read_token is None and removed.write_token is None
    assert removed.ad_account_ids == ["1", "2"]
