"""Sealed platform tokens: only the recipient's keyring opens them; rotation by key id; clear errors."""

from __future__ import annotations

import pytest

from allot.contracts.payloads import SealedToken
from allot.runtime.cli import main as cli_main
from allot.runtime.sealing import (
    Keyring,
    SealingError,
    generate_keypair,
    parse_public_keys,
    seal,
)
from allot.runtime.settings import Settings

TOKEN = "EAAB" + "x" * 180


def _ring(recipient: str, *pairs) -> Keyring:  # type: ignore[no-untyped-def]
    return Keyring.parse(recipient, ",".join(f"{p.key_id}:{p.private_key}" for p in pairs))  # type: ignore[arg-type]


def _public(recipient: str, pair) -> object:  # type: ignore[no-untyped-def]
    return parse_public_keys(f"{recipient}={pair.key_id}:{pair.public_key}")[recipient]  # type: ignore[index]


def test_round_trip_through_the_public_key_only() -> None:
    pair = generate_keypair("ex-1")
    sealed = seal(TOKEN, _public("executor", pair))  # type: ignore[arg-type]
    assert sealed.recipient == "executor" and sealed.key_id == "ex-1"
    assert TOKEN not in sealed.ciphertext and TOKEN not in sealed.model_dump_json()
    assert _ring("executor", pair).open(sealed) == TOKEN


def test_sealing_twice_gives_different_ciphertexts() -> None:
    key = _public("ingest", generate_keypair("in-1"))
    assert seal(TOKEN, key).ciphertext != seal(TOKEN, key).ciphertext  # type: ignore[arg-type]


def test_the_other_services_keyring_cannot_open_it() -> None:
    ingest, executor = generate_keypair("same-id"), generate_keypair("same-id")
    sealed = seal(TOKEN, _public("executor", executor))  # type: ignore[arg-type]
    with pytest.raises(SealingError, match="sealed to executor"):
        _ring("ingest", ingest).open(sealed)
    # same key id, wrong private key (e.g. the ingest key configured in the executor by mistake)
    with pytest.raises(SealingError, match="does not open"):
        _ring("executor", ingest).open(sealed)


def test_a_relabelled_token_is_refused() -> None:
    """A token sealed for ingest, then relabelled 'executor' with the executor's key id, does not pass."""
    pair = generate_keypair("k")
    sealed_for_ingest = seal(TOKEN, _public("ingest", pair))  # type: ignore[arg-type]
    relabelled = SealedToken(recipient="executor", key_id="k", ciphertext=sealed_for_ingest.ciphertext)
    with pytest.raises(SealingError, match="not for executor"):
        _ring("executor", pair).open(relabelled)


def test_unknown_key_id_names_the_key_and_what_the_ring_holds() -> None:
    sealed = seal(TOKEN, _public("executor", generate_keypair("old")))  # type: ignore[arg-type]
    with pytest.raises(SealingError, match="'old'.*holds new"):
        _ring("executor", generate_keypair("new")).open(sealed)


def test_altered_ciphertext_is_refused() -> None:
    pair = generate_keypair("k")
    sealed = seal(TOKEN, _public("executor", pair))  # type: ignore[arg-type]
    flipped = ("A" if sealed.ciphertext[10] != "A" else "B")
    altered = sealed.model_copy(update={"ciphertext": sealed.ciphertext[:10] + flipped + sealed.ciphertext[11:]})
    with pytest.raises(SealingError, match="does not open"):
        _ring("executor", pair).open(altered)


def test_rotation_keyring_opens_tokens_of_both_keys_and_reports_the_current() -> None:
    old, new = generate_keypair("exec-2025"), generate_keypair("exec-2026")
    ring = _ring("executor", new, old)
    assert ring.key_ids == ["exec-2026", "exec-2025"]
    assert ring.public_key().key_id == "exec-2026", "first key is the current one"
    assert ring.open(seal("old-token", _public("executor", old))) == "old-token"  # type: ignore[arg-type]
    assert ring.open(seal("new-token", ring.public_key())) == "new-token"
    # after the rotation window the old key is dropped: its tokens must be re-sealed
    with pytest.raises(SealingError, match="exec-2025"):
        _ring("executor", new).open(seal("old-token", _public("executor", old)))  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "match"), [
    ("kid", "expected 'kid:base64key'"),
    ("kid:!!!notbase64!!!", "not base64"),
    ("kid:AAAA", "must be 32 bytes"),
    ("bad id:" + "A" * 43, "key id"),
])
def test_malformed_private_keys_are_refused_without_echoing_them(text: str, match: str) -> None:
    with pytest.raises(SealingError, match=match) as err:
        Keyring.parse("executor", text)
    assert "A" * 20 not in str(err.value)


def test_duplicate_private_key_id_is_refused() -> None:
    pair = generate_keypair("k")
    with pytest.raises(SealingError, match="twice"):
        _ring("executor", pair, pair)


@pytest.mark.parametrize(("text", "match"), [
    ("reader=k:AAAA", "expected 'ingest=kid:key'"),
    ("ingest=AAAA", "expected 'kid:base64key'"),
    ("ingest=k:AAAA", "must be 32 bytes"),
])
def test_malformed_public_keys_are_refused(text: str, match: str) -> None:
    with pytest.raises(SealingError, match=match):
        parse_public_keys(text)


def test_public_key_setting_holds_both_recipients() -> None:
    a, b = generate_keypair("in-1"), generate_keypair("ex-1")
    keys = parse_public_keys(f" ingest={a.key_id}:{a.public_key} , executor={b.key_id}:{b.public_key}")
    assert {r: k.key_id for r, k in keys.items()} == {"ingest": "in-1", "executor": "ex-1"}


def test_settings_build_the_keyring_and_keep_the_keys_secret() -> None:
    pair = generate_keypair("ex-1")
    settings = Settings(sealing_private_keys=f"ex-1:{pair.private_key}")  # type: ignore[arg-type]
    assert settings.sealing_keyring("executor").key_ids == ["ex-1"]
    assert pair.private_key not in repr(settings) and pair.private_key not in repr(pair)
    assert not Settings().sealing_keyring("executor"), "unset = empty keyring"


def test_cli_generates_a_matching_pair(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["keys", "generate", "--recipient", "executor", "--key-id", "ex-9"]) == 0
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines() if not line.startswith("#"))
    ring = Keyring.parse("executor", lines["ALLOT_SEALING_PRIVATE_KEYS"])
    public = parse_public_keys(lines["ALLOT_SEALING_PUBLIC_KEYS"])["executor"]
    assert ring.open(seal(TOKEN, public)) == TOKEN


def test_make_run_gives_each_service_only_its_own_key() -> None:
    from allot.runtime.stack import sealing_env_for_run

    env = sealing_env_for_run()
    assert set(env) == {"connections", "ingest", "executor", "notify"}
    assert set(env["connections"]) == {"ALLOT_SEALING_PUBLIC_KEYS"}, "connections holds no private key"
    public = parse_public_keys(env["connections"]["ALLOT_SEALING_PUBLIC_KEYS"])
    for recipient in ("ingest", "executor"):
        ring = Keyring.parse(recipient, env[recipient]["ALLOT_SEALING_PRIVATE_KEYS"])  # type: ignore[arg-type]
        assert ring.open(seal(TOKEN, public[recipient])) == TOKEN  # type: ignore[index]
    other = Keyring.parse("ingest", env["ingest"]["ALLOT_SEALING_PRIVATE_KEYS"])
    with pytest.raises(SealingError):
        other.open(seal(TOKEN, public["executor"]))
    # the notifier's key is its own (it seals channel secrets): not one of the token recipients' keys
    notify = env["notify"]["ALLOT_SEALING_PRIVATE_KEYS"]
    assert notify.split(":", 1)[1] not in {env[r]["ALLOT_SEALING_PRIVATE_KEYS"].split(":", 1)[1]
                                           for r in ("ingest", "executor")}
    assert notify.split(":", 1)[0] not in env["connections"]["ALLOT_SEALING_PUBLIC_KEYS"]
    assert sealing_env_for_run() != env, "fresh keys every run"
