"""Stored state the current release must read (tests/fixtures/state): as the release before
the state codec wrote it (format 0), and as format 1 was first written. Run as
`python -m tests.streams.domain.stored` to write format-1.jsonl, which is done once only."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from typing import Any

from streams.domain import statecodec
from streams.ops.settings import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "state"
FORMAT_1 = FIXTURES / "format-1.jsonl"
DECODERS: dict[str, Callable[[bytes], Any]] = {
    "orders": statecodec.decode_order,
    "stock": statecodec.decode_sku,
    "order-alerts": statecodec.decode_alerts,
    "stock-alerts": statecodec.decode_alerts,
}
ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "orders": statecodec.encode_order,
    "stock": statecodec.encode_sku,
    "order-alerts": statecodec.encode_alerts,
    "stock-alerts": statecodec.encode_alerts,
}


def _load_describe() -> Callable[[Any], Any]:
    # The fixtures' own description of state (the script runs against an older release, so
    # it lives beside the fixtures rather than in an importable test package).
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    describe: Callable[[Any], Any] = module.describe
    return describe


describe = _load_describe()

ADDED_SINCE = {
    "Claim": {"settled": {"@tuple": []}},
    "SkuStock": {"changed": None},
    "Order": {"lapsed": [], "ticked_ms": 0, "echoes": {"@dict": []}, "approval": None},
    "Placement": {"source": None, "approval_required": False},
    "Fulfilment": {"source": None},
}
"""Fields added since the fixtures were written, with what state without them decodes to
(and a transition's sequence, which is its position in its order)."""


def changelog(table: str) -> list[tuple[str, bytes]]:
    """(key, stored value) of each record of the table's changelog, in order."""
    lines = (FIXTURES / f"{table}.changelog.jsonl").read_text().splitlines()
    return [(r["key"], r["value"].encode()) for r in map(json.loads, lines)]


def expected(table: str) -> list[Any]:
    """Per changelog record, `describe` of what the release that wrote it read from it."""
    described: list[Any] = json.loads((FIXTURES / f"{table}.expected.json").read_text())
    return [_with_added_fields(d) for d in described]


def _with_added_fields(described: Any) -> Any:
    if isinstance(described, list):
        return [_with_added_fields(v) for v in described]
    if not isinstance(described, dict):
        return described
    out = {k: _with_added_fields(v) for k, v in described.items()}
    for name, added in ADDED_SINCE.items():
        if f"@{name}" in out:
            out[f"@{name}"] = {**out[f"@{name}"], **added}
    if "@Order" in out:
        for position, transition in enumerate(out["@Order"]["transitions"], 1):
            transition["@Transition"] = {**transition["@Transition"], "sequence": position}
    return out


def format_1() -> list[tuple[str, int, bytes]]:
    """(table, index of the changelog record, that record's state as format 1 first wrote it)."""
    rows = map(json.loads, FORMAT_1.read_text().splitlines())
    return [(r["table"], r["record"], bytes.fromhex(r["value"])) for r in rows]


def _write_format_1() -> None:
    with FORMAT_1.open("w") as out:
        for table in sorted(DECODERS):
            for i, (_, value) in enumerate(changelog(table)):
                stored = ENCODERS[table](DECODERS[table](value))
                out.write(json.dumps({"table": table, "record": i, "value": stored.hex()}) + "\n")


if __name__ == "__main__":
    _write_format_1()
