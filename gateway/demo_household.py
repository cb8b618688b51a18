"""The demo's simulated household: a glucose meter and a blood-pressure cuff on one simulated air.

Both are real bumble GATT peripherals from :mod:`firmware_sim`, filled from seeded scenarios, so the
gateway talks to them through the same bleak code it uses with real meters. IO (bumble), thin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from edge.clock import CHINA_STANDARD_TIME

if TYPE_CHECKING:
    from device_drivers.bumble_air import BumbleAir
    from firmware_sim.peripheral import SimCuff, SimMeter
    from firmware_sim.scenarios import BpSample

__all__ = [
    "CUFF_ADDRESS",
    "HOUSEHOLD_TZ",
    "HOUSEHOLD_TZ_NAME",
    "METER_ADDRESS",
    "HouseholdSims",
    "measure_now",
    "start_household",
]

METER_ADDRESS = "F0:5A:4A:00:00:01"
CUFF_ADDRESS = "F0:5A:4A:00:00:02"
HOUSEHOLD_UTC_OFFSET_MIN = 480  # China Standard Time
HOUSEHOLD_TZ = CHINA_STANDARD_TIME
HOUSEHOLD_TZ_NAME = "Asia/Shanghai"  # the gateway setting for the same zone (no DST)
CUFF_DAYS = 7


@dataclass(slots=True)
class HouseholdSims:
    meter: SimMeter
    cuff: SimCuff
    clock: Callable[[], datetime]

    async def stop(self) -> None:
        await self.meter.stop()
        await self.cuff.stop()


def measure_now(
    sims: HouseholdSims, *, systolic: int, diastolic: int, user_id: int = 1
) -> BpSample:
    """A family member measures their blood pressure on the cuff right now (it is stored in the
    cuff and sent at the next connection)."""
    from firmware_sim.scenarios import BpSample

    pulse = 88
    sample = BpSample(sims.clock(), systolic, diastolic, pulse, user_id)
    sims.cuff.state.add_sample(sample)
    return sample


async def start_household(
    air: BumbleAir,
    *,
    glucose_scenario: str,
    bp_scenario: str,
    seed: int,
    records: int,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> HouseholdSims:
    """Start the meter (the newest ``records`` glucose tests of ``glucose_scenario``) and the cuff
    (the last week of ``bp_scenario``, two user slots) advertising on ``air``."""
    from firmware_sim.device_state import SimBpMonitor, SimGlucoseMeter
    from firmware_sim.peripheral import SimCuff, SimMeter
    from firmware_sim.scenarios import SCENARIOS, generate

    now = clock()
    days = max(SCENARIOS[glucose_scenario].min_days, records // 3 + 2)
    glucose = generate(
        glucose_scenario, seed=seed, end=now, days=days, utc_offset_minutes=HOUSEHOLD_UTC_OFFSET_MIN
    ).last_glucose(records)
    pressure = generate(
        bp_scenario,
        seed=seed,
        end=now,
        days=max(SCENARIOS[bp_scenario].min_days, CUFF_DAYS),
        utc_offset_minutes=HOUSEHOLD_UTC_OFFSET_MIN,
    )
    cutoff = now.timestamp() - CUFF_DAYS * 86400
    meter_state = SimGlucoseMeter(
        clock,
        samples=glucose.glucose,
        capacity=max(1000, len(glucose.glucose)),
        household_utc_offset_minutes=HOUSEHOLD_UTC_OFFSET_MIN,
    )
    cuff_state = SimBpMonitor(
        clock,
        samples=[s for s in pressure.blood_pressure if s.measured_at.timestamp() >= cutoff],
        household_utc_offset_minutes=HOUSEHOLD_UTC_OFFSET_MIN,
    )
    meter = await SimMeter(air, meter_state, address=METER_ADDRESS).start()
    try:
        cuff = await SimCuff(air, cuff_state, address=CUFF_ADDRESS).start()
    except BaseException:
        await meter.stop()
        raise
    return HouseholdSims(meter=meter, cuff=cuff, clock=clock)
