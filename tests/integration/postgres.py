"""A throwaway PostgreSQL cluster for tests: Debian's server binaries, a temp dir, a free port.

``initdb`` and ``pg_ctl`` refuse to run as root, so under root they run as the ``postgres`` user
(``runuser``), which is given the temp dir. The cluster trusts local connections, listens on
127.0.0.1 only, runs with fsync off (a test cluster loses nothing worth keeping) and is stopped
and deleted afterwards. Each test gets a fresh database cloned from a migrated template.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresServer", "find_pg_bin", "running_postgres"]

_PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")


def find_pg_bin() -> Path | None:
    """The directory holding initdb and pg_ctl, or None. ``ANJIA_PG_BIN`` overrides the search
    (point it at another version's ``bin``, or at nothing to run without PostgreSQL)."""
    env = os.environ.get("ANJIA_PG_BIN")
    candidates = [env] if env is not None else [*_PG_BIN_CANDIDATES]
    base = Path("/usr/lib/postgresql")
    if env is None and base.is_dir():
        candidates += [str(p / "bin") for p in sorted(base.iterdir(), reverse=True)]
    for candidate in candidates:
        path = Path(candidate)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"


@contextlib.contextmanager
def running_postgres(bin_dir: Path) -> Iterator[PostgresServer]:
    root = Path(tempfile.mkdtemp(prefix="anjia-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(root, account.pw_uid, account.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, env=env, timeout=120)

    started = False
    try:
        run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start")
        started = True
        yield PostgresServer("127.0.0.1", port, "postgres")
    except subprocess.CalledProcessError as exc:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(
            f"PostgreSQL test cluster failed: {exc.cmd[-1]}: {exc.stderr!r}\n{tail}"
        ) from exc
    finally:
        if started:
            with contextlib.suppress(subprocess.SubprocessError):
                run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
