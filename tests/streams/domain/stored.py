"""State as the release before the state codec stored it (tests/fixtures/state), and how
the tests read it."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from typing import Any

from streams.ops.settings import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "state"


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

ADDED_SINCE = {"Claim": {"settled": {"@tuple": []}}}
"""Fields added since the fixtures were written, with what state without them decodes to."""


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
    return out
