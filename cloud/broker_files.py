"""Writing the broker's ``password_file`` and ``acl_file`` from the database. IO, thin.

Gateways: every active (not revoked) row of ``gateways`` with its stored ``$7$`` hash. Service
accounts: the ingest's MQTT login from the settings (``mqtt.username`` / ``mqtt.password``, hashed
here with a fresh salt), when set. Both files are written atomically (a temporary file in the same
directory, fsynced, then renamed) with mode 0600, so Mosquitto never reads half a file and a
``SIGHUP`` after the command loads the new accounts.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from cloud.broker_acl import BrokerAccount, render_acl_file, render_password_file
from cloud.db.repositories.devices import GatewayRepository
from cloud.passwords import mosquitto_hash
from cloud.settings import CloudSettings

__all__ = ["BrokerFiles", "service_accounts", "write_broker_files", "write_private_file"]

PASSWORD_FILE = "password_file"  # noqa: S105 (a file name)
ACL_FILE = "acl_file"


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    password_file: Path
    acl_file: Path
    gateways: int
    services: int


def service_accounts(settings: CloudSettings) -> list[BrokerAccount]:
    """The cloud's own broker login, if the settings have one with a password."""
    mqtt = settings.mqtt
    if not mqtt.username or mqtt.password is None:
        return []
    hashed = mosquitto_hash(
        mqtt.password.get_secret_value(), settings.auth.gateway_pbkdf2_iterations
    )
    return [BrokerAccount(mqtt.username, hashed)]


def gateway_accounts(session_factory: sessionmaker[Session]) -> list[BrokerAccount]:
    with session_factory() as session:
        return [
            BrokerAccount(row.uid, row.mqtt_password_hash)
            for row in GatewayRepository(session).active()
        ]


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_broker_files(
    out_dir: Path,
    session_factory: sessionmaker[Session],
    services: list[BrokerAccount],
) -> BrokerFiles:
    gateways = gateway_accounts(session_factory)
    passwords = render_password_file(gateways, services)
    acl = render_acl_file(gateways, services)
    password_path, acl_path = out_dir / PASSWORD_FILE, out_dir / ACL_FILE
    write_private_file(acl_path, acl)  # ACL first: a new gateway is never in without its rules
    write_private_file(password_path, passwords)
    return BrokerFiles(password_path, acl_path, len(gateways), len(services))
