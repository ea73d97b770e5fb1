"""Platform tokens sealed to one recipient service (libsodium sealed boxes via PyNaCl).

Why sealed boxes: the connections service stores and publishes tokens but holds only PUBLIC keys, so it can never
read a token back; ingest holds the ingest private key (read token), the executor the executor private key (write
token). Each service opens only the token meant for it.

Keys have ids. A service's keyring holds its current private key and, during a rotation, previous ones; it opens
a token by the token's ``key_id``. Configuration (env / Kubernetes Secret, through the one settings loader):

  ALLOT_SEALING_PUBLIC_KEYS="ingest=kid:base64pub,executor=kid:base64pub"   (connections: whom to seal to)
  ALLOT_SEALING_PRIVATE_KEYS="kid2:base64priv,kid1:base64priv"               (ingest / executor: first = current)

Rotation: ``allot keys generate`` a new pair for the recipient; add its private key FIRST in the recipient's
ALLOT_SEALING_PRIVATE_KEYS (keep the old one after it) and restart it; point the connections service's public key
at the new pair; re-seal stored tokens (``PATCH`` each connection with its tokens); when no token sealed to the old key
id remains, drop the old private key.

The sealed box also binds the recipient name: the plaintext is ``<recipient>\\n<token>``, so a token sealed to the
executor's key under the label ``ingest`` (a mix-up) is refused, not silently used.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from allot.contracts.payloads import SealedToken

Recipient = Literal["ingest", "executor"]
RECIPIENTS: tuple[Recipient, ...] = ("ingest", "executor")
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class SealingError(ValueError):
    """A key or a sealed token is unusable; the message says why and never contains key or token material."""


def _b64decode(text: str, *, what: str) -> bytes:
    t = text.strip()
    try:
        raw = base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))
    except (binascii.Error, ValueError):
        raise SealingError(f"{what} is not base64") from None
    return raw


def b64decode(text: str, *, what: str) -> bytes:
    """URL-safe base64 with or without padding; SealingError naming ``what`` when it is not base64."""
    return _b64decode(text, what=what)


def parse_private_keys(text: str) -> list[tuple[str, bytes]]:
    """``"kid2:base64priv,kid1:base64priv"`` → [(key id, raw key)] in order (first = current)."""
    keys: list[tuple[str, bytes]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key_id, sep, b64 = item.partition(":")
        if not sep:
            raise SealingError("private key entry: expected 'kid:base64key'")
        keys.append((key_id.strip(), _b64decode(b64, what=f"private key {key_id.strip()[:64]!r}")))
    return keys


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _check_key_id(key_id: str) -> str:
    if not _KEY_ID.match(key_id):
        raise SealingError(f"key id {key_id[:64]!r} must be 1-64 characters of letters, digits, '.', '_', '-'")
    return key_id


@dataclass(frozen=True)
class GeneratedKeypair:
    """A fresh keypair, base64 (URL-safe, unpadded) for configuration."""

    key_id: str
    public_key: str
    private_key: str

    def __repr__(self) -> str:  # never print the private key by accident
        return f"GeneratedKeypair(key_id={self.key_id!r}, public_key={self.public_key!r}, private_key=<hidden>)"


def generate_keypair(key_id: str) -> GeneratedKeypair:
    """A new Curve25519 keypair with the given id (randomness from libsodium)."""
    sk = PrivateKey.generate()
    return GeneratedKeypair(_check_key_id(key_id), _b64encode(bytes(sk.public_key)), _b64encode(bytes(sk)))


@dataclass(frozen=True)
class RecipientKey:
    """The public key a token for ``recipient`` is sealed to."""

    recipient: Recipient
    key_id: str
    public_key: bytes


def parse_public_keys(text: str) -> dict[Recipient, RecipientKey]:
    """Parse ``"ingest=kid:base64pub,executor=kid:base64pub"`` (the connections service's setting)."""
    keys: dict[Recipient, RecipientKey] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        recipient, sep, rest = item.partition("=")
        recipient = recipient.strip()
        if not sep or recipient not in RECIPIENTS:
            raise SealingError(f"public key entry for {recipient[:32]!r}: expected 'ingest=kid:key' or "
                               "'executor=kid:key'")
        key_id, sep, b64 = rest.partition(":")
        if not sep:
            raise SealingError(f"public key for {recipient}: expected 'kid:base64key'")
        raw = _b64decode(b64, what=f"public key for {recipient}")
        if len(raw) != PublicKey.SIZE:
            raise SealingError(f"public key for {recipient} must be {PublicKey.SIZE} bytes, got {len(raw)}")
        if recipient in keys:
            raise SealingError(f"public key for {recipient} given twice")
        keys[recipient] = RecipientKey(recipient, _check_key_id(key_id.strip()), raw)
    return keys


def seal(token: str, key: RecipientKey) -> SealedToken:
    """Seal ``token`` so that only the holder of ``key``'s private key (the recipient service) can open it."""
    box = SealedBox(PublicKey(key.public_key))
    ciphertext = box.encrypt(f"{key.recipient}\n{token}".encode())
    return SealedToken(recipient=key.recipient, key_id=key.key_id, ciphertext=_b64encode(ciphertext))


class Keyring:
    """One service's private keys by id (first = current); opens tokens sealed to that service."""

    def __init__(self, recipient: Recipient, keys: Iterable[tuple[str, bytes]]) -> None:
        self.recipient: Recipient = recipient
        self._keys: dict[str, PrivateKey] = {}
        for key_id, raw in keys:
            _check_key_id(key_id)
            if len(raw) != PrivateKey.SIZE:
                raise SealingError(f"private key {key_id!r} must be {PrivateKey.SIZE} bytes, got {len(raw)}")
            if key_id in self._keys:
                raise SealingError(f"private key id {key_id!r} given twice")
            self._keys[key_id] = PrivateKey(raw)

    @classmethod
    def parse(cls, recipient: Recipient, text: str) -> Keyring:
        """Parse ``"kid2:base64priv,kid1:base64priv"`` (first = current)."""
        return cls(recipient, parse_private_keys(text))

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __repr__(self) -> str:
        return f"Keyring(recipient={self.recipient!r}, key_ids={self.key_ids!r})"

    def public_key(self, key_id: str | None = None) -> RecipientKey:
        """The public half of a key (default: the current one), e.g. for development wiring and tests."""
        if not self._keys:
            raise SealingError(f"the {self.recipient} keyring is empty")
        kid = key_id or next(iter(self._keys))
        if kid not in self._keys:
            raise SealingError(f"the {self.recipient} keyring has no key {kid!r}")
        return RecipientKey(self.recipient, kid, bytes(self._keys[kid].public_key))

    def open(self, sealed: SealedToken) -> str:
        """The token in ``sealed``; SealingError naming the reason (wrong recipient, unknown key id, tampered)."""
        if sealed.recipient != self.recipient:
            raise SealingError(f"token is sealed to {sealed.recipient}, this keyring belongs to {self.recipient}")
        key = self._keys.get(sealed.key_id)
        if key is None:
            raise SealingError(f"token is sealed to key {sealed.key_id!r}, which the {self.recipient} keyring does "
                               f"not hold (it holds {', '.join(self._keys) or 'none'}); add that private key or "
                               "re-seal the token")
        try:
            plain = SealedBox(key).decrypt(_b64decode(sealed.ciphertext, what="sealed token"))
        except CryptoError:
            raise SealingError(f"token sealed to key {sealed.key_id!r} does not open with it (wrong key or "
                               "altered ciphertext)") from None
        label, sep, token = plain.decode("utf-8", errors="strict").partition("\n")
        if not sep or label != self.recipient:
            raise SealingError(f"token was sealed for {label[:16]!r}, not for {self.recipient}")
        return token


def keyring_from_mapping(recipient: Recipient, keys: Mapping[str, str]) -> Keyring:
    """A keyring from ``{key_id: base64 private key}`` (insertion order: first = current)."""
    return Keyring(recipient, [(k, _b64decode(v, what=f"private key {k!r}")) for k, v in keys.items()])

