"""A paho-mqtt client for the cloud's own MQTT connections (ingest workers, config pusher),
configured from the ingest settings: protocol, credentials, TLS with server verification. IO."""

from __future__ import annotations

import logging
import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from cloud.settings import IngestMqttSettings

__all__ = ["make_cloud_client"]


def _not_a_fault(record: logging.LogRecord) -> bool:
    """paho's network thread logs "Client is not connected" at ERROR once more after every
    disconnect (also our own); disconnects are logged by our callbacks, so drop the echo."""
    return not str(record.msg).startswith("Client is not connected")


def make_cloud_client(
    cfg: IngestMqttSettings, client_id: str, *, manual_ack: bool = False, logger: str = __name__
) -> mqtt.Client:
    v5 = cfg.protocol == "mqtt5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        clean_session=None if v5 else False,
        manual_ack=manual_ack,
    )
    paho_logger = logging.getLogger(f"{logger}.paho")
    if _not_a_fault not in paho_logger.filters:
        paho_logger.addFilter(_not_a_fault)
    client.enable_logger(paho_logger)
    if cfg.username is not None:
        password = None if cfg.password is None else cfg.password.get_secret_value()
        client.username_pw_set(cfg.username, password)
    if cfg.tls:
        context = ssl.create_default_context(
            cafile=None if cfg.ca_file is None else str(cfg.ca_file)
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        client.tls_set_context(context)
    client.reconnect_delay_set(1, 30)
    return client
