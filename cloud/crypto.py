"""Encryption of personal identifiers at rest, and the blind index to find a person by ID number.

Ciphertext layout (one self-describing blob per field)::

    0x01 | len(key_id) (1 byte) | key_id (ASCII) | nonce (12 bytes) | AES-256-GCM ciphertext + tag

* AES-256-GCM (NIST SP 800-38D) from ``cryptography``, a fresh random 96-bit nonce per value.
* The *context* (table, column and row id, e.g. ``persons.name:<uuid>``) is the associated data, so
  a ciphertext copied into another row or column does not decrypt: it fails loudly.
* Keys are versioned: the blob names its key, the keyring keeps old keys for reading, and
  :meth:`PiiCipher.reencrypt` moves a value to the current key (key rotation, see docs/cloud.md).

The blind index is HMAC-SHA256 over ``"<id type>:<normalised number>"`` with a separate key: equal
numbers give equal indexes, so a unique index and an equality lookup work, while the number itself
is never stored in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cloud.errors import CryptoError
from cloud.identifiers import IdType, normalise_id_number

__all__ = ["FORMAT_VERSION", "BlindIndex", "PiiCipher"]

FORMAT_VERSION: Final = 1
_NONCE_BYTES: Final = 12
_KEY_BYTES: Final = 32


class PiiCipher:
    """Encrypts and decrypts personal identifiers with a versioned keyring."""

    __slots__ = ("_aeads", "_current")

    def __init__(self, keyring: Mapping[str, bytes], current_key_id: str) -> None:
        if current_key_id not in keyring:
            raise CryptoError("current key is not in the keyring", current_key_id)
        aeads: dict[str, AESGCM] = {}
        for key_id, key in keyring.items():
            if len(key) != _KEY_BYTES:
                raise CryptoError("keys must be 32 bytes (AES-256)", key_id)
            if not key_id.isascii() or not 0 < len(key_id) < 256:
                raise CryptoError("key ids are 1 to 255 ASCII characters", key_id)
            aeads[key_id] = AESGCM(key)
        self._aeads = aeads
        self._current = current_key_id

    @property
    def current_key_id(self) -> str:
        return self._current

    def encrypt(self, plaintext: str, context: str) -> bytes:
        key_id = self._current
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aeads[key_id].encrypt(nonce, plaintext.encode("utf-8"), context.encode())
        header = bytes((FORMAT_VERSION, len(key_id))) + key_id.encode("ascii")
        return header + nonce + sealed

    def decrypt(self, blob: bytes, context: str) -> str:
        key_id, nonce, sealed = self._split(blob)
        aead = self._aeads.get(key_id)
        if aead is None:
            raise CryptoError("ciphertext names a key that is not in the keyring", key_id)
        try:
            plain = aead.decrypt(nonce, sealed, context.encode())
        except InvalidTag as exc:
            raise CryptoError(
                "ciphertext failed authentication (tampered or moved)", key_id
            ) from exc
        return plain.decode("utf-8")

    def key_id_of(self, blob: bytes) -> str:
        return self._split(blob)[0]

    def needs_rotation(self, blob: bytes) -> bool:
        return self.key_id_of(blob) != self._current

    def reencrypt(self, blob: bytes, context: str) -> bytes:
        """The same plaintext under the current key (unchanged blob if already current)."""
        if not self.needs_rotation(blob):
            return blob
        return self.encrypt(self.decrypt(blob, context), context)

    @staticmethod
    def _split(blob: bytes) -> tuple[str, bytes, bytes]:
        if len(blob) < 2 or blob[0] != FORMAT_VERSION:
            raise CryptoError("not a ciphertext of a known format")
        id_len = blob[1]
        start = 2 + id_len
        if len(blob) < start + _NONCE_BYTES + 16:
            raise CryptoError("ciphertext is truncated")
        try:
            key_id = blob[2:start].decode("ascii")
        except UnicodeDecodeError as exc:
            raise CryptoError("ciphertext key id is not ASCII") from exc
        nonce = blob[start : start + _NONCE_BYTES]
        return key_id, nonce, blob[start + _NONCE_BYTES :]


class BlindIndex:
    """HMAC-SHA256 blind index of identity document numbers (hex, 64 characters)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < _KEY_BYTES:
            raise CryptoError("the blind-index key must be at least 32 bytes")
        self._key = key

    def of(self, id_type: IdType, id_number: str) -> str:
        """Index of a raw number; raises ValueError if the number is invalid for its type."""
        normalised = normalise_id_number(id_type, id_number)
        message = f"{id_type.value}:{normalised}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
