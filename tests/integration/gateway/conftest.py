"""Fixtures of the gateway daemon tests: one simulated air per test and the demo household on it
(a glucose meter and a two-user cuff, well controlled, seeded)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from device_drivers.bumble_air import BumbleAir
from gateway.demo_household import HouseholdSims, start_household


@pytest.fixture
async def air() -> AsyncIterator[BumbleAir]:
    shared = BumbleAir()
    yield shared
    await shared.close()


@pytest.fixture
async def household(air: BumbleAir) -> AsyncIterator[HouseholdSims]:
    sims = await start_household(
        air, glucose_scenario="well_controlled", bp_scenario="well_controlled", seed=3, records=30
    )
    yield sims
    await sims.stop()
