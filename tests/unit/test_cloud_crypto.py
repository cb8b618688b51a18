"""AES-GCM personal-identifier encryption with versioned keys, the blind index, and resident
ID number validation (GB 11643-1999)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.crypto import BlindIndex, PiiCipher
from cloud.errors import CryptoError
from cloud.identifiers import IdType, cn_resident_check_char, normalise_id_number

K1, K2 = os.urandom(32), os.urandom(32)


@given(st.text(max_size=200), st.text(min_size=1, max_size=60))
def test_round_trip(plaintext: str, context: str) -> None:
    cipher = PiiCipher({"k1": K1}, "k1")
    blob = cipher.encrypt(plaintext, context)
    assert cipher.decrypt(blob, context) == plaintext


def test_layout_names_the_key_and_uses_a_fresh_nonce() -> None:
    cipher = PiiCipher({"k1": K1}, "k1")
    a, b = cipher.encrypt("张三", "ctx"), cipher.encrypt("张三", "ctx")
    assert a[:4] == bytes((1, 2)) + b"k1"
    assert a != b  # random nonce: equal plaintexts do not give equal ciphertexts
    assert len(a) == 1 + 1 + 2 + 12 + len("张三".encode()) + 16
    assert "张三".encode() not in a


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:-1] + bytes([b[-1] ^ 1]),  # tag
        lambda b: b[:20] + bytes([b[20] ^ 0x80]) + b[21:],  # ciphertext / nonce
        lambda b: b[:5],  # truncated
        lambda b: b"\x02" + b[1:],  # unknown format version
        lambda b: b"",
    ],
)
def test_tampering_is_detected(mutate: object) -> None:
    cipher = PiiCipher({"k1": K1}, "k1")
    blob = cipher.encrypt("13800138000", "persons.phone:1")
    with pytest.raises(CryptoError):
        cipher.decrypt(mutate(blob), "persons.phone:1")  # type: ignore[operator]


def test_context_binds_the_ciphertext() -> None:
    cipher = PiiCipher({"k1": K1}, "k1")
    blob = cipher.encrypt("张三", "persons.name:a")
    with pytest.raises(CryptoError):
        cipher.decrypt(blob, "persons.name:b")


def test_rotation_reads_old_keys_and_writes_the_current_one() -> None:
    old = PiiCipher({"k1": K1}, "k1")
    blob = old.encrypt("李四", "c")
    rotating = PiiCipher({"k1": K1, "k2": K2}, "k2")
    assert rotating.needs_rotation(blob)
    assert rotating.decrypt(blob, "c") == "李四"
    new_blob = rotating.reencrypt(blob, "c")
    assert rotating.key_id_of(new_blob) == "k2"
    assert not rotating.needs_rotation(new_blob)
    assert rotating.reencrypt(new_blob, "c") is new_blob
    retired = PiiCipher({"k2": K2}, "k2")
    assert retired.decrypt(new_blob, "c") == "李四"
    with pytest.raises(CryptoError) as info:
        retired.decrypt(blob, "c")
    assert info.value.key_id == "k1"


def test_keyring_is_validated() -> None:
    with pytest.raises(CryptoError):
        PiiCipher({"k1": K1}, "k2")
    with pytest.raises(CryptoError):
        PiiCipher({"k1": b"short"}, "k1")


# --- resident ID numbers --------------------------------------------------------------------
def test_check_character_of_the_standard_example() -> None:
    # GB 11643-1999 appendix example: 11010519491231002X
    assert cn_resident_check_char("11010519491231002") == "X"
    assert cn_resident_check_char("44052418800101001") == "4"


def test_normalisation() -> None:
    n = "11010519491231002X"
    assert normalise_id_number(IdType.CN_RESIDENT, n) == n
    assert normalise_id_number(IdType.CN_RESIDENT, "110105 19491231 002x") == n
    assert normalise_id_number(IdType.CN_RESIDENT, "１１０１０５１９４９１２３１００２Ｘ") == n
    assert normalise_id_number(IdType.PASSPORT, " e1234-5678 ") == "E12345678"


@pytest.mark.parametrize(
    "bad",
    ["110105194912310021", "11010519491331002X", "1101051949123100", "A1010519491231002X", ""],
)
def test_invalid_resident_numbers(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        normalise_id_number(IdType.CN_RESIDENT, bad)
    if bad:
        assert bad not in str(info.value)


def test_blind_index_is_keyed_typed_and_normalised() -> None:
    index = BlindIndex(K1)
    a = index.of(IdType.CN_RESIDENT, "11010519491231002X")
    assert a == index.of(IdType.CN_RESIDENT, "110105-19491231-002x")
    assert len(a) == 64
    assert int(a, 16) >= 0
    assert a != BlindIndex(K2).of(IdType.CN_RESIDENT, "11010519491231002X")
    assert index.of(IdType.PASSPORT, "E12345678") != index.of(IdType.OTHER, "E12345678")
    with pytest.raises(CryptoError):
        BlindIndex(b"too short")
