"""Hosts joining a simulated link over a transport take random static addresses (Core Vol 6
Part B 1.3.2.1): two top bits set, never all zeros or all ones, different every time."""

from __future__ import annotations

from device_drivers.bumble_air import _random_static_address


def test_random_static_addresses_are_valid_and_distinct() -> None:
    addresses = [_random_static_address() for _ in range(200)]
    assert len(set(addresses)) == len(addresses)
    for address in addresses:
        octets = [int(part, 16) for part in address.split(":")]
        assert len(octets) == 6
        assert octets[0] >> 6 == 0b11
        rest = ((octets[0] & 0x3F) << 40) | int.from_bytes(bytes(octets[1:]), "big")
        assert rest not in (0, (1 << 46) - 1)
