"""Avro backward compatibility: can a consumer on the NEW schema read everything the OLD one wrote?

`check_backward` applies the schema-resolution rules of the Avro specification to two
expanded schemas, without a registry. `compare_with_ref` runs it both ways for every topic
value schema against the version at a git ref (producers and consumers upgrade
independently, so the gate is full compatibility), and also demands that the ref's version of a
changed schema is kept in schemas/history/, so the embedded store still decodes messages
from producers that have not upgraded. The one exception is a break old readers cannot
avoid, a new branch of a union (a new kind of ERP command): each is listed, with why and
which consumers upgrade first, in schemas/consumers-first.json. `python -m streams.contracts.schema_compat freeze --ref REF`
writes those history files.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from streams.contracts.schema_store import (
    HISTORY_DIR,
    StoredSchema,
    history_file_name,
    load_file,
    topic_schema_names,
)
from streams.ops.settings import REPO_ROOT

AvroSchema = dict[str, Any] | list[Any] | str

BASE_REF_ENV = "ERPBRIDGE_SCHEMA_BASE_REF"
DEFAULT_BASE_REFS = ("origin/main", "main")

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
# (writer type, reader type): the conversions a reader applies on its own.
_PROMOTIONS = frozenset(
    {
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    }
)


class Kind(StrEnum):
    TYPE = "type mismatch"
    NAME = "name mismatch"
    MISSING_FIELD = "new field without default"
    ENUM_SYMBOL = "enum symbol dropped"
    UNION_BRANCH = "union branch unreadable"
    FIXED_SIZE = "fixed size changed"
    DECIMAL = "decimal precision/scale changed"


@dataclass(frozen=True)
class Incompatibility:
    path: str
    """Where the reader fails, e.g. erpbridge.OrderEvent.event[erpbridge.OrderPlaced].lines[].unit_price."""
    kind: Kind
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}: {self.detail}"


def check_backward(reader: AvroSchema, writer: AvroSchema) -> list[Incompatibility]:
    """Everything that stops `reader` (the new schema) from reading data written with `writer`."""
    reader_names: dict[str, dict[str, Any]] = {}
    writer_names: dict[str, dict[str, Any]] = {}
    root = _normalize(reader, "", reader_names)
    resolver = _Resolver(reader_names, writer_names)
    resolver.check(root, _normalize(writer, "", writer_names), _label(root, reader_names))
    return resolver.found


def _full_name(name: str, namespace: str | None, enclosing: str) -> str:
    if "." in name:
        return name
    space = enclosing if namespace is None else namespace
    return f"{space}.{name}" if space else name


def _normalize(schema: Any, namespace: str, names: dict[str, dict[str, Any]]) -> Any:
    """`schema` with every named type replaced by its full name, definitions collected in `names`.

    Comparison visits the two schemas in its own order, not document order, so a name
    referenced after its first definition must be resolvable from anywhere.
    """
    if isinstance(schema, list):
        return [_normalize(branch, namespace, names) for branch in schema]
    if isinstance(schema, str):
        return schema if schema in _PRIMITIVES else _full_name(schema, None, namespace)
    kind = schema["type"]
    if kind in _NAMED:
        full = _full_name(schema["name"], schema.get("namespace"), namespace)
        inner = full.rpartition(".")[0]
        node = {k: v for k, v in schema.items() if k != "namespace"}
        node["name"] = full
        node["aliases"] = [_full_name(a, None, inner) for a in schema.get("aliases", ())]
        if kind in ("record", "error"):
            node["type"] = "record"
            node["fields"] = [
                {**f, "type": _normalize(f["type"], inner, names)} for f in schema["fields"]
            ]
        names[full] = node
        return full
    if kind == "array":
        return {**schema, "items": _normalize(schema["items"], namespace, names)}
    if kind == "map":
        return {**schema, "values": _normalize(schema["values"], namespace, names)}
    if isinstance(kind, str) and kind in _PRIMITIVES:
        return schema  # keeps logicalType and its parameters
    return _normalize(kind, namespace, names)  # {"type": <schema>} wraps another schema


def _deref(schema: Any, names: Mapping[str, dict[str, Any]]) -> Any:
    if isinstance(schema, str) and schema not in _PRIMITIVES:
        try:
            return names[schema]
        except KeyError:
            raise ValueError(f"schema references undefined type {schema!r}") from None
    return schema


def _type(schema: Any) -> str:
    return schema if isinstance(schema, str) else str(schema["type"])


def _label(schema: Any, names: Mapping[str, dict[str, Any]]) -> str:
    """How a path names a (union branch) schema: its full name, else its type."""
    resolved = _deref(schema, names)
    if isinstance(resolved, list):
        return "union"
    return str(resolved["name"]) if _type(resolved) in _NAMED else _type(resolved)


def _describe(schema: Any) -> str:
    if isinstance(schema, str) or _type(schema) in _NAMED:
        return _label(schema, {})
    logical = schema.get("logicalType")
    if logical == "decimal":
        return f"{schema['type']} (decimal {schema.get('precision')},{schema.get('scale', 0)})"
    return f"{schema['type']} ({logical})" if logical else _type(schema)


def _decimal(schema: Any) -> tuple[Any, Any] | None:
    if isinstance(schema, dict) and schema.get("logicalType") == "decimal":
        return schema.get("precision"), schema.get("scale", 0)
    return None


def _names_match(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    return bool(writer["name"] == reader["name"] or writer["name"] in reader["aliases"])


def _shallow_match(reader: Any, writer: Any) -> bool:
    """The spec's "match" that picks a reader union branch; the branch is then checked in depth."""
    reader_type, writer_type = _type(reader), _type(writer)
    if reader_type != writer_type:
        return (writer_type, reader_type) in _PROMOTIONS
    return _names_match(reader, writer) if reader_type in _NAMED else True


class _Resolver:
    def __init__(self, reader_names: dict[str, Any], writer_names: dict[str, Any]) -> None:
        self._reader_names = reader_names
        self._writer_names = writer_names
        # (reader, writer) record pairs already checked: recursive types terminate, and a
        # shared type is reported once, at the first path that reaches it.
        self._seen: set[tuple[str, str]] = set()
        self.found: list[Incompatibility] = []

    def _report(self, path: str, kind: Kind, detail: str) -> None:
        self.found.append(Incompatibility(path, kind, detail))

    def check(self, reader: Any, writer: Any, path: str) -> None:
        r = _deref(reader, self._reader_names)
        w = _deref(writer, self._writer_names)
        if isinstance(w, list):
            # Any writer branch may occur, so each must be readable on its own.
            for branch in w:
                self.check(r, branch, f"{path}[{_label(branch, self._writer_names)}]")
            return
        if isinstance(r, list):
            self._check_into_union(r, w, path)
            return
        # The spec lets decimals match only with equal precision and scale: the same
        # unscaled bytes under another scale are another number. Adding or removing the
        # logical type reinterprets the bytes the same way.
        if _decimal(r) != _decimal(w):
            self._report(path, Kind.DECIMAL, f"writer {_describe(w)} read as {_describe(r)}")
            return
        reader_type, writer_type = _type(r), _type(w)
        if reader_type == writer_type == "record":
            self._check_record(r, w, path)
        elif reader_type == writer_type == "enum":
            self._check_enum(r, w, path)
        elif reader_type == writer_type == "fixed":
            if not _names_match(r, w):
                self._report(path, Kind.NAME, f"writer fixed {w['name']} read as {r['name']}")
            elif r["size"] != w["size"]:
                self._report(path, Kind.FIXED_SIZE, f"writer size {w['size']}, reader {r['size']}")
        elif reader_type == writer_type == "array":
            self.check(r["items"], w["items"], f"{path}[]")
        elif reader_type == writer_type == "map":
            self.check(r["values"], w["values"], f"{path}{{}}")
        elif reader_type != writer_type and (writer_type, reader_type) not in _PROMOTIONS:
            self._report(path, Kind.TYPE, f"writer {_describe(w)} cannot be read as {_describe(r)}")

    def _check_into_union(self, branches: list[Any], writer: Any, path: str) -> None:
        resolved = [_deref(b, self._reader_names) for b in branches]
        candidates = [b for b in resolved if _shallow_match(b, writer)]
        if not candidates:
            offered = ", ".join(_label(b, self._reader_names) for b in branches)
            self._report(
                path,
                Kind.UNION_BRANCH,
                f"no branch of the reader's union [{offered}] reads writer {_describe(writer)}",
            )
            return
        # Like Avro's resolvers, prefer the branch of the writer's own type over a promotion.
        candidates.sort(key=lambda b: _type(b) != _type(writer))
        self.check(candidates[0], writer, path)

    def _check_record(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        if not _names_match(reader, writer):
            self._report(
                path, Kind.NAME, f"writer record {writer['name']} read as {reader['name']}"
            )
            return
        pair = (reader["name"], writer["name"])
        if pair in self._seen:
            return
        self._seen.add(pair)
        written = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            source = next(
                (written[n] for n in (field["name"], *field.get("aliases", ())) if n in written),
                None,
            )
            field_path = f"{path}.{field['name']}"
            if source is not None:
                self.check(field["type"], source["type"], field_path)
            elif "default" not in field:
                self._report(
                    field_path,
                    Kind.MISSING_FIELD,
                    f"old data has no {field['name']!r} and the reader gives no default",
                )

    def _check_enum(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        if not _names_match(reader, writer):
            self._report(path, Kind.NAME, f"writer enum {writer['name']} read as {reader['name']}")
            return
        dropped = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if dropped and "default" not in reader:
            self._report(
                path,
                Kind.ENUM_SYMBOL,
                f"reader lacks writer symbols {', '.join(dropped)} and has no enum default",
            )


@dataclass(frozen=True)
class MissingHistory:
    """The ref's version of a changed schema, absent from schemas/history/."""

    version: StoredSchema
    ref: str
    path: Path
    """Where the history file belongs: <schemas>/history/<full name>.<fingerprint hex>.avsc."""

    @property
    def file_name(self) -> str:
        return self.path.name

    @property
    def command(self) -> str:
        return f"python -m streams.contracts.schema_compat freeze --ref {shlex.quote(self.ref)}"

    def __str__(self) -> str:
        return (
            f"{self.version.name} changed since {self.ref}, whose producers still write that "
            f"version: add {self.path} with `{self.command}`"
        )


@dataclass(frozen=True)
class CompatReport:
    ref: str
    new: tuple[str, ...]
    """Topic schemas absent at `ref`: nothing old to read."""
    incompatibilities: tuple[Incompatibility, ...]
    """What stops consumers on the new schema from reading what old producers wrote."""
    forward_incompatibilities: tuple[Incompatibility, ...]
    """What stops consumers still on `ref`'s schema from reading what upgraded producers write."""
    missing_history: tuple[MissingHistory, ...]
    consumers_first: tuple[Incompatibility, ...] = ()
    """Forward breaks listed in schemas/consumers-first.json: their consumers upgrade first."""

    @property
    def ok(self) -> bool:
        return not (
            self.incompatibilities or self.forward_incompatibilities or self.missing_history
        )

    def problems(self) -> list[str]:
        return [
            *(f"new readers: {p}" for p in self.incompatibilities),
            *(f"old readers: {p}" for p in self.forward_incompatibilities),
            *(str(p) for p in self.missing_history),
        ]


def _git(repo: Path, *args: str) -> bytes:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.decode().strip()}")
    return result.stdout


def _is_commit(repo: Path, ref: str) -> bool:
    verify = ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"]
    return subprocess.run(verify, capture_output=True, check=False).returncode == 0


def resolve_base_ref(repo: Path, env: Mapping[str, str] | None = None) -> str | None:
    """$ERPBRIDGE_SCHEMA_BASE_REF, else origin/main, else main; None when no base exists."""
    explicit = (os.environ if env is None else env).get(BASE_REF_ENV)
    if explicit:
        if not _is_commit(repo, explicit):
            raise ValueError(f"{BASE_REF_ENV}={explicit} does not name a commit in {repo}")
        return explicit
    return next((ref for ref in DEFAULT_BASE_REFS if _is_commit(repo, ref)), None)


def _versions_at(schemas_dir: Path, ref: str, repo: Path) -> dict[str, StoredSchema]:
    """The topic value schemas as they are at `ref`, by name; absent ones are left out."""
    if not _is_commit(repo, ref):
        raise ValueError(f"{ref!r} does not name a commit in {repo}")
    relative = schemas_dir.resolve().relative_to(repo.resolve()).as_posix()
    listing = _git(repo, "ls-tree", "-z", "--name-only", ref, "--", f"{relative}/")
    with tempfile.TemporaryDirectory() as tmp:
        # All files, not only the topic schemas: fastavro resolves references from siblings.
        for path in filter(None, listing.decode().split("\0")):
            if path.endswith(".avsc"):
                target = Path(tmp) / PurePosixPath(path).name
                target.write_bytes(_git(repo, "show", f"{ref}:{path}"))
        candidates = {name: Path(tmp) / f"{name}.avsc" for name in topic_schema_names()}
        return {name: load_file(p) for name, p in candidates.items() if p.exists()}


def _in_history(path: Path, version: StoredSchema) -> bool:
    # The store indexes history by computed fingerprint, so the name alone proves nothing.
    return path.exists() and load_file(path).fingerprint == version.fingerprint


def compare_with_ref(schemas_dir: Path, ref: str, repo: Path) -> CompatReport:
    """Check the working tree's topic schemas in `schemas_dir` against their versions at `ref`.

    `repo` is the top of the git work tree that holds `schemas_dir`.
    """
    before = _versions_at(schemas_dir, ref, repo)
    new: list[str] = []
    found: list[Incompatibility] = []
    forward: list[Incompatibility] = []
    missing: list[MissingHistory] = []
    for name in topic_schema_names():
        current = load_file(schemas_dir / f"{name}.avsc")
        old = before.get(name)
        if old is None:
            new.append(name)
            continue
        found += check_backward(current.expanded, old.expanded)
        forward += check_backward(old.expanded, current.expanded)
        history = schemas_dir / HISTORY_DIR / history_file_name(old)
        if old.fingerprint != current.fingerprint and not _in_history(history, old):
            missing.append(MissingHistory(old, ref, history))
    listed = consumers_first(schemas_dir)
    acknowledged = tuple(i for i in forward if i.kind is Kind.UNION_BRANCH and i.path in listed)
    return CompatReport(
        ref,
        tuple(new),
        tuple(found),
        tuple(i for i in forward if i not in acknowledged),
        tuple(missing),
        acknowledged,
    )


CONSUMERS_FIRST = "consumers-first.json"


def consumers_first(schemas_dir: Path) -> set[str]:
    """The union branches old consumers cannot read, each listed with its reason."""
    path = schemas_dir / CONSUMERS_FIRST
    if not path.exists():
        return set()
    entries = json.loads(path.read_text())
    for entry in entries:
        if not entry.get("why") or not entry.get("upgrade_first"):
            raise ValueError(f"{path}: {entry.get('path')!r} needs a why and an upgrade_first")
    return {entry["path"] for entry in entries}


def freeze(schemas_dir: Path, ref: str, repo: Path) -> list[Path]:
    """Write the history files `compare_with_ref` asks for; returns the files written."""
    written: list[Path] = []
    for entry in compare_with_ref(schemas_dir, ref, repo).missing_history:
        entry.path.parent.mkdir(exist_ok=True)
        entry.path.write_text(json.dumps(entry.version.expanded, indent=2) + "\n")
        written.append(entry.path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.contracts.schema_compat")
    commands = parser.add_subparsers(dest="command", required=True)
    freeze_command = commands.add_parser(
        "freeze", help=f"keep REF's versions of changed topic schemas in schemas/{HISTORY_DIR}/"
    )
    freeze_command.add_argument("--ref", required=True, help="git ref of the released schemas")
    freeze_command.add_argument("--repo", type=Path, default=REPO_ROOT, help="git work tree")
    freeze_command.add_argument("--schemas", type=Path, help="schema directory (REPO/schemas)")
    args = parser.parse_args(argv)
    written = freeze(args.schemas or args.repo / "schemas", args.ref, args.repo)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"nothing to freeze: every topic schema changed since {args.ref} is in history")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
