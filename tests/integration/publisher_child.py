"""A gateway publisher in its own process, for the kill -9 test: publishes an outbox file until
it is killed. Usage: python publisher_child.py OUTBOX HOST PORT GATEWAY_ID BATCH."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from gateway.mqtt import MqttPublisher
from gateway.mqtt_settings import MqttSettings
from gateway.outbox import SqliteOutbox


async def main(outbox_path: str, host: str, port: int, gateway_id: str, batch: int) -> None:
    outbox = SqliteOutbox(Path(outbox_path))
    settings = MqttSettings(
        host=host,
        port=port,
        batch_max_readings=batch,
        inflight_messages=8,
        ack_timeout_s=3.0,
        reconnect_min_s=1,
        reconnect_max_s=1,
    )
    publisher = MqttPublisher(settings, outbox, gateway_id)
    await publisher.start()
    print("started", flush=True)  # the parent test waits for this line
    await asyncio.Event().wait()  # until SIGKILL or SIGTERM


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    outbox_arg, host_arg, port_arg, gateway_arg, batch_arg = sys.argv[1:6]
    asyncio.run(main(outbox_arg, host_arg, int(port_arg), gateway_arg, int(batch_arg)))
