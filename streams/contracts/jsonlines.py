"""The friendly JSON form of erpbridge's Avro records, both directions, driven by the schema.

People and scripts write JSON lines; the codec wants its datum shape. The friendly form:
- decimals are JSON strings ("19.99"): a JSON number would have gone through a float;
- timestamps are ISO-8601 strings with a timezone, dates are "YYYY-MM-DD";
- a union of records is an object naming its branch: {"type": "OrderPlaced", ...};
  `["null", X]` unions are null or the value; enums are their symbols;
- bytes and fixed are base64.
Input is strict: unknown fields, missing required fields and values that do not fit are
`JsonLineError`s naming the field's path, because a silently dropped typo is a lost order.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from streams.contracts.schema_store import StoredSchema

_DECIMAL_TEXT = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INT_RANGES = {"int": 32, "long": 64}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = date(1970, 1, 1)
_EXPECTED_TIMESTAMP = 'an ISO-8601 timestamp with a timezone such as "2026-11-26T12:30:00Z"'


class JsonLineError(ValueError):
    """A JSON value that does not fit the schema; `path` is e.g. `event.lines[0].unit_price`."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


def parse_line(text: str) -> Any:
    """Parse one JSON line, keeping numbers exact so money typed as a number is quoted as typed."""
    try:
        return json.loads(
            text.rstrip("\r\n"),  # so a column past the end is not "line 2, column 1"
            parse_float=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise JsonLineError("", f"invalid JSON: {exc.msg} (column {exc.colno})") from None


def to_datum(schema: StoredSchema, obj: Any) -> dict[str, Any]:
    """The codec's datum for a parsed JSON object, or JsonLineError for the first misfit."""
    datum: dict[str, Any] = _Walker(schema).record_to(schema.parsed, obj, "")
    return datum


def from_datum(schema: StoredSchema, datum: Any) -> Any:
    """The friendly JSON-ready form of a codec datum; `to_datum` of it gives the datum back."""
    return _Walker(schema).from_datum(schema.parsed, datum, "")


def parse_timestamp(text: Any, path: str = "") -> datetime:
    """An ISO-8601 timestamp that names its timezone; local time would be a guess."""
    if not isinstance(text, str):
        raise JsonLineError(path, f"expected {_EXPECTED_TIMESTAMP}, not {_kind(text)}")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise JsonLineError(path, f"expected {_EXPECTED_TIMESTAMP}, not {_kind(text)}") from None
    if value.tzinfo is None:
        raise JsonLineError(
            path, f"timestamp {json.dumps(text)} has no timezone; add Z or an offset such as +01:00"
        )
    return value


def format_timestamp(value: datetime) -> str:
    """ISO-8601 with Z for UTC, milliseconds only when there are any."""
    text = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text


class _Walker:
    """Walks fastavro's parsed schema, where named types are referenced by their full name."""

    def __init__(self, schema: StoredSchema) -> None:
        self._named: Mapping[str, Any] = schema.parsed["__named_schemas"]

    def _resolve(self, schema: Any) -> Any:
        if isinstance(schema, str):
            return self._named.get(schema, schema)
        return schema

    # JSON -> datum

    def to_datum(self, schema: Any, value: Any, path: str) -> Any:
        schema = self._resolve(schema)
        if isinstance(schema, list):
            return self._union_to(schema, value, path)
        if isinstance(schema, str):
            return _primitive_to(schema, value, path)
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical == "decimal":
            return _decimal_to(schema, value, path)
        if logical == "timestamp-millis":
            stamp = parse_timestamp(value, path)
            if stamp.microsecond % 1000:
                raise JsonLineError(path, f"{_kind(value)} is more precise than milliseconds")
            return stamp
        if logical == "date":
            return _date_to(value, path)
        if kind == "record":
            return self.record_to(schema, value, path)
        if kind == "enum":
            if value not in schema["symbols"]:
                raise JsonLineError(path, f"expected one of {_symbols(schema)}, not {_kind(value)}")
            return value
        if kind == "array":
            if not isinstance(value, list):
                raise JsonLineError(path, f"expected a list, not {_kind(value)}")
            return [self.to_datum(schema["items"], v, f"{path}[{i}]") for i, v in enumerate(value)]
        if kind == "map":
            if not isinstance(value, dict):
                raise JsonLineError(path, f"expected an object, not {_kind(value)}")
            return {
                k: self.to_datum(schema["values"], v, _key_path(path, k)) for k, v in value.items()
            }
        if kind == "fixed":
            raw = _bytes_to(value, path)
            if len(raw) != schema["size"]:
                raise JsonLineError(path, f"expected {schema['size']} bytes, got {len(raw)}")
            return raw
        return _primitive_to(kind, value, path)

    def record_to(self, schema: Any, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise JsonLineError(path, f"expected an object ({_short(schema)}), not {_kind(value)}")
        names = [f["name"] for f in schema["fields"]]
        for key in value:
            if key not in names:
                hint = difflib.get_close_matches(key, names, n=1)
                suggestion = f"did you mean {hint[0]!r}? " if hint else ""
                raise JsonLineError(
                    _join(path, key),
                    f"unknown field; {suggestion}{_short(schema)} has: {', '.join(names)}",
                )
        datum: dict[str, Any] = {}
        for field in schema["fields"]:
            name, field_path = field["name"], _join(path, field["name"])
            if name in value:
                datum[name] = self.to_datum(field["type"], value[name], field_path)
            elif "default" in field:
                datum[name] = self.default(field["type"], field["default"])
            else:
                raise JsonLineError(
                    field_path,
                    f"required field is missing; expected {self._describe(field['type'])}",
                )
        return datum

    def _union_to(self, schema: list[Any], value: Any, path: str) -> Any:
        if value is None:
            if "null" in schema:
                return None
            raise JsonLineError(path, f"expected {self._describe(schema)}, not null")
        branches = [self._resolve(b) for b in schema if b != "null"]
        if len(branches) == 1:
            return self.to_datum(branches[0], value, path)
        records = _record_branches(branches, path)
        if not isinstance(value, dict) or "type" not in value:
            raise JsonLineError(path, f"expected {self._describe(schema)}, not {_kind(value)}")
        chosen = records.get(value["type"]) if isinstance(value["type"], str) else None
        if chosen is None:
            raise JsonLineError(
                _join(path, "type"),
                f"expected one of {', '.join(records)}, not {_kind(value['type'])}",
            )
        fields = {k: v for k, v in value.items() if k != "type"}
        return (chosen["name"], self.record_to(chosen, fields, path))

    def default(self, schema: Any, value: Any) -> Any:
        """A field default (Avro's JSON encoding of it) as a datum."""
        schema = self._resolve(schema)
        if isinstance(schema, list):
            return self.default(schema[0], value)  # Avro: a union's default is of its first branch
        if isinstance(schema, str):
            return value.encode("latin-1") if schema == "bytes" else value
        kind, logical = schema["type"], schema.get("logicalType")
        if kind == "record":
            return {
                f["name"]: self.default(
                    f["type"], value[f["name"]] if f["name"] in value else f["default"]
                )
                for f in schema["fields"]
            }
        if kind == "array":
            return [self.default(schema["items"], v) for v in value]
        if kind == "map":
            return {k: self.default(schema["values"], v) for k, v in value.items()}
        if logical == "decimal":
            unscaled = int.from_bytes(value.encode("latin-1"), "big", signed=True)
            return Decimal(unscaled).scaleb(-schema.get("scale", 0))
        if logical == "timestamp-millis":
            return _EPOCH + timedelta(milliseconds=value)
        if logical == "date":
            return _EPOCH_DATE + timedelta(days=value)
        if kind in ("bytes", "fixed"):
            return value.encode("latin-1")
        return value

    def _describe(self, schema: Any) -> str:
        schema = self._resolve(schema)
        if isinstance(schema, list):
            branches = [self._resolve(b) for b in schema if b != "null"]
            if len(branches) == 1:
                described = self._describe(branches[0])
            else:
                names = ", ".join(_short(b) for b in branches if isinstance(b, dict))
                described = f'an object with "type": one of {names}'
            return f"{described} or null" if "null" in schema else described
        kind = schema if isinstance(schema, str) else schema["type"]
        logical = None if isinstance(schema, str) else schema.get("logicalType")
        if logical == "decimal":
            return 'a decimal string such as "19.99"'
        if logical == "timestamp-millis":
            return _EXPECTED_TIMESTAMP
        if logical == "date":
            return 'a date such as "2026-11-26"'
        if kind == "record":
            return f"an object ({_short(schema)})"
        if kind == "enum":
            return f"one of {_symbols(schema)}"
        return _PRIMITIVE_DESCRIPTIONS.get(kind, kind)

    # datum -> JSON

    def from_datum(self, schema: Any, value: Any, path: str) -> Any:
        schema = self._resolve(schema)
        if isinstance(schema, list):
            return self._union_from(schema, value, path)
        kind = schema if isinstance(schema, str) else schema["type"]
        logical = None if isinstance(schema, str) else schema.get("logicalType")
        if logical == "decimal":
            return format(value, "f")  # plain notation, the datum's own scale
        if logical == "timestamp-millis":
            return format_timestamp(value)
        if logical == "date":
            return value.isoformat()
        if kind == "record":
            return self._record_from(schema, value, path)
        if kind == "array":
            return [
                self.from_datum(schema["items"], v, f"{path}[{i}]") for i, v in enumerate(value)
            ]
        if kind == "map":
            return {
                k: self.from_datum(schema["values"], v, _key_path(path, k))
                for k, v in value.items()
            }
        if kind in ("bytes", "fixed"):
            return base64.b64encode(value).decode("ascii")
        return value

    def _record_from(self, schema: Any, value: Any, path: str) -> dict[str, Any]:
        result = {}
        for field in schema["fields"]:
            name = field["name"]
            if name in value:
                item = value[name]
            elif "default" in field:  # the codec's writer fills defaults too
                item = self.default(field["type"], field["default"])
            else:
                raise JsonLineError(_join(path, name), "missing from the datum")
            result[name] = self.from_datum(field["type"], item, _join(path, name))
        return result

    def _union_from(self, schema: list[Any], value: Any, path: str) -> Any:
        if value is None:
            return None
        branches = [self._resolve(b) for b in schema if b != "null"]
        if len(branches) == 1:
            return self.from_datum(branches[0], value, path)
        by_name = {b["name"]: b for b in _record_branches(branches, path).values()}
        if not (isinstance(value, tuple) and len(value) == 2 and value[0] in by_name):
            raise JsonLineError(path, f"expected a (record name, fields) pair, not {value!r:.80}")
        chosen = by_name[value[0]]
        return {"type": _short(chosen), **self._record_from(chosen, value[1], path)}


_PRIMITIVE_DESCRIPTIONS = {
    "null": "null",
    "boolean": "true or false",
    "int": "an integer",
    "long": "an integer",
    "float": "a number",
    "double": "a number",
    "string": "a string",
    "bytes": "base64 text",
    "fixed": "base64 text",
    "array": "a list",
    "map": "an object",
}


def _primitive_to(kind: str, value: Any, path: str) -> Any:
    if kind == "null":
        ok = value is None
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "string":
        ok = isinstance(value, str)
    elif kind in _INT_RANGES:
        if not isinstance(value, int) or isinstance(value, bool):
            raise JsonLineError(path, f"expected an integer, not {_kind(value)}")
        bits = _INT_RANGES[kind]
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise JsonLineError(path, f"{value} is out of range for a {bits}-bit {kind}")
        return value
    elif kind in ("float", "double"):
        if isinstance(value, int | Decimal | float) and not isinstance(value, bool):
            return float(value)
        ok = False
    else:  # parse_schema admits no other primitive
        return _bytes_to(value, path)
    if not ok:
        raise JsonLineError(path, f"expected {_PRIMITIVE_DESCRIPTIONS[kind]}, not {_kind(value)}")
    return value


def _decimal_to(schema: Mapping[str, Any], value: Any, path: str) -> Decimal:
    if not isinstance(value, str) or not _DECIMAL_TEXT.fullmatch(value):
        raise JsonLineError(
            path, f'money must be a decimal string such as "19.99", not {_kind(value)}'
        )
    number = Decimal(value)
    scale, precision = schema.get("scale", 0), schema["precision"]
    places = len(value.partition(".")[2])
    if places > scale:
        raise JsonLineError(
            path, f"{value} has {places} decimal places; this field keeps at most {scale}"
        )
    digits = len(str(abs(int(number.scaleb(scale)))))
    if digits > precision:
        raise JsonLineError(
            path,
            f"{value} is too large: at most {precision - scale} digits before the decimal point "
            f"(precision {precision}, scale {scale})",
        )
    return number


def _date_to(value: Any, path: str) -> date:
    if isinstance(value, str) and _DATE_TEXT.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise JsonLineError(path, f'expected a date such as "2026-11-26", not {_kind(value)}')


def _bytes_to(value: Any, path: str) -> bytes:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            pass
    raise JsonLineError(path, f"expected base64 text, not {_kind(value)}")


def _record_branches(branches: list[Any], path: str) -> dict[str, Any]:
    """The branches of a union of records by short name; other unions have no friendly form."""
    if not all(isinstance(b, dict) and b["type"] == "record" for b in branches):
        raise JsonLineError(path, "unions other than [null, X] or of records are not supported")
    return {_short(b): b for b in branches}


def _short(schema: Mapping[str, Any]) -> str:
    return str(schema["name"]).rsplit(".", 1)[-1]


def _symbols(schema: Mapping[str, Any]) -> str:
    return ", ".join(schema["symbols"])


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _key_path(path: str, key: str) -> str:
    return _join(path, key) if key.isidentifier() else f"{path}[{json.dumps(key)}]"


def _kind(value: Any) -> str:
    """How a JSON value reads in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | float | Decimal):
        return f"the number {value}"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return f"the string {text if len(text) <= 60 else text[:57] + '...'}"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _reject_constant(name: str) -> Any:
    raise JsonLineError("", f"invalid JSON: {name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JsonLineError("", f"invalid JSON: the key {key!r} appears twice in one object")
        result[key] = value
    return result
