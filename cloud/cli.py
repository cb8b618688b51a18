"""`anjia cloud ...`: run and administer the cloud service.

* ``anjia cloud ingest [--workers N]``: ingest workers on the shared subscription until SIGTERM
  (settings ``ANJIA_CLOUD__MQTT__*``; the database must be migrated).
* ``anjia cloud tsdb-mirror``: only the time-series mirror (``tsdb_pending`` -> InfluxDB or
  VictoriaMetrics) until SIGTERM, for a deployment that runs it apart from the ingest workers
  (``anjia cloud ingest`` runs it too when ``ANJIA_CLOUD__TSDB__ENABLED=true``).
* ``anjia cloud broker-acl --out DIR``: Mosquitto ``password_file`` and ``acl_file`` for every
  active gateway and the cloud's MQTT login (mode 0600, written atomically); then ``SIGHUP``
  the broker.
* ``anjia cloud serve [--host H] [--port P]``: the API under uvicorn (settings from
  ``ANJIA_CLOUD__*``; migrations run at start unless ``ANJIA_CLOUD__DB__MIGRATE_ON_START=false``).
* ``anjia cloud migrate``: ``alembic upgrade head`` on the configured database.
* ``anjia cloud create-operator USERNAME``: the first operator account. The password is read
  from stdin (``--password-stdin``) or generated and printed once.
* ``anjia cloud rotate-keys``: re-encrypt every person under ``crypto.current_key_id``.

A settings problem prints ``error: ...`` (naming the setting, never its value) and exits 2.
Heavy imports stay inside the command functions.
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["register"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def _with_settings(command: Callable[[argparse.Namespace, Any], int]) -> Callable[..., int]:
    """``command`` with the process's one settings object; broken settings exit 2 with the
    problems named, before the command does anything."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from cloud.errors import ConfigError
        from cloud.main import load_settings

        try:
            settings = load_settings()
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        return command(args, settings)

    return run


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: long-running commands stop cleanly on it."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _cmd_serve(args: argparse.Namespace, settings: Any) -> int:
    import uvicorn

    from cloud.main import create_app

    host = args.host or settings.http.host
    port = args.port or settings.http.port
    # uvicorn's access log prints request paths, and paths hold person ids: off unless asked for
    uvicorn.run(
        create_app(settings), host=host, port=port, log_config=None, access_log=args.access_log
    )
    return EXIT_OK


def _cmd_migrate(args: argparse.Namespace, settings: Any) -> int:
    from cloud.db.engine import make_engine
    from cloud.db.migrate import current_revision, upgrade

    engine = make_engine(settings.db)
    try:
        upgrade(engine, args.revision)
        print(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()
    return EXIT_OK


def _cmd_ingest(args: argparse.Namespace, settings: Any) -> int:
    from cloud.ingest.service import IngestService
    from cloud.runtime import Runtime

    if args.workers is not None and args.workers < 1:
        print("error: --workers needs at least 1", file=sys.stderr)
        return EXIT_CONFIG
    stop = _stop_on_signals()
    runtime = Runtime.build(settings)
    try:
        service = IngestService(runtime, workers=args.workers)
        mqtt = settings.mqtt
        print(
            f"ingest: {len(service.workers)} worker(s) -> {mqtt.host}:{mqtt.port} "
            f"({mqtt.protocol}), Ctrl-C to stop",
            flush=True,
        )
        service.start()
        service.run_until(stop)
    finally:
        runtime.close()
    return EXIT_OK


def _cmd_tsdb_mirror(args: argparse.Namespace, settings: Any) -> int:
    from cloud.runtime import Runtime
    from cloud.timeseries.mirror import TsdbMirror

    if not settings.tsdb.enabled:
        print("error: the mirror is off: set ANJIA_CLOUD__TSDB__ENABLED=true", file=sys.stderr)
        return EXIT_CONFIG
    stop = _stop_on_signals()
    runtime = Runtime.build(settings)
    mirror = TsdbMirror(settings.tsdb, runtime.session_factory, clock=runtime.clock)
    try:
        print(f"tsdb mirror -> {settings.tsdb.url}, Ctrl-C to stop", flush=True)
        mirror.run(stop)
    finally:
        mirror.stop()
        runtime.close()
    stats = mirror.stats
    print(f"tsdb mirror stopped: {stats.written} point(s) written, {stats.pending} pending")
    return EXIT_OK


def _cmd_broker_acl(args: argparse.Namespace, settings: Any) -> int:
    from pathlib import Path

    from cloud.broker_acl import BrokerAclError
    from cloud.broker_files import service_accounts, write_broker_files
    from cloud.runtime import Runtime

    services = [] if args.no_service_account else service_accounts(settings)
    runtime = Runtime.build(settings)
    try:
        written = write_broker_files(Path(args.out), runtime.session_factory, services)
    except (BrokerAclError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        runtime.close()
    print(
        f"{written.password_file} and {written.acl_file}: {written.gateways} gateway(s), "
        f"{written.services} service account(s); reload Mosquitto with SIGHUP"
    )
    return EXIT_OK


def _cmd_create_operator(args: argparse.Namespace, settings: Any) -> int:
    import secrets

    from cloud.db.migrate import upgrade
    from cloud.domain import Role
    from cloud.errors import CloudError
    from cloud.runtime import Runtime
    from cloud.services.directory import DirectoryService

    generated = not args.password_stdin
    password = secrets.token_urlsafe(18) if generated else sys.stdin.readline().rstrip("\n")
    if len(password) < 10:
        print("error: the password needs at least 10 characters", file=sys.stderr)
        return EXIT_FAILED
    runtime = Runtime.build(settings)
    try:
        upgrade(runtime.engine)
        with runtime.session_factory() as session:
            service = DirectoryService(session, runtime.passwords, runtime.clock)
            user = service.create_machine_user(None, args.username, password, Role.OPERATOR)
    except CloudError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        runtime.close()
    print(f"operator {user.username} created (id {user.id})")
    if generated:
        print(f"password (shown once): {password}")
    return EXIT_OK


def _cmd_rotate_keys(args: argparse.Namespace, settings: Any) -> int:
    from cloud.runtime import Runtime
    from cloud.services.persons import PersonService

    runtime = Runtime.build(settings)
    try:
        with runtime.session_factory() as session:
            service = PersonService(session, runtime.cipher, runtime.blind_index, runtime.clock)
            count = service.rotate_keys(batch_size=args.batch_size)
    finally:
        runtime.close()
    print(f"re-encrypted {count} persons under key {runtime.cipher.current_key_id}")
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``anjia cloud`` and its sub-commands."""
    cloud = subparsers.add_parser(
        "cloud",
        help="the cloud service: API, database, accounts",
        description="安家云 Anjia cloud: health records, households, gateways and devices.",
    )
    sub = cloud.add_subparsers(dest="cloud_command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the API (uvicorn)")
    serve.add_argument("--host", default=None, help="default: ANJIA_CLOUD__HTTP__HOST")
    serve.add_argument("--port", type=int, default=None, help="default: ANJIA_CLOUD__HTTP__PORT")
    serve.add_argument(
        "--access-log", action="store_true", help="log every request path (they hold person ids)"
    )
    serve.set_defaults(func=_with_settings(_cmd_serve))

    migrate = sub.add_parser("migrate", help="upgrade the database schema")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(func=_with_settings(_cmd_migrate))

    ingest = sub.add_parser("ingest", help="run ingest workers (MQTT -> database)")
    ingest.add_argument(
        "--workers", type=int, default=None, help="workers in this process (default: settings)"
    )
    ingest.set_defaults(func=_with_settings(_cmd_ingest))

    tsdb = sub.add_parser("tsdb-mirror", help="run the time-series mirror alone")
    tsdb.set_defaults(func=_with_settings(_cmd_tsdb_mirror))

    acl = sub.add_parser("broker-acl", help="write Mosquitto's password and ACL files")
    acl.add_argument("--out", required=True, help="directory for password_file and acl_file")
    acl.add_argument(
        "--no-service-account",
        action="store_true",
        help="leave out the cloud's own login (ANJIA_CLOUD__MQTT__USERNAME/PASSWORD)",
    )
    acl.set_defaults(func=_with_settings(_cmd_broker_acl))

    operator = sub.add_parser("create-operator", help="create an operator account")
    operator.add_argument("username")
    operator.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    operator.set_defaults(func=_with_settings(_cmd_create_operator))

    rotate = sub.add_parser("rotate-keys", help="re-encrypt persons under the current key")
    rotate.add_argument("--batch-size", type=int, default=200)
    rotate.set_defaults(func=_with_settings(_cmd_rotate_keys))
