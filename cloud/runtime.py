"""The long-lived objects of one cloud process, built from the settings at start.

Owned by the app's lifespan (or a CLI command) and disposed with it: the database engine and
session factory, the cipher and blind index for personal identifiers, the password hasher, the
token service and the clock. Nothing is created at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cloud.auth import TokenService
from cloud.crypto import BlindIndex, PiiCipher
from cloud.db.engine import make_engine, make_session_factory
from cloud.passwords import UserPasswords
from cloud.settings import CloudSettings

__all__ = ["Clock", "Runtime", "system_clock"]

_LOGGER = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: CloudSettings
    engine: Engine
    session_factory: sessionmaker[Session]
    cipher: PiiCipher
    blind_index: BlindIndex
    passwords: UserPasswords
    tokens: TokenService
    clock: Clock

    @classmethod
    def build(cls, settings: CloudSettings, clock: Clock | None = None) -> Runtime:
        clock = clock or system_clock
        if settings.crypto.uses_dev_keys:
            _LOGGER.warning(
                "using the public development encryption keys: never store real data like this"
            )
        engine = make_engine(settings.db)
        return cls(
            settings=settings,
            engine=engine,
            session_factory=make_session_factory(engine),
            cipher=PiiCipher(settings.crypto.keyring(), settings.crypto.current_key_id),
            blind_index=BlindIndex(settings.crypto.blind_key()),
            passwords=UserPasswords(settings.auth),
            tokens=TokenService(settings.auth, clock),
            clock=clock,
        )

    def close(self) -> None:
        self.engine.dispose()
