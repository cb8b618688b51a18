"""Password hashing: argon2id for people, Mosquitto-compatible PBKDF2 for gateways.

* User passwords: argon2id (RFC 9106) via argon2-cffi, parameters from :class:`AuthSettings`.
  :meth:`UserPasswords.verify` spends the same work on an unknown user as on a known one, so a
  login does not reveal which usernames exist by its timing.
* Gateway MQTT passwords are 256-bit random strings shown once at enrollment. They are stored in
  Mosquitto's ``$7$`` format (PBKDF2-HMAC-SHA512, ``$7$<iterations>$<base64 salt>$<base64 hash>``,
  as written by ``mosquitto_passwd``), so the broker's password file is generated straight from the
  database without ever knowing the password again; the same hash logs a gateway into the API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cloud.settings import AuthSettings

__all__ = [
    "UserPasswords",
    "generate_gateway_password",
    "mosquitto_hash",
    "verify_mosquitto_hash",
]

_MOSQUITTO_SALT_BYTES: Final = 12
_MOSQUITTO_PREFIX: Final = "$7$"


class UserPasswords:
    """argon2id hashing of user passwords."""

    __slots__ = ("_dummy", "_hasher")

    def __init__(self, cfg: AuthSettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=cfg.argon2_time_cost,
            memory_cost=cfg.argon2_memory_kib,
            parallelism=cfg.argon2_parallelism,
        )
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True if ``password`` matches; with ``stored=None`` do the same work and answer False."""
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)


def generate_gateway_password() -> str:
    """A fresh gateway password: 256 bits, URL-safe (no ':' so it fits a password file)."""
    return secrets.token_urlsafe(32)


def mosquitto_hash(password: str, iterations: int, salt: bytes | None = None) -> str:
    """Mosquitto ``$7$`` PBKDF2-HMAC-SHA512 hash of ``password``."""
    salt = os.urandom(_MOSQUITTO_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return (
        f"{_MOSQUITTO_PREFIX}{iterations}$"
        f"{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    )


def verify_mosquitto_hash(stored: str, password: str) -> bool:
    if not stored.startswith(_MOSQUITTO_PREFIX):
        return False
    try:
        iterations_s, salt_b64, digest_b64 = stored[len(_MOSQUITTO_PREFIX) :].split("$")
        iterations = int(iterations_s)
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(digest_b64, validate=True)
    except (ValueError, binascii.Error):
        return False
    if not 0 < iterations <= 10_000_000:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(digest, expected)
