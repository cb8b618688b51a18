"""Engine and session factory for SQLite (WAL) and PostgreSQL (psycopg 3).

SQLite gets, on every connection: WAL journal (readers never block the writer), foreign keys on,
a busy timeout, ``synchronous=NORMAL`` (durable at each checkpoint, safe with WAL) and a longer
automatic checkpoint interval (``sqlite_wal_autocheckpoint_pages``: the index pages every ingest
commit rewrites are copied to the database less often). SQL parameters are hidden from exception
messages and logs: they may hold health data. The engine is created by the app's lifespan or the
CLI and disposed by them; nothing here is global.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from cloud.settings import DatabaseSettings

__all__ = ["make_engine", "make_session_factory"]

_LOGGER = logging.getLogger(__name__)


def make_engine(cfg: DatabaseSettings) -> Engine:
    if cfg.is_sqlite:
        engine = create_engine(
            cfg.url,
            echo=cfg.echo,
            hide_parameters=True,
            connect_args={"check_same_thread": False, "timeout": cfg.sqlite_busy_timeout_ms / 1e3},
        )
        _prepare_sqlite_dir(cfg.url)
        busy_ms = cfg.sqlite_busy_timeout_ms
        checkpoint_pages = cfg.sqlite_wal_autocheckpoint_pages

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
                cursor.execute(f"PRAGMA wal_autocheckpoint={int(checkpoint_pages)}")
            finally:
                cursor.close()

        return engine
    return create_engine(
        cfg.url,
        echo=cfg.echo,
        hide_parameters=True,
        pool_size=cfg.pool_size,
        pool_pre_ping=True,
        max_overflow=10,
    )


def _prepare_sqlite_dir(url: str) -> None:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return
    path = url[len(prefix) :].split("?", 1)[0]
    if path and path != ":memory:":
        parent = Path(path).parent
        if not parent.exists():
            _LOGGER.info("creating database directory %s", parent)
            parent.mkdir(parents=True, exist_ok=True)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
