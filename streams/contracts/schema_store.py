"""The Avro schemas in schemas/ as an embedded schema store, addressed by name or fingerprint.

schemas/ holds one file per named type (fastavro resolves references between them);
schemas/history/ holds earlier released versions of top-level schemas (fully expanded,
logical types kept), so events written by producers that have not upgraded still decode.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

from streams.contracts.topics import SPECS

HISTORY_DIR = "history"


@dataclass(frozen=True)
class StoredSchema:
    name: str
    expanded: dict[str, Any]
    """The whole schema as JSON-ready data, named types inlined: what registries store."""
    parsed: Any
    """fastavro's parsed form, ready for readers and writers."""
    canonical: str
    """Avro Parsing Canonical Form: what fingerprints and registries compare."""
    fingerprint: bytes
    """CRC-64-AVRO of the canonical form, little-endian as single-object encoding writes it."""


def from_expanded(expanded: dict[str, Any]) -> StoredSchema:
    parsed = parse_schema(expanded)
    canonical = to_parsing_canonical_form(parsed)
    crc = int(fingerprint(canonical, "CRC-64-AVRO"), 16)
    return StoredSchema(expanded["name"], expanded, parsed, canonical, crc.to_bytes(8, "little"))


def topic_schema_names() -> tuple[str, ...]:
    return tuple(s.value_schema for s in SPECS if s.value_schema is not None)


def load_file(path: Path) -> StoredSchema:
    expanded = load_schema(str(path), _write_hint=False)
    if not isinstance(expanded, dict):
        raise ValueError(f"{path}: a top-level schema must be a record, not {expanded!r:.60}")
    return from_expanded(expanded)


def history_file_name(schema: StoredSchema) -> str:
    return f"{schema.name}.{schema.fingerprint.hex()}.avsc"


class SchemaStore:
    """Current schemas by name, and every known writer schema by fingerprint."""

    def __init__(self, current: Iterable[StoredSchema], history: Iterable[StoredSchema] = ()):
        self._current = {s.name: s for s in current}
        self._by_fingerprint = {s.fingerprint: s for s in history}
        self._by_fingerprint.update({s.fingerprint: s for s in self._current.values()})

    @classmethod
    def from_directory(cls, directory: Path, names: Iterable[str] | None = None) -> SchemaStore:
        if not directory.is_dir():
            raise FileNotFoundError(f"schema directory {directory} does not exist")
        wanted = topic_schema_names() if names is None else tuple(names)
        current = []
        for name in wanted:
            path = directory / f"{name}.avsc"
            if not path.exists():
                raise FileNotFoundError(f"schema {name} not found: expected {path}")
            current.append(load_file(path))
        history = [load_file(p) for p in sorted((directory / HISTORY_DIR).glob("*.avsc"))]
        return cls(current, history)

    def current(self, name: str) -> StoredSchema:
        try:
            return self._current[name]
        except KeyError:
            raise KeyError(f"no schema named {name!r} in the store") from None

    def by_fingerprint(self, value: bytes) -> StoredSchema | None:
        return self._by_fingerprint.get(value)

    def names(self) -> tuple[str, ...]:
        return tuple(self._current)
