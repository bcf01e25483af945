"""Avro backward-compatibility rules, a breaking edit to a scratch copy of schemas/, and the gate
that compares the working tree's schemas with the version on main."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams.contracts.schema_compat import (
    BASE_REF_ENV,
    CONSUMERS_FIRST,
    Kind,
    check_backward,
    compare_with_ref,
    freeze,
    resolve_base_ref,
)
from streams.contracts.schema_store import HISTORY_DIR, SchemaStore, history_file_name, load_file
from streams.ops.settings import REPO_ROOT

SCHEMAS = REPO_ROOT / "schemas"
PLACED = "erpbridge.OrderEvent.event[erpbridge.OrderPlaced]"


def record(name: str, *fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "t", "fields": list(fields), **extra}


def field(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def found(reader: Any, writer: Any) -> list[tuple[str, Kind]]:
    return [(i.path, i.kind) for i in check_backward(reader, writer)]


def one_field(type_: Any) -> dict[str, Any]:
    return record("R", field("x", type_))


def decimal(precision: int, scale: int, type_: str = "bytes") -> dict[str, Any]:
    return {"type": type_, "logicalType": "decimal", "precision": precision, "scale": scale}


# --- records -------------------------------------------------------------------------------


def test_identical_record_is_compatible() -> None:
    schema = record("R", field("a", "string"), field("b", "int"))
    assert found(schema, schema) == []


def test_reader_field_missing_in_writer_needs_a_default() -> None:
    old = record("R", field("a", "string"))
    assert found(record("R", field("a", "string"), field("b", "int", default=0)), old) == []
    assert found(record("R", field("a", "string"), field("b", "int")), old) == [
        ("t.R.b", Kind.MISSING_FIELD)
    ]


def test_writer_field_absent_in_reader_is_skipped() -> None:
    assert (
        found(
            record("R", field("a", "string")), record("R", field("a", "string"), field("b", "int"))
        )
        == []
    )


def test_reader_field_alias_matches_a_renamed_writer_field() -> None:
    old = record("R", field("qty", "int"))
    assert found(record("R", field("quantity", "int", aliases=["qty"])), old) == []
    assert found(record("R", field("quantity", "int")), old) == [
        ("t.R.quantity", Kind.MISSING_FIELD)
    ]


def test_records_match_by_full_name_or_reader_alias() -> None:
    old = record("Old", field("a", "int"))
    assert found(record("New", field("a", "int")), old) == [("t.New", Kind.NAME)]
    assert found(record("New", field("a", "int"), aliases=["Old"]), old) == []
    other_namespace = {**old, "namespace": "elsewhere"}
    assert found(old, other_namespace) == [("t.Old", Kind.NAME)]


def test_full_name_and_namespace_spellings_are_the_same_name() -> None:
    spelled_out = {"type": "record", "name": "t.R", "fields": [field("a", "int")]}
    assert found(record("R", field("a", "int")), spelled_out) == []


def test_named_type_referenced_after_its_first_definition() -> None:
    inner_old = record("Money", field("amount", "long"))
    inner_new = record("Money", field("amount", "long"), field("currency", "string"))
    # The writer defines Money in `price` and refers to it by (short) name in `tax`; the
    # reader defines it in `tax` first, so the comparison must resolve names in both orders.
    old = record("R", field("price", inner_old), field("tax", "Money"))
    new = record("R", field("tax", inner_new), field("price", "t.Money"))
    assert found(new, old) == [("t.R.tax.currency", Kind.MISSING_FIELD)]


def test_recursive_type_terminates_and_reports_once() -> None:
    old = record("Node", field("value", "int"), field("next", ["null", "Node"], default=None))
    compatible = record(
        "Node", field("value", "long"), field("next", ["null", "Node"], default=None)
    )
    broken = record("Node", field("value", "string"), field("next", ["null", "Node"], default=None))
    assert found(compatible, old) == []
    assert found(broken, old) == [("t.Node.value", Kind.TYPE)]


# --- primitives and promotions --------------------------------------------------------------

PROMOTIONS = [
    ("int", "long"),
    ("int", "float"),
    ("int", "double"),
    ("long", "float"),
    ("long", "double"),
    ("float", "double"),
    ("string", "bytes"),
    ("bytes", "string"),
]


@pytest.mark.parametrize(("writer", "reader"), PROMOTIONS)
def test_promotion_is_compatible(writer: str, reader: str) -> None:
    assert found(one_field(reader), one_field(writer)) == []


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        ("long", "int"),
        ("double", "float"),
        ("float", "long"),
        ("int", "string"),
        ("boolean", "int"),
        ("null", "string"),
    ],
)
def test_narrowing_or_unrelated_primitive_is_incompatible(writer: str, reader: str) -> None:
    issues = check_backward(one_field(reader), one_field(writer))
    assert [(i.path, i.kind) for i in issues] == [("t.R.x", Kind.TYPE)]
    assert writer in issues[0].detail and reader in issues[0].detail


def test_primitive_in_long_form_equals_short_form() -> None:
    assert found(one_field({"type": "int"}), one_field("int")) == []


# --- enums ------------------------------------------------------------------------------------


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Colour", "namespace": "t", "symbols": list(symbols), **extra}


def test_enum_reader_may_add_symbols() -> None:
    assert found(one_field(enum("RED", "GREEN", "BLUE")), one_field(enum("RED", "GREEN"))) == []


def test_enum_symbol_missing_in_reader_is_incompatible_without_default() -> None:
    issues = check_backward(one_field(enum("RED")), one_field(enum("RED", "GREEN")))
    assert [(i.path, i.kind) for i in issues] == [("t.R.x", Kind.ENUM_SYMBOL)]
    assert "GREEN" in issues[0].detail


def test_enum_symbol_missing_in_reader_falls_back_to_enum_default() -> None:
    assert (
        found(one_field(enum("RED", "OTHER", default="OTHER")), one_field(enum("RED", "GREEN")))
        == []
    )


def test_enum_names_must_match() -> None:
    renamed = {**enum("RED"), "name": "Hue"}
    assert found(one_field(renamed), one_field(enum("RED"))) == [("t.R.x", Kind.NAME)]
    assert found(one_field({**renamed, "aliases": ["Colour"]}), one_field(enum("RED"))) == []


# --- unions -------------------------------------------------------------------------------------


def test_union_reader_covering_every_writer_branch_is_compatible() -> None:
    assert found(one_field(["null", "string", "int"]), one_field(["null", "string"])) == []


def test_union_writer_branch_missing_in_reader_is_incompatible() -> None:
    old = one_field(["null", "string", record("A", field("a", "int"))])
    assert found(one_field(["null", "string"]), old) == [("t.R.x[t.A]", Kind.UNION_BRANCH)]


def test_union_branches_read_through_promotion() -> None:
    assert found(one_field(["null", "long"]), one_field(["null", "int"])) == []


def test_union_reader_prefers_the_writer_own_type_over_a_promotion() -> None:
    # bytes -> string is a promotion, but it would lose the decimal; the bytes branch reads it.
    assert found(one_field(["null", "string", decimal(18, 4)]), one_field(decimal(18, 4))) == []


def test_non_union_writer_needs_a_matching_reader_branch() -> None:
    assert found(one_field(["null", "string"]), one_field("string")) == []
    assert found(one_field(["null", "double"]), one_field("int")) == []
    assert found(one_field(["null", "string"]), one_field("int")) == [("t.R.x", Kind.UNION_BRANCH)]


def test_union_writer_against_non_union_reader_needs_every_branch_readable() -> None:
    assert found(one_field("long"), one_field(["int", "long"])) == []
    assert found(one_field("string"), one_field(["null", "string"])) == [("t.R.x[null]", Kind.TYPE)]


def test_union_branch_record_is_checked_in_depth() -> None:
    old = one_field(["null", record("A", field("a", "int"))])
    new = one_field(["null", record("A", field("a", "int"), field("b", "int"))])
    assert found(new, old) == [("t.R.x[t.A].b", Kind.MISSING_FIELD)]


# --- arrays, maps, fixed ------------------------------------------------------------------------


def test_array_items_resolve_recursively() -> None:
    old = one_field({"type": "array", "items": "int"})
    assert found(one_field({"type": "array", "items": "long"}), old) == []
    assert found(one_field({"type": "array", "items": "string"}), old) == [("t.R.x[]", Kind.TYPE)]


def test_map_values_resolve_recursively() -> None:
    old = one_field({"type": "map", "values": "float"})
    assert found(one_field({"type": "map", "values": "double"}), old) == []
    assert found(one_field({"type": "map", "values": "int"}), old) == [("t.R.x{}", Kind.TYPE)]


def test_array_and_map_do_not_read_each_other() -> None:
    old = one_field({"type": "array", "items": "int"})
    assert found(one_field({"type": "map", "values": "int"}), old) == [("t.R.x", Kind.TYPE)]


def fixed(size: int, name: str = "Hash") -> dict[str, Any]:
    return {"type": "fixed", "name": name, "namespace": "t", "size": size}


def test_fixed_matches_by_name_and_size() -> None:
    assert found(one_field(fixed(16)), one_field(fixed(16))) == []
    assert found(one_field(fixed(32)), one_field(fixed(16))) == [("t.R.x", Kind.FIXED_SIZE)]
    assert found(one_field(fixed(16, "Digest")), one_field(fixed(16))) == [("t.R.x", Kind.NAME)]


# --- logical types ---------------------------------------------------------------------------


def test_decimal_with_same_precision_and_scale_is_compatible() -> None:
    assert found(one_field(decimal(18, 4)), one_field(decimal(18, 4))) == []


def fixed_decimal(precision: int, scale: int) -> dict[str, Any]:
    return {**fixed(8), **decimal(precision, scale, "fixed")}


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        (decimal(18, 4), decimal(18, 2)),
        (decimal(18, 4), decimal(20, 4)),
        (decimal(18, 4), "bytes"),
        ("bytes", decimal(18, 4)),
        (fixed_decimal(18, 4), fixed_decimal(18, 2)),
    ],
    ids=["scale", "precision", "logical-type-dropped", "logical-type-added", "fixed-scale"],
)
def test_decimal_change_is_incompatible(writer: Any, reader: Any) -> None:
    assert found(one_field(reader), one_field(writer)) == [("t.R.x", Kind.DECIMAL)]


def test_decimal_inside_a_union_is_compared() -> None:
    old = one_field(["null", decimal(18, 4)])
    assert found(one_field(["null", decimal(18, 4)]), old) == []
    assert found(one_field(["null", decimal(18, 2)]), old) == [("t.R.x[bytes]", Kind.DECIMAL)]


def test_other_logical_types_compare_their_underlying_type() -> None:
    millis = {"type": "long", "logicalType": "timestamp-millis"}
    date = {"type": "int", "logicalType": "date"}
    assert found(one_field(millis), one_field("long")) == []
    assert found(one_field("long"), one_field(millis)) == []
    assert found(one_field(millis), one_field(date)) == []  # int -> long promotion
    assert found(one_field(date), one_field(millis)) == [("t.R.x", Kind.TYPE)]


def test_incompatibility_reads_as_path_kind_and_detail() -> None:
    (issue,) = check_backward(one_field("int"), one_field("string"))
    assert str(issue) == "t.R.x: type mismatch: writer string cannot be read as int"


# --- scratch copies of the real schemas ----------------------------------------------------


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    directory = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, directory, ignore=shutil.ignore_patterns(HISTORY_DIR))
    return directory


def edit(directory: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / f"{name}.avsc"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def field_of(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def expanded(directory: Path, name: str = "erpbridge.OrderEvent") -> dict[str, Any]:
    return load_file(directory / f"{name}.avsc").expanded


def test_every_topic_schema_reads_itself() -> None:
    store = SchemaStore.from_directory(SCHEMAS)
    for name in store.names():
        assert check_backward(store.current(name).expanded, store.current(name).expanded) == []


def test_compatibility_check_catches_a_type_change_in_a_scratch_copy(scratch: Path) -> None:
    edit(scratch, "erpbridge.OrderLine", lambda s: field_of(s, "quantity").update(type="string"))
    assert found(expanded(scratch), expanded(SCHEMAS)) == [
        (f"{PLACED}.lines[].quantity", Kind.TYPE)
    ]


def test_compatibility_check_catches_a_decimal_scale_change_in_a_scratch_copy(
    scratch: Path,
) -> None:
    edit(
        scratch, "erpbridge.OrderLine", lambda s: field_of(s, "unit_price")["type"].update(scale=2)
    )
    issues = check_backward(expanded(scratch), expanded(SCHEMAS))
    assert [(i.path, i.kind) for i in issues] == [(f"{PLACED}.lines[].unit_price", Kind.DECIMAL)]
    assert "decimal 18,4" in issues[0].detail and "decimal 18,2" in issues[0].detail


def test_compatibility_check_catches_a_required_field_in_a_scratch_copy(scratch: Path) -> None:
    edit(scratch, "erpbridge.Customer", lambda s: s["fields"].append(field("tax_id", "string")))
    assert found(expanded(scratch), expanded(SCHEMAS)) == [
        (f"{PLACED}.customer.tax_id", Kind.MISSING_FIELD)
    ]
    # Customer is shared: the ERP command topic breaks too.
    commands = "erpbridge.ErpCommand"
    assert found(expanded(scratch, commands), expanded(SCHEMAS, commands)) == [
        (
            "erpbridge.ErpCommand.command[erpbridge.CreateSalesOrder].customer.tax_id",
            Kind.MISSING_FIELD,
        )
    ]


def test_compatibility_check_catches_a_removed_union_branch_in_a_scratch_copy(
    scratch: Path,
) -> None:
    edit(
        scratch,
        "erpbridge.OrderEvent",
        lambda s: field_of(s, "event")["type"].remove("erpbridge.OrderRefunded"),
    )
    assert found(expanded(scratch), expanded(SCHEMAS)) == [
        ("erpbridge.OrderEvent.event[erpbridge.OrderRefunded]", Kind.UNION_BRANCH)
    ]


def test_removing_a_field_without_default_breaks_only_old_readers(scratch: Path) -> None:
    # Backward compatibility skips writer fields the reader lacks, so the new schema reads
    # old data; it is the not-yet-upgraded consumer (old reader, new writer) that breaks.
    edit(scratch, "erpbridge.OrderLine", lambda s: s["fields"].remove(field_of(s, "line_id")))
    assert found(expanded(scratch), expanded(SCHEMAS)) == []
    assert found(expanded(SCHEMAS), expanded(scratch)) == [
        (f"{PLACED}.lines[].line_id", Kind.MISSING_FIELD)
    ]


def test_optional_field_and_new_union_branch_are_compatible(scratch: Path) -> None:
    edit(
        scratch,
        "erpbridge.OrderLine",
        lambda s: s["fields"].append(field("gift_message", ["null", "string"], default=None)),
    )
    note = record("OrderNoteAdded", field("note", "string"))
    (scratch / "erpbridge.OrderNoteAdded.avsc").write_text(
        json.dumps({**note, "namespace": "erpbridge"})
    )
    edit(
        scratch,
        "erpbridge.OrderEvent",
        lambda s: field_of(s, "event")["type"].append("erpbridge.OrderNoteAdded"),
    )
    assert found(expanded(scratch), expanded(SCHEMAS)) == []


# --- the gate ---------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    identity = [
        "-c",
        "user.name=test",
        "-c",
        "user.email=test@example.com",
        "-c",
        "commit.gpgsign=false",
    ]
    return subprocess.run(
        ["git", "-C", str(repo), *identity, *args], capture_output=True, text=True, check=True
    ).stdout


def has_commits(repo: Path) -> bool:
    verify = ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", "HEAD"]
    return subprocess.run(verify, capture_output=True, check=False).returncode == 0


def test_schemas_backward_compatible_with_main() -> None:
    """Every topic value schema and main's version read each other's data (git is required:
    the project is a clone), and main's version of each changed schema is in schemas/history/."""
    ref = resolve_base_ref(REPO_ROOT)
    if ref is None:
        # Only a repository without history may lack a base; otherwise the gate is misconfigured.
        assert not has_commits(REPO_ROOT), (
            f"neither origin/main nor main exists: set {BASE_REF_ENV}"
        )
        return
    report = compare_with_ref(SCHEMAS, ref, REPO_ROOT)
    assert report.ok, f"schemas are not compatible with {ref}:\n" + "\n".join(report.problems())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A throwaway repository whose main holds the schemas, minus ReconciliationAlert."""
    root = tmp_path / "repo"
    shutil.copytree(SCHEMAS, root / "schemas", ignore=shutil.ignore_patterns(HISTORY_DIR))
    alert = root / "schemas" / "erpbridge.ReconciliationAlert.avsc"
    content = alert.read_bytes()
    alert.unlink()
    git(tmp_path, "init", "-q", "-b", "main", str(root))
    git(root, "add", "schemas")
    git(root, "commit", "-q", "-m", "schemas")
    alert.write_bytes(content)  # new in the working tree
    return root


def test_compare_with_ref_reports_a_break_end_to_end(repo: Path) -> None:
    schemas = repo / "schemas"
    released = load_file(schemas / "erpbridge.OrderEvent.avsc")
    edit(schemas, "erpbridge.OrderLine", lambda s: field_of(s, "quantity").update(type="string"))

    report = compare_with_ref(schemas, "main", repo)

    assert not report.ok
    assert report.new == ("erpbridge.ReconciliationAlert",)
    assert [(i.path, i.kind) for i in report.incompatibilities] == [
        (f"{PLACED}.lines[].quantity", Kind.TYPE)
    ]
    (missing,) = report.missing_history
    assert missing.file_name == history_file_name(released)
    assert missing.path == schemas / HISTORY_DIR / history_file_name(released)
    assert str(missing.path) in str(missing)
    assert "python -m streams.contracts.schema_compat freeze --ref main" in str(missing)


def test_compare_with_ref_blocks_removing_a_field_old_consumers_still_need(repo: Path) -> None:
    """Producers may upgrade first: consumers on main's schema must read what they write."""
    schemas = repo / "schemas"
    edit(
        schemas,
        "erpbridge.OrderLine",
        lambda s: s.update(fields=[f for f in s["fields"] if f["name"] != "line_id"]),
    )

    report = compare_with_ref(schemas, "main", repo)

    assert report.incompatibilities == ()
    assert [(i.path, i.kind) for i in report.forward_incompatibilities] == [
        (f"{PLACED}.lines[].line_id", Kind.MISSING_FIELD)
    ]
    assert not report.ok
    assert any(p.startswith("old readers: ") for p in report.problems())


def test_freeze_writes_the_history_file_compare_asks_for(repo: Path) -> None:
    schemas = repo / "schemas"
    released = load_file(schemas / "erpbridge.OrderEvent.avsc")
    edit(
        schemas,
        "erpbridge.OrderLine",
        lambda s: s["fields"].append(field("note", ["null", "string"], default=None)),
    )
    before = compare_with_ref(schemas, "main", repo)
    assert before.incompatibilities == ()
    assert [m.file_name for m in before.missing_history] == [history_file_name(released)]

    subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.contracts.schema_compat",
            "freeze",
            "--ref",
            "main",
            "--repo",
            str(repo),
        ],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )

    assert compare_with_ref(schemas, "main", repo).ok
    store = SchemaStore.from_directory(schemas)
    assert store.by_fingerprint(released.fingerprint) is not None


def test_base_ref_resolution(repo: Path, tmp_path: Path) -> None:
    assert resolve_base_ref(repo, env={}) == "main"
    assert resolve_base_ref(repo, env={BASE_REF_ENV: "HEAD"}) == "HEAD"
    with pytest.raises(ValueError, match="does not name a commit"):
        resolve_base_ref(repo, env={BASE_REF_ENV: "no-such-branch"})
    empty = tmp_path / "empty"
    git(tmp_path, "init", "-q", "-b", "main", str(empty))
    assert resolve_base_ref(empty, env={}) is None


def test_a_new_union_branch_passes_only_when_listed_with_the_consumers_to_upgrade_first(
    repo: Path,
) -> None:
    schemas = repo / "schemas"
    (schemas / "erpbridge.OrderNoted.avsc").write_text(
        json.dumps(
            {
                "type": "record",
                "name": "OrderNoted",
                "namespace": "erpbridge",
                "fields": [{"name": "note", "type": "string"}],
            }
        )
    )
    edit(
        schemas,
        "erpbridge.OrderEvent",
        lambda s: field_of(s, "event")["type"].append("erpbridge.OrderNoted"),
    )
    (schemas / "history").mkdir(exist_ok=True)
    freeze(schemas, "main", repo)
    branch = "erpbridge.OrderEvent.event[erpbridge.OrderNoted]"

    unlisted = compare_with_ref(schemas, "main", repo)
    assert [(i.path, i.kind) for i in unlisted.forward_incompatibilities] == [
        (branch, Kind.UNION_BRANCH)
    ]
    assert not unlisted.ok

    listing = schemas / CONSUMERS_FIRST
    entries = json.loads(listing.read_text())
    listing.write_text(json.dumps([*entries, {"path": branch}]))
    with pytest.raises(ValueError, match="needs a why and an upgrade_first"):
        compare_with_ref(schemas, "main", repo)
    listing.write_text(
        json.dumps([*entries, {"path": branch, "why": "a new event", "upgrade_first": "worker"}])
    )
    listed = compare_with_ref(schemas, "main", repo)
    assert listed.ok and [i.path for i in listed.consumers_first] == [branch]
