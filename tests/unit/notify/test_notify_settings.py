"""The notifier refuses to start without its sealing key; loopback receivers only in development."""

from __future__ import annotations

import pytest

from allot.notify.adapters.sealing import SecretBox
from allot.notify.settings import NotifySettings, SealingNotConfigured
from allot.runtime.sealing import SealingError, generate_keypair


def _key(kid: str = "n-1") -> str:
    pair = generate_keypair(kid)
    return f"{kid}:{pair.private_key}"


def test_refuses_to_start_without_or_with_a_malformed_key() -> None:
    with pytest.raises(SealingNotConfigured, match="ALLOT_SEALING_PRIVATE_KEYS is empty"):
        NotifySettings(sealing_private_keys="")
    with pytest.raises(SealingNotConfigured, match="expected 'kid:base64key'"):
        NotifySettings(sealing_private_keys="nokeyid")


def test_loopback_is_allowed_only_in_development_and_only_when_asked() -> None:
    key = _key()
    assert NotifySettings(sealing_private_keys=key, env="development", notify_allow_loopback=True).loopback_allowed
    assert not NotifySettings(sealing_private_keys=key, env="production", notify_allow_loopback=True).loopback_allowed
    assert not NotifySettings(sealing_private_keys=key, env="development").loopback_allowed


def test_secrets_open_with_the_key_they_were_sealed_to_during_a_rotation() -> None:
    old, new = _key("old"), _key("new")
    sealed = SecretBox.parse(old).seal("https://hooks.slack.com/services/T/B/secret")
    assert sealed.key_id == "old" and "secret" not in sealed.ciphertext
    rotated = SecretBox.parse(f"{new},{old}")
    assert rotated.open(sealed) == "https://hooks.slack.com/services/T/B/secret"
    assert rotated.seal("x").key_id == "new", "the first key is the current one"
    with pytest.raises(SealingError, match="does not hold"):
        SecretBox.parse(new).open(sealed)
    tampered = type(sealed)(key_id="old", ciphertext=sealed.ciphertext[:-4] + "AAAA")
    with pytest.raises(SealingError, match="does not open"):
        SecretBox.parse(old).open(tampered)
