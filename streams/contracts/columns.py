"""The columnar form of a topic's records, for analysts (`erpbridge export`): the Avro schema
as an Arrow schema, each decoded datum as a row of it.

Types stay what the contract says: a decimal is a decimal of its precision and scale, a
timestamp-millis a UTC timestamp, a record a struct, an array a list, an enum its symbol.
`[null, X]` is a nullable X; a union of records (an ERP command's body, an order event) is a
struct of a `type` (the record's short name, as in the friendly JSON form) and one nullable
field per record, of which only the chosen one is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from streams.contracts.schema_store import StoredSchema

_PRIMITIVES: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "string": pa.string(),
    "bytes": pa.binary(),
}


class Columns:
    """One value schema's Arrow form."""

    def __init__(self, schema: StoredSchema) -> None:
        self._named: Mapping[str, Any] = schema.parsed["__named_schemas"]
        self._root = schema.parsed
        self.type: pa.StructType = self._arrow(self._root)

    def row(self, datum: Any) -> dict[str, Any]:
        """The datum (as the codec decodes it) as a value of `type`."""
        value: dict[str, Any] = self._value(self._root, datum)
        return value

    def _resolve(self, schema: Any) -> Any:
        return self._named.get(schema, schema) if isinstance(schema, str) else schema

    def _arrow(self, schema: Any) -> pa.DataType:
        schema = self._resolve(schema)
        if isinstance(schema, list):
            branches = [self._resolve(b) for b in schema if b != "null"]
            if len(branches) == 1:
                return self._arrow(branches[0])
            return pa.struct(
                [pa.field("type", pa.string())]
                + [pa.field(_short(b), self._arrow(b)) for b in branches]
            )
        if isinstance(schema, str):
            return _PRIMITIVES[schema]
        logical = schema.get("logicalType")
        if logical == "decimal":
            return pa.decimal128(schema["precision"], schema.get("scale", 0))
        if logical == "timestamp-millis":
            return pa.timestamp("ms", tz="UTC")
        if logical == "date":
            return pa.date32()
        kind = schema["type"]
        if kind == "record":
            return pa.struct(
                [
                    pa.field(f["name"], self._arrow(f["type"]), nullable=_nullable(f["type"]))
                    for f in schema["fields"]
                ]
            )
        if kind == "enum":
            return pa.string()
        if kind == "array":
            return pa.list_(self._arrow(schema["items"]))
        if kind == "map":
            return pa.map_(pa.string(), self._arrow(schema["values"]))
        if kind == "fixed":
            return pa.binary(schema["size"])
        return _PRIMITIVES[kind]

    def _value(self, schema: Any, value: Any) -> Any:
        schema = self._resolve(schema)
        if value is None:
            return None
        if isinstance(schema, list):
            branches = [self._resolve(b) for b in schema if b != "null"]
            if len(branches) == 1:
                return self._value(branches[0], value)
            name, fields = value
            chosen = next(b for b in branches if b["name"] == name)
            return {"type": _short(chosen), _short(chosen): self._value(chosen, fields)}
        if isinstance(schema, str) or schema.get("logicalType"):
            return value
        kind = schema["type"]
        if kind == "record":
            return {
                f["name"]: self._value(f["type"], value.get(f["name"], f.get("default")))
                for f in schema["fields"]
            }
        if kind == "array":
            return [self._value(schema["items"], v) for v in value]
        if kind == "map":
            return [(k, self._value(schema["values"], v)) for k, v in value.items()]
        return value


def _nullable(schema: Any) -> bool:
    return isinstance(schema, list) and "null" in schema


def _short(schema: Mapping[str, Any]) -> str:
    return str(schema["name"]).rsplit(".", 1)[-1]
