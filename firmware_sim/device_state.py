"""The state of a simulated glucose meter and blood-pressure cuff, and the meter's RACP server.

Nothing here talks to a radio: :mod:`firmware_sim.peripheral` puts these objects behind bumble
GATT servers, calls :meth:`SimGlucoseMeter.handle_racp` on each write of the Record Access Control
Point and sends what it returns; tests drive them directly with literal hex.

* :class:`SimGlucoseMeter` (ble.md §1): a bounded record store (oldest record dropped when full), a
  u16 sequence counter that wraps, optional context records, a device clock with skew, drift and
  zone (:mod:`firmware_sim.device_clock`), Device Information, Glucose Feature, battery, and the
  RACP server of §1.4: report (all, <=, >=, within range, first, last; by sequence number or user
  facing time), delete, report number, abort; response codes as in §1.4, and the GLS application
  errors 0x80 (procedure already in progress) and 0x81 (CCCD improperly configured) raised as
  :class:`~firmware_sim.errors.SimAttError`.
* :class:`SimBpMonitor` (ble.md §2): user slots (1, 2, guest 0xFF), a store of readings not yet
  delivered that is indicated again on every connection until each indication is confirmed,
  intermediate cuff pressures while measuring, clock, Device Information, BP Feature, battery.

Every payload is encoded with the device layer's codecs (``bytes(GlucoseMeasurement(...))``), the
same classes the collector decodes with. Faults come from :class:`~firmware_sim.faults.Faults`.

This module is the public face; the code lives in :mod:`firmware_sim.glucose_state`,
:mod:`firmware_sim.bp_state` and :mod:`firmware_sim.device_base`.

Pure: no I/O; the true time comes from an injected clock.
"""

from __future__ import annotations

from firmware_sim.bp_state import (
    BpSessionPlan,
    PlannedIndication,
    SimBpMonitor,
    StoredReading,
    cuff_pressure_profile,
)
from firmware_sim.device_base import DeviceInformation, Notification, SimDevice
from firmware_sim.glucose_state import GlucoseRecord, RacpOutcome, SimGlucoseMeter

__all__ = [
    "BpSessionPlan",
    "DeviceInformation",
    "GlucoseRecord",
    "Notification",
    "PlannedIndication",
    "RacpOutcome",
    "SimBpMonitor",
    "SimDevice",
    "SimGlucoseMeter",
    "StoredReading",
    "cuff_pressure_profile",
]
