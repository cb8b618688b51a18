"""Fixtures of the cloud tests: a real database (SQLite file, and PostgreSQL marked ``db``),
settings built in code, a fake clock, the app under TestClient, and a provisioned world.

Every test that takes ``db_url`` (directly or through ``client``) runs once on SQLite and once
on PostgreSQL. The PostgreSQL server is a throwaway cluster for the session; each test gets its
own database cloned from a migrated template (``CREATE DATABASE ... TEMPLATE``), and each SQLite
test a copy of a migrated file. Without the server binaries the PostgreSQL cases skip, except
under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from cloud.db.engine import make_engine, make_session_factory
from cloud.db.migrate import upgrade
from cloud.main import create_app
from cloud.settings import AuthSettings, CloudSettings, DatabaseSettings
from tests.integration.cloud.world import World, build_world
from tests.integration.postgres import PostgresServer, find_pg_bin, running_postgres

_TEMPLATE_DB = "anjia_template"
_counter = itertools.count()


class FakeClock:
    """A settable clock: ``clock()`` is now, ``clock.advance(...)`` moves it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 2, 1, 30, tzinfo=UTC))  # 09:30 in Shanghai


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        reason = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the PostgreSQL tests (.ci/system-deps.sh)")
        pytest.skip(reason)
    with running_postgres(bin_dir) as server:
        with psycopg.connect(_dsn(server, "postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {_TEMPLATE_DB}")
        engine = make_engine(DatabaseSettings(url=server.url(_TEMPLATE_DB)))
        upgrade(engine)
        engine.dispose()
        yield server


def _dsn(server: PostgresServer, database: str) -> str:
    return f"host={server.host} port={server.port} user={server.user} dbname={database}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(DatabaseSettings(url=f"sqlite:///{path}"))
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.db)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "anjia.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"anjia_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(_dsn(server, "postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE_DB}")
    yield server.url(name)
    with psycopg.connect(_dsn(server, "postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def make_settings(db_url: str, **overrides: object) -> CloudSettings:
    """Dev-mode settings with cheap argon2 (tests hash many passwords)."""
    return CloudSettings(
        db=DatabaseSettings(url=db_url),
        auth=AuthSettings(argon2_time_cost=1, argon2_memory_kib=64, argon2_parallelism=1),
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
def settings(db_url: str) -> CloudSettings:
    return make_settings(db_url)


@pytest.fixture
def client(settings: CloudSettings, clock: FakeClock) -> Iterator[TestClient]:
    app = create_app(settings, clock=clock)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def session(client: TestClient) -> Iterator[Session]:
    """A session on the app's own database (for assertions on stored rows)."""
    with client.app.state.runtime.session_factory() as db:  # type: ignore[attr-defined]
        yield db


@pytest.fixture
def world(client: TestClient) -> World:
    return build_world(client)


@pytest.fixture
def raw_session(db_url: str) -> Iterator[Session]:
    """A session without the app (repository-level tests)."""
    engine = make_engine(DatabaseSettings(url=db_url))
    factory = make_session_factory(engine)
    with factory() as db:
        yield db
    engine.dispose()
