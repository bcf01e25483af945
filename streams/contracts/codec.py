"""Every Avro read and write in erpbridge goes through `Codec`.

Two framings, detected per message by the reader:
- Avro single-object encoding (the default; no registry): C3 01, the writer schema's
  8-byte CRC-64-AVRO fingerprint (little-endian), then the Avro body.
- Confluent wire format (when a schema registry is configured): 00, a 4-byte big-endian
  schema id, then the Avro body.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import validate

from streams.contracts.schema_store import SchemaStore, StoredSchema, from_expanded
from streams.ops.settings import Settings

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_SINGLE_OBJECT_HEADER = len(SINGLE_OBJECT_MAGIC) + 8
_CONFLUENT_HEADER = len(CONFLUENT_MAGIC) + 4


class Framing(Enum):
    SINGLE_OBJECT = "single-object"
    CONFLUENT = "confluent"


class DecodeError(Exception):
    """The bytes can never be decoded: the message belongs in a dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class EncodeError(ValueError):
    """A datum does not fit its schema."""


@dataclass(frozen=True)
class Decoded:
    schema_name: str
    framing: Framing
    datum: dict[str, Any]


class Codec:
    def __init__(self, store: SchemaStore, registry: Any | None = None) -> None:
        """`registry` is a confluent_kafka SchemaRegistryClient; with one, writers use its framing."""
        self._store = store
        self._registry = registry
        self._registered: dict[tuple[str, str], int] = {}
        self._registry_schemas: dict[int, StoredSchema] = {}

    @property
    def store(self) -> SchemaStore:
        return self._store

    @property
    def framing(self) -> Framing:
        return Framing.CONFLUENT if self._registry is not None else Framing.SINGLE_OBJECT

    def encode(self, schema_name: str, datum: Mapping[str, Any], *, topic: str) -> bytes:
        schema = self._store.current(schema_name)
        body = io.BytesIO()
        try:
            schemaless_writer(body, schema.parsed, datum)
        except Exception as exc:
            raise EncodeError(_explain(schema, datum, exc)) from exc
        if self._registry is None:
            return SINGLE_OBJECT_MAGIC + schema.fingerprint + body.getvalue()
        schema_id = self._schema_id(f"{topic}-value", schema)
        return CONFLUENT_MAGIC + schema_id.to_bytes(4, "big") + body.getvalue()

    def decode(self, data: bytes | None, *, expected: str | None = None) -> Decoded:
        """Decode to the current version of the writer's schema; `expected` names the only one allowed.

        Raises DecodeError for bytes that no retry can fix. Other exceptions (a registry
        that does not answer) are transient and propagate.
        """
        if not data:
            raise DecodeError("empty", "the record has no value")
        if data[:2] == SINGLE_OBJECT_MAGIC:
            framing = Framing.SINGLE_OBJECT
            if len(data) < _SINGLE_OBJECT_HEADER:
                raise DecodeError("truncated", f"{len(data)} bytes, shorter than the header")
            writer = self._store.by_fingerprint(data[2:_SINGLE_OBJECT_HEADER])
            if writer is None:
                raise DecodeError(
                    "unknown-fingerprint",
                    f"writer schema fingerprint {data[2:_SINGLE_OBJECT_HEADER].hex()} is not in "
                    "the schema store",
                )
            body = data[_SINGLE_OBJECT_HEADER:]
        elif data[:1] == CONFLUENT_MAGIC:
            framing = Framing.CONFLUENT
            if len(data) < _CONFLUENT_HEADER:
                raise DecodeError("truncated", f"{len(data)} bytes, shorter than the header")
            writer = self._writer_from_registry(int.from_bytes(data[1:_CONFLUENT_HEADER], "big"))
            body = data[_CONFLUENT_HEADER:]
        else:
            raise DecodeError(
                "unknown-framing",
                f"first bytes {data[:2].hex() or '(empty)'} are neither single-object (c301) "
                "nor Confluent (00) framing",
            )
        if expected is not None and writer.name != expected:
            raise DecodeError("wrong-schema", f"expected {expected}, got {writer.name}")
        reader = self._reader_for(writer)
        stream = io.BytesIO(body)
        try:
            datum = schemaless_reader(
                stream,
                writer.parsed,
                reader.parsed,
                return_record_name=True,
                return_record_name_override=True,
            )
        except Exception as exc:
            # fastavro signals a short body with EOFError/StopIteration and garbage with
            # assorted errors; none of them can be fixed by retrying.
            reason = "truncated" if isinstance(exc, EOFError | StopIteration) else "corrupt"
            raise DecodeError(reason, f"{writer.name}: {type(exc).__name__}: {exc}") from exc
        if stream.tell() != len(body):
            raise DecodeError(
                "corrupt", f"{writer.name}: {len(body) - stream.tell()} bytes left after the record"
            )
        if not isinstance(datum, dict):
            raise DecodeError("corrupt", f"{writer.name}: decoded to {type(datum).__name__}")
        return Decoded(reader.name, framing, datum)

    def _reader_for(self, writer: StoredSchema) -> StoredSchema:
        try:
            return self._store.current(writer.name)
        except KeyError:
            raise DecodeError(
                "unknown-schema", f"{writer.name} is not a schema of this store"
            ) from None

    def _schema_id(self, subject: str, schema: StoredSchema) -> int:
        from confluent_kafka.schema_registry import Schema

        key = (subject, schema.canonical)
        if key not in self._registered:
            assert self._registry is not None
            self._registered[key] = self._registry.register_schema(
                subject, Schema(json.dumps(schema.expanded), "AVRO")
            )
        return self._registered[key]

    def _writer_from_registry(self, schema_id: int) -> StoredSchema:
        if schema_id in self._registry_schemas:
            return self._registry_schemas[schema_id]
        if self._registry is None:
            raise DecodeError(
                "no-registry",
                f"Confluent-framed message (schema id {schema_id}) but no schema registry is "
                "configured (ERPBRIDGE_SCHEMA_REGISTRY_URL)",
            )
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            registered = self._registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise DecodeError("unknown-schema-id", f"schema id {schema_id}: {exc}") from exc
            raise
        try:
            writer = from_expanded(json.loads(registered.schema_str))
        except Exception as exc:
            raise DecodeError(
                "unknown-schema-id", f"schema id {schema_id} is not Avro: {exc}"
            ) from exc
        self._registry_schemas[schema_id] = writer
        return writer


def _explain(schema: StoredSchema, datum: Mapping[str, Any], exc: Exception) -> str:
    try:
        validate(datum, schema.parsed, raise_errors=True)
    except Exception as detailed:
        return f"{schema.name}: {detailed}"
    return f"{schema.name}: {type(exc).__name__}: {exc}"


def codec_from_settings(settings: Settings) -> Codec:
    store = SchemaStore.from_directory(settings.schemas_dir)
    if not settings.schema_registry_url:
        return Codec(store)
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return Codec(store, SchemaRegistryClient({"url": settings.schema_registry_url}))
