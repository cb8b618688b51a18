"""Record Access Control Point 0x2A52: requests and responses (ble.md §1.4; GLS 1.0.1 §3.6).

Frame: ``op_code u8, operator u8, operand...``. The operand depends on op code and operator:

* op 0x05 Number of Stored Records Response: ``u16 count``;
* op 0x06 Response Code: ``request op code u8, response code u8``;
* ops 0x01/0x02/0x04 with operator 0x02 (<=), 0x03 (>=) or 0x04 (within range): a filter type byte,
  then one value (two for the range). Filter 0x01 = sequence number (u16 values), filter 0x02 =
  user facing time (7-byte Date Time values);
* other operators (Null, all, first, last) and op 0x03 Abort: no operand.

Enums are open: an unknown op code, operator, filter type or response code keeps its integer and
decodes; its operand bytes, which this codec cannot interpret, are kept verbatim in
``raw_operand`` so nothing is lost and ``bytes(msg)`` reproduces the wire form. A RACP value is
one complete ATT write or indication, so unlike measurements its length is exact: a missing or
extra operand byte for a *known* combination raises :class:`DecodeError` (a server answers that
with Invalid Operand 0x05).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Self

from device_drivers.codec._wire import Reader, pack_uint
from device_drivers.codec.date_time import DATE_TIME_SIZE, DateTime, read_date_time
from device_drivers.errors import EncodeError

__all__ = [
    "RacpFilterType",
    "RacpMessage",
    "RacpOpCode",
    "RacpOperator",
    "RacpResponseCode",
]

_RACP: Final = "record_access_control_point"


class _OpenIntEnum(IntEnum):
    """An IntEnum that accepts unassigned values: ``RacpOpCode(0x42)`` is a pseudo-member whose
    name is ``UNKNOWN_0x42`` instead of a ValueError. Protocol codes must never crash a decoder."""

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_0x{value:02X}"
        member._value_ = value
        return member

    @classmethod
    def known(cls, value: int) -> bool:
        return value in cls._value2member_map_

    @classmethod
    def name_of(cls, value: int | None) -> str | None:
        """The snake_case name of an assigned code, None when absent or unassigned."""
        if value is None or not cls.known(value):
            return None
        return cls(value).name.lower()


class RacpOpCode(_OpenIntEnum):
    REPORT_STORED_RECORDS = 0x01
    DELETE_STORED_RECORDS = 0x02
    ABORT_OPERATION = 0x03
    REPORT_NUMBER_OF_STORED_RECORDS = 0x04
    NUMBER_OF_STORED_RECORDS_RESPONSE = 0x05
    RESPONSE_CODE = 0x06


class RacpOperator(_OpenIntEnum):
    NULL = 0x00
    ALL_RECORDS = 0x01
    LESS_THAN_OR_EQUAL_TO = 0x02
    GREATER_THAN_OR_EQUAL_TO = 0x03
    WITHIN_RANGE_OF = 0x04
    FIRST_RECORD = 0x05
    LAST_RECORD = 0x06


class RacpFilterType(_OpenIntEnum):
    SEQUENCE_NUMBER = 0x01
    USER_FACING_TIME = 0x02


class RacpResponseCode(_OpenIntEnum):
    SUCCESS = 0x01
    OP_CODE_NOT_SUPPORTED = 0x02
    INVALID_OPERATOR = 0x03
    OPERATOR_NOT_SUPPORTED = 0x04
    INVALID_OPERAND = 0x05
    NO_RECORDS_FOUND = 0x06
    ABORT_UNSUCCESSFUL = 0x07
    PROCEDURE_NOT_COMPLETED = 0x08
    OPERAND_NOT_SUPPORTED = 0x09


_FILTERED_OPS: Final = frozenset(
    {
        RacpOpCode.REPORT_STORED_RECORDS,
        RacpOpCode.DELETE_STORED_RECORDS,
        RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS,
    }
)
_FILTER_OPERATORS: Final = frozenset(
    {
        RacpOperator.LESS_THAN_OR_EQUAL_TO,
        RacpOperator.GREATER_THAN_OR_EQUAL_TO,
        RacpOperator.WITHIN_RANGE_OF,
    }
)
_NO_OPERAND_OPERATORS: Final = frozenset(
    {
        RacpOperator.NULL,
        RacpOperator.ALL_RECORDS,
        RacpOperator.FIRST_RECORD,
        RacpOperator.LAST_RECORD,
    }
)


def _operand_count(operator: int) -> int:
    return 2 if operator == RacpOperator.WITHIN_RANGE_OF else 1


@dataclass(frozen=True, slots=True)
class RacpMessage:
    """One RACP request or response.

    ``operands`` holds sequence-number operands (filter 0x01); ``time_operands`` holds Date Time
    operands (filter 0x02); ``raw_operand`` holds operand bytes of codes this codec does not know.
    """

    op_code: int
    operator: int
    filter_type: int | None = None
    operands: tuple[int, ...] = ()
    request_op_code: int | None = None
    response_code: int | None = None
    number_of_records: int | None = None
    time_operands: tuple[DateTime, ...] = ()
    raw_operand: bytes = b""

    def __post_init__(self) -> None:
        for field in ("op_code", "operator", "filter_type", "request_op_code", "response_code"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or not 0 <= value <= 0xFF):
                raise EncodeError(_RACP, f"{field} {value!r} does not fit in uint8")
        if self.op_code == RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
            if self.number_of_records is None:
                raise EncodeError(_RACP, "a number-of-records response needs number_of_records")
        elif self.number_of_records is not None:
            raise EncodeError(_RACP, "number_of_records belongs to op code 0x05 only")
        if self.op_code == RacpOpCode.RESPONSE_CODE:
            if self.request_op_code is None or self.response_code is None:
                raise EncodeError(_RACP, "a response needs request_op_code and response_code")
        elif self.request_op_code is not None or self.response_code is not None:
            raise EncodeError(_RACP, "request_op_code/response_code belong to op code 0x06 only")
        if self.operands and self.time_operands:
            raise EncodeError(_RACP, "operands and time_operands are exclusive")
        if (self.operands or self.time_operands) and self.filter_type is None:
            raise EncodeError(_RACP, "operands need a filter_type")
        for value in self.operands:
            pack_uint(value, 2, _RACP, "operand")

    # -- request builders ----------------------------------------------------------------------

    @classmethod
    def report_all(cls) -> RacpMessage:
        return cls(RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS)

    @classmethod
    def report_greater_or_equal(cls, sequence_number: int) -> RacpMessage:
        return cls(
            RacpOpCode.REPORT_STORED_RECORDS,
            RacpOperator.GREATER_THAN_OR_EQUAL_TO,
            RacpFilterType.SEQUENCE_NUMBER,
            (sequence_number,),
        )

    @classmethod
    def report_within_range(cls, first: int, last: int) -> RacpMessage:
        return cls(
            RacpOpCode.REPORT_STORED_RECORDS,
            RacpOperator.WITHIN_RANGE_OF,
            RacpFilterType.SEQUENCE_NUMBER,
            (first, last),
        )

    @classmethod
    def report_number_all(cls) -> RacpMessage:
        return cls(RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.ALL_RECORDS)

    @classmethod
    def report_number_greater_or_equal(cls, sequence_number: int) -> RacpMessage:
        return cls(
            RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS,
            RacpOperator.GREATER_THAN_OR_EQUAL_TO,
            RacpFilterType.SEQUENCE_NUMBER,
            (sequence_number,),
        )

    @classmethod
    def delete_all(cls) -> RacpMessage:
        return cls(RacpOpCode.DELETE_STORED_RECORDS, RacpOperator.ALL_RECORDS)

    @classmethod
    def abort(cls) -> RacpMessage:
        return cls(RacpOpCode.ABORT_OPERATION, RacpOperator.NULL)

    @classmethod
    def response(cls, request_op_code: int, response_code: int) -> RacpMessage:
        return cls(
            RacpOpCode.RESPONSE_CODE,
            RacpOperator.NULL,
            request_op_code=RacpOpCode(request_op_code),
            response_code=RacpResponseCode(response_code),
        )

    @classmethod
    def number_response(cls, count: int) -> RacpMessage:
        return cls(
            RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE,
            RacpOperator.NULL,
            number_of_records=count,
        )

    # -- properties ----------------------------------------------------------------------------

    @property
    def is_response(self) -> bool:
        return self.op_code in (
            RacpOpCode.RESPONSE_CODE,
            RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE,
        )

    @property
    def is_success(self) -> bool:
        return self.op_code == RacpOpCode.RESPONSE_CODE and self.response_code == (
            RacpResponseCode.SUCCESS
        )

    @property
    def operand_min(self) -> int | None:
        """Lower bound of a sequence-number filter (>= or within range), else None."""
        if not self.operands or self.operator == RacpOperator.LESS_THAN_OR_EQUAL_TO:
            return None
        return self.operands[0]

    @property
    def operand_max(self) -> int | None:
        """Upper bound of a sequence-number filter (<= or within range), else None."""
        if not self.operands or self.operator == RacpOperator.GREATER_THAN_OR_EQUAL_TO:
            return None
        return self.operands[-1]

    # -- codec ---------------------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> RacpMessage:
        reader = Reader(data, _RACP)
        op_code = RacpOpCode(reader.u8("op code"))
        operator = RacpOperator(reader.u8("operator"))
        if op_code == RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
            count = reader.u16("number of records")
            reader.expect_end()
            return cls(op_code, operator, number_of_records=count)
        if op_code == RacpOpCode.RESPONSE_CODE:
            request = RacpOpCode(reader.u8("request op code"))
            code = RacpResponseCode(reader.u8("response code"))
            reader.expect_end()
            return cls(op_code, operator, request_op_code=request, response_code=code)
        if op_code == RacpOpCode.ABORT_OPERATION or (
            op_code in _FILTERED_OPS and operator in _NO_OPERAND_OPERATORS
        ):
            if reader.remaining:
                raise reader.error(
                    f"op code 0x{op_code:02x} with operator 0x{operator:02x} takes no operand,"
                    f" got {reader.remaining} byte(s)"
                )
            return cls(op_code, operator)
        if op_code in _FILTERED_OPS and operator in _FILTER_OPERATORS:
            filter_type = RacpFilterType(reader.u8("filter type"))
            count = _operand_count(operator)
            if filter_type == RacpFilterType.SEQUENCE_NUMBER:
                values = tuple(reader.u16(f"sequence number operand {i + 1}") for i in range(count))
                reader.expect_end()
                return cls(op_code, operator, filter_type, values)
            if filter_type == RacpFilterType.USER_FACING_TIME:
                if reader.remaining != count * DATE_TIME_SIZE:
                    raise reader.error(
                        f"user facing time operand needs {count * DATE_TIME_SIZE} bytes,"
                        f" got {reader.remaining}"
                    )
                times = tuple(
                    read_date_time(reader, f"user facing time operand {i + 1}")
                    for i in range(count)
                )
                return cls(op_code, operator, filter_type, time_operands=times)
            return cls(op_code, operator, filter_type, raw_operand=reader.rest())
        # Unknown op code or operator: keep the operand verbatim.
        return cls(op_code, operator, raw_operand=reader.rest())

    def __bytes__(self) -> bytes:
        out = bytearray((self.op_code, self.operator))
        if self.number_of_records is not None:
            out += pack_uint(self.number_of_records, 2, _RACP, "number_of_records")
        if self.request_op_code is not None and self.response_code is not None:
            out += bytes((self.request_op_code, self.response_code))
        if self.filter_type is not None:
            out.append(self.filter_type)
        for value in self.operands:
            out += pack_uint(value, 2, _RACP, "operand")
        for time in self.time_operands:
            out += bytes(time)
        out += self.raw_operand
        return bytes(out)

    def to_dict(self) -> dict[str, object]:
        return {
            "op_code": int(self.op_code),
            "op_code_name": RacpOpCode.name_of(self.op_code),
            "operator": int(self.operator),
            "operator_name": RacpOperator.name_of(self.operator),
            "filter_type": None if self.filter_type is None else int(self.filter_type),
            "filter_type_name": RacpFilterType.name_of(self.filter_type),
            "operands": [*self.operands]
            if self.operands
            else [t.iso() for t in self.time_operands],
            "operand_min": self.operand_min,
            "operand_max": self.operand_max,
            "request_op_code": None if self.request_op_code is None else int(self.request_op_code),
            "request_op_code_name": RacpOpCode.name_of(self.request_op_code),
            "response_code": None if self.response_code is None else int(self.response_code),
            "response_code_name": RacpResponseCode.name_of(self.response_code),
            "number_of_records": self.number_of_records,
            "raw_operand": self.raw_operand.hex() if self.raw_operand else None,
        }
