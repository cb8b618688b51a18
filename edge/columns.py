"""A batch of readings as numpy columns, so the checks run vectorised.

Absent values become NaN and a separate ``*_present`` mask says whether the reading carried a
value at all (so a NaN that really arrived can be told from a missing field). Times are float
seconds since the Unix epoch: aware times as they are, the naive ``device_time`` read as if it were
UTC (only its calendar position matters to the checks that use it). Nothing here changes a reading.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from device_drivers.model import BloodPressureReading, GlucoseReading, Reading, ReadingFlag

__all__ = ["NAN", "BatchColumns", "naive_epoch_s"]

NAN: Final = float("nan")
_NAIVE_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC).replace(tzinfo=None)

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


def naive_epoch_s(value: datetime) -> float:
    """Seconds since 1970-01-01 of a wall-clock time read as UTC (only the fields count)."""
    return value.replace(tzinfo=UTC).timestamp()


def _opt(value: float | None) -> float:
    return NAN if value is None else float(value)


@dataclass(frozen=True, slots=True, eq=False)
class BatchColumns:
    """Column view of a batch; row ``i`` is ``batch[i]``."""

    is_glucose: Bools
    device_code: Ints  # dense code per device key, in order of first appearance
    glucose_mmol_l: Floats
    glucose_present: Bools
    sample_type: Floats  # NaN when absent
    sample_location: Floats
    sensor_status: Ints
    systolic_mmhg: Floats
    systolic_present: Bools
    diastolic_mmhg: Floats
    diastolic_present: Bools
    mean_arterial_mmhg: Floats
    pulse_bpm: Floats
    sequence_number: Floats  # NaN when the reading has none
    measured_at_s: Floats
    device_time_s: Floats  # naive wall time read as UTC
    received_at_s: Floats
    clock_skew_s: Floats
    no_device_time: Bools  # NO_DEVICE_TIME already set
    high_out_of_range: Bools
    low_out_of_range: Bools
    control_solution: Bools
    value_missing: Bools
    time_fault: Bools  # TIME_FAULT already set (by the device, the clock step or quality checks)
    implausible: Bools  # IMPLAUSIBLE already set
    device_keys: tuple[str, ...]  # code -> key

    def __len__(self) -> int:
        return int(self.is_glucose.shape[0])

    def take(self, rows: Ints) -> BatchColumns:
        """The columns of ``rows`` (in that order); device codes and keys are kept."""
        arrays = {
            name: getattr(self, name)[rows]
            for name in self.__dataclass_fields__
            if name != "device_keys"
        }
        return BatchColumns(device_keys=self.device_keys, **arrays)

    @classmethod
    def of(cls, batch: Sequence[Reading]) -> BatchColumns:
        n = len(batch)
        codes: list[int] = []
        seq: list[float] = []
        measured: list[float] = []
        device_time: list[float] = []
        received: list[float] = []
        skew: list[float] = []
        # per-kind values: glucose rows leave the pressure columns NaN and the other way round
        glucose = np.full(n, NAN)
        sample_type = np.full(n, NAN)
        sample_location = np.full(n, NAN)
        sensor_status = np.zeros(n, dtype=np.int64)
        systolic = np.full(n, NAN)
        diastolic = np.full(n, NAN)
        mean_arterial = np.full(n, NAN)
        pulse = np.full(n, NAN)
        glucose_rows: list[int] = []
        glucose_values: list[float] = []
        glucose_has: list[bool] = []
        glucose_meta: list[tuple[float, float, int]] = []
        bp_rows: list[int] = []
        bp_values: list[tuple[float, float, float, float]] = []
        bp_has: list[tuple[bool, bool]] = []
        flagged_rows: list[int] = []
        key_codes: dict[str, int] = {}
        code_of_object: dict[int, int] = {}  # id(DeviceIdentity) -> code: .key is a property
        for i, r in enumerate(batch):
            device = r.device
            code = code_of_object.get(id(device))
            if code is None:
                code = key_codes.setdefault(device.key, len(key_codes))
                code_of_object[id(device)] = code
            codes.append(code)
            value: float | None = r.sequence_number
            seq.append(NAN if value is None else value)
            at = r.measured_at
            measured.append(NAN if at is None else at.timestamp())
            at = r.device_time
            if at is None:
                device_time.append(NAN)
            elif at.tzinfo is None:
                device_time.append((at - _NAIVE_EPOCH).total_seconds())
            else:
                device_time.append(naive_epoch_s(at))
            received.append(r.received_at.timestamp())
            value = r.clock_skew_s
            skew.append(NAN if value is None else value)
            if r.flags:
                flagged_rows.append(i)
            if isinstance(r, GlucoseReading):
                glucose_rows.append(i)
                value = r.glucose_mmol_l
                glucose_values.append(NAN if value is None else value)
                glucose_has.append(value is not None)
                glucose_meta.append((_opt(r.sample_type), _opt(r.sample_location), r.sensor_status))
            elif isinstance(r, BloodPressureReading):
                bp_rows.append(i)
                systolic_v, diastolic_v = r.systolic_mmhg, r.diastolic_mmhg
                bp_has.append((systolic_v is not None, diastolic_v is not None))
                bp_values.append(
                    (
                        NAN if systolic_v is None else systolic_v,
                        NAN if diastolic_v is None else diastolic_v,
                        _opt(r.mean_arterial_mmhg),
                        _opt(r.pulse_bpm),
                    )
                )
        is_glucose = np.zeros(n, dtype=np.bool_)
        glucose_present = np.zeros(n, dtype=np.bool_)
        systolic_present = np.zeros(n, dtype=np.bool_)
        diastolic_present = np.zeros(n, dtype=np.bool_)
        if glucose_rows:
            g_rows = np.asarray(glucose_rows, dtype=np.int64)
            is_glucose[g_rows] = True
            glucose[g_rows] = glucose_values
            glucose_present[g_rows] = glucose_has
            meta = np.asarray(glucose_meta, dtype=np.float64).reshape(-1, 3)
            sample_type[g_rows] = meta[:, 0]
            sample_location[g_rows] = meta[:, 1]
            sensor_status[g_rows] = meta[:, 2].astype(np.int64)
        if bp_rows:
            b_rows = np.asarray(bp_rows, dtype=np.int64)
            values = np.asarray(bp_values, dtype=np.float64).reshape(-1, 4)
            systolic[b_rows] = values[:, 0]
            diastolic[b_rows] = values[:, 1]
            mean_arterial[b_rows] = values[:, 2]
            pulse[b_rows] = values[:, 3]
            has = np.asarray(bp_has, dtype=np.bool_).reshape(-1, 2)
            systolic_present[b_rows] = has[:, 0]
            diastolic_present[b_rows] = has[:, 1]
        no_time = np.zeros(n, dtype=np.bool_)
        high = np.zeros(n, dtype=np.bool_)
        low = np.zeros(n, dtype=np.bool_)
        control = np.zeros(n, dtype=np.bool_)
        missing = np.zeros(n, dtype=np.bool_)
        time_fault = np.zeros(n, dtype=np.bool_)
        implausible = np.zeros(n, dtype=np.bool_)
        for i in flagged_rows:
            flags = batch[i].flags
            no_time[i] = ReadingFlag.NO_DEVICE_TIME in flags
            high[i] = ReadingFlag.HIGH_OUT_OF_RANGE in flags
            low[i] = ReadingFlag.LOW_OUT_OF_RANGE in flags
            control[i] = ReadingFlag.CONTROL_SOLUTION in flags
            missing[i] = ReadingFlag.VALUE_MISSING in flags
            time_fault[i] = ReadingFlag.TIME_FAULT in flags
            implausible[i] = ReadingFlag.IMPLAUSIBLE in flags
        return cls(
            is_glucose=is_glucose,
            device_code=np.asarray(codes, dtype=np.int64).reshape(n),
            glucose_mmol_l=glucose,
            glucose_present=glucose_present,
            sample_type=sample_type,
            sample_location=sample_location,
            sensor_status=sensor_status,
            systolic_mmhg=systolic,
            systolic_present=systolic_present,
            diastolic_mmhg=diastolic,
            diastolic_present=diastolic_present,
            mean_arterial_mmhg=mean_arterial,
            pulse_bpm=pulse,
            sequence_number=np.asarray(seq, dtype=np.float64).reshape(n),
            measured_at_s=np.asarray(measured, dtype=np.float64).reshape(n),
            device_time_s=np.asarray(device_time, dtype=np.float64).reshape(n),
            received_at_s=np.asarray(received, dtype=np.float64).reshape(n),
            clock_skew_s=np.asarray(skew, dtype=np.float64).reshape(n),
            no_device_time=no_time,
            high_out_of_range=high,
            low_out_of_range=low,
            control_solution=control,
            value_missing=missing,
            time_fault=time_fault,
            implausible=implausible,
            device_keys=tuple(key_codes),
        )
