"""Bluetooth SIG assigned numbers used by the health profiles (Assigned Numbers 3.4, 3.8)."""

from __future__ import annotations

from typing import Final

__all__ = [
    "CHARACTERISTIC_NAMES",
    "SERVICE_NAMES",
    "full_uuid",
    "short_uuid",
]

BASE_UUID_SUFFIX: Final = "-0000-1000-8000-00805f9b34fb"

# Services
GLUCOSE_SERVICE: Final = 0x1808
BLOOD_PRESSURE_SERVICE: Final = 0x1810
CURRENT_TIME_SERVICE: Final = 0x1805
DEVICE_INFORMATION_SERVICE: Final = 0x180A
BATTERY_SERVICE: Final = 0x180F

# Glucose service characteristics
GLUCOSE_MEASUREMENT: Final = 0x2A18
GLUCOSE_MEASUREMENT_CONTEXT: Final = 0x2A34
GLUCOSE_FEATURE: Final = 0x2A51
RECORD_ACCESS_CONTROL_POINT: Final = 0x2A52

# Blood pressure service characteristics
BLOOD_PRESSURE_MEASUREMENT: Final = 0x2A35
INTERMEDIATE_CUFF_PRESSURE: Final = 0x2A36
BLOOD_PRESSURE_FEATURE: Final = 0x2A49

# Time, device information, battery
CURRENT_TIME: Final = 0x2A2B
LOCAL_TIME_INFORMATION: Final = 0x2A0F
DATE_TIME: Final = 0x2A08
BATTERY_LEVEL: Final = 0x2A19
MANUFACTURER_NAME: Final = 0x2A29
MODEL_NUMBER: Final = 0x2A24
SERIAL_NUMBER: Final = 0x2A25
HARDWARE_REVISION: Final = 0x2A27
FIRMWARE_REVISION: Final = 0x2A26
SOFTWARE_REVISION: Final = 0x2A28
SYSTEM_ID: Final = 0x2A23
PNP_ID: Final = 0x2A50

# Descriptors
CLIENT_CHARACTERISTIC_CONFIGURATION: Final = 0x2902

SERVICE_NAMES: Final[dict[int, str]] = {
    GLUCOSE_SERVICE: "glucose",
    BLOOD_PRESSURE_SERVICE: "blood_pressure",
    CURRENT_TIME_SERVICE: "current_time_service",
    DEVICE_INFORMATION_SERVICE: "device_information",
    BATTERY_SERVICE: "battery_service",
}

CHARACTERISTIC_NAMES: Final[dict[int, str]] = {
    GLUCOSE_MEASUREMENT: "glucose_measurement",
    GLUCOSE_MEASUREMENT_CONTEXT: "glucose_measurement_context",
    GLUCOSE_FEATURE: "glucose_feature",
    RECORD_ACCESS_CONTROL_POINT: "record_access_control_point",
    BLOOD_PRESSURE_MEASUREMENT: "blood_pressure_measurement",
    INTERMEDIATE_CUFF_PRESSURE: "intermediate_cuff_pressure",
    BLOOD_PRESSURE_FEATURE: "blood_pressure_feature",
    CURRENT_TIME: "current_time",
    LOCAL_TIME_INFORMATION: "local_time_information",
    DATE_TIME: "date_time",
    BATTERY_LEVEL: "battery_level",
    MANUFACTURER_NAME: "manufacturer_name_string",
    MODEL_NUMBER: "model_number_string",
    SERIAL_NUMBER: "serial_number_string",
    HARDWARE_REVISION: "hardware_revision_string",
    FIRMWARE_REVISION: "firmware_revision_string",
    SOFTWARE_REVISION: "software_revision_string",
    SYSTEM_ID: "system_id",
    PNP_ID: "pnp_id",
}


def full_uuid(short: int) -> str:
    """The lowercase 128-bit UUID string of a 16-bit SIG number (the form bleak uses)."""
    if not 0 <= short <= 0xFFFF:
        raise ValueError(f"not a 16-bit UUID: {short!r}")
    return f"0000{short:04x}{BASE_UUID_SUFFIX}"


def short_uuid(uuid: str) -> int | None:
    """The 16-bit SIG number of a UUID string, or None when it is not on the SIG base."""
    text = uuid.strip().lower()
    if len(text) == 4:
        return int(text, 16)
    if len(text) == 36 and text.endswith(BASE_UUID_SUFFIX) and text.startswith("0000"):
        return int(text[4:8], 16)
    return None
