"""Channel secrets sealed at rest with the notifier's own key (libsodium sealed boxes, as connections seals tokens).

The notifier both seals (with its public key) and opens (with its private key). Configuration, through the one
settings loader: ``ALLOT_SEALING_PRIVATE_KEYS="kid2:base64priv,kid1:base64priv"`` (first = current; keep the old key
after it during a rotation: a secret names the key id it was sealed to). The plaintext carries the label ``notify``
so that a box sealed for another service is refused, not used.
"""

from __future__ import annotations

import base64

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

from allot.notify.domain.model import SealedSecret
from allot.runtime.sealing import SealingError, b64decode, parse_private_keys

LABEL = "notify"


class SecretBox:
    """The notifier's private keys by id (first = current); seals with the current one, opens by key id."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        self._keys: dict[str, PrivateKey] = {}
        for key_id, raw in keys:
            if not key_id or len(key_id) > 64:
                raise SealingError("private key id must be 1-64 characters")
            if len(raw) != PrivateKey.SIZE:
                raise SealingError(f"private key {key_id!r} must be {PrivateKey.SIZE} bytes, got {len(raw)}")
            if key_id in self._keys:
                raise SealingError(f"private key id {key_id!r} given twice")
            self._keys[key_id] = PrivateKey(raw)

    @classmethod
    def parse(cls, text: str) -> SecretBox:
        return cls(parse_private_keys(text))

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __repr__(self) -> str:
        return f"SecretBox(key_ids={self.key_ids!r})"

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def seal(self, plaintext: str) -> SealedSecret:
        key_id, key = next(iter(self._keys.items()))
        ciphertext = SealedBox(key.public_key).encrypt(f"{LABEL}\n{plaintext}".encode())
        return SealedSecret(key_id=key_id, ciphertext=base64.urlsafe_b64encode(ciphertext).decode().rstrip("="))

    def open(self, sealed: SealedSecret) -> str:
        key = self._keys.get(sealed.key_id)
        if key is None:
            raise SealingError(f"secret is sealed to key {sealed.key_id!r}, which the notifier does not hold (it "
                               f"holds {', '.join(self._keys) or 'none'})")
        try:
            plain = SealedBox(key).decrypt(b64decode(sealed.ciphertext, what="sealed secret"))
        except CryptoError:
            raise SealingError(f"secret sealed to key {sealed.key_id!r} does not open with it") from None
        label, sep, text = plain.decode("utf-8", errors="strict").partition("\n")
        if not sep or label != LABEL:
            raise SealingError(f"secret was sealed for {label[:16]!r}, not for the notifier")
        return text
