"""The broker ACL renderer (pure): every channel's direction, each gateway confined to its own
topics, password-file lines, refused names and hashes."""

from __future__ import annotations

import pytest

from cloud.broker_acl import (
    BrokerAccount,
    BrokerAclError,
    render_acl_file,
    render_password_file,
)

HASH = "$7$10$c2FsdHNhbHRzYWx0$aGFzaA=="
GW_A = BrokerAccount("gw-a-0001", HASH)
GW_B = BrokerAccount("gw-b-0002", HASH)
CLOUD = BrokerAccount("anjia-cloud", HASH)


def blocks(text: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    user = None
    for line in text.splitlines():
        if line.startswith("user "):
            user = line.split(" ", 1)[1]
            result[user] = []
        elif line.startswith("topic "):
            assert user is not None, "a topic line before any user line applies to anonymous"
            result[user].append(line)
    return result


def test_each_gateway_writes_its_up_channels_and_reads_its_down_channels_only() -> None:
    acl = blocks(render_acl_file([GW_A, GW_B], [CLOUD]))
    assert acl["gw-a-0001"] == [
        "topic write anjia/v1/gw/gw-a-0001/up/readings",
        "topic write anjia/v1/gw/gw-a-0001/up/status",
        "topic write anjia/v1/gw/gw-a-0001/up/events",
        "topic read anjia/v1/gw/gw-a-0001/down/acks",
        "topic read anjia/v1/gw/gw-a-0001/down/config",
    ]
    assert all("gw-a-0001" not in line for line in acl["gw-b-0002"])
    assert acl["anjia-cloud"] == [
        "topic read anjia/v1/gw/+/up/readings",
        "topic read anjia/v1/gw/+/up/status",
        "topic read anjia/v1/gw/+/up/events",
        "topic write anjia/v1/gw/+/down/acks",
        "topic write anjia/v1/gw/+/down/config",
    ]
    assert not any("#" in line or "readwrite" in line for v in acl.values() for line in v)


def test_password_file_has_one_line_per_account_services_first() -> None:
    assert render_password_file([GW_A, GW_B], [CLOUD]) == (
        f"anjia-cloud:{HASH}\ngw-a-0001:{HASH}\ngw-b-0002:{HASH}\n"
    )
    assert render_password_file([]) == ""


@pytest.mark.parametrize(
    "account",
    [
        BrokerAccount("gw:evil", HASH),
        BrokerAccount("gw evil", HASH),
        BrokerAccount("gw/+", HASH),
        BrokerAccount("", HASH),
        BrokerAccount("gw-ok", "plaintext"),
        BrokerAccount("gw-ok", HASH + "\nroot:" + HASH),
    ],
)
def test_names_and_hashes_that_could_break_the_files_are_refused(account: BrokerAccount) -> None:
    with pytest.raises(BrokerAclError):
        render_password_file([account])
    with pytest.raises(BrokerAclError):
        render_acl_file([account])


def test_a_gateway_named_like_a_service_account_is_refused() -> None:
    with pytest.raises(BrokerAclError, match="twice"):
        render_acl_file([BrokerAccount("anjia-cloud", HASH)], [CLOUD])
