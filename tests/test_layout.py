"""The tree shows the architecture: what may import what, and no import circles."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streams", "connectors")

# The layer a module belongs to may import only these layers of ours (itself included).
ALLOWED = {
    "streams.domain": {"streams.domain"},
    "streams.contracts": {"streams.contracts", "streams.domain", "streams.ops"},
    "streams.ops": {"streams.ops", "streams.contracts"},
    "streams.local": {"streams.local", "streams.ops", "streams.contracts", "streams.sample"},
    "streams.sample": {"streams.sample", "streams.contracts", "streams.domain", "streams.ops"},
    "streams.topology": {"streams.topology", "streams.domain", "streams.contracts", "streams.ops"},
}
# Third-party packages the business rules must not depend on.
NOT_IN_DOMAIN = ("faust", "aiokafka", "confluent_kafka", "mode", "pydantic", "pydantic_settings")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, name: str, known: set[str]) -> Iterator[str]:
    """Modules of ours `path` imports at run time (not those only for type checking)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                base = ".".join([*name.split(".")[: -node.level], node.module])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if full in known else base


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {
        name: {m for m in imports(path, name, known) if m in known and m != name}
        for name, path in found.items()
    }


def layer(module: str) -> str | None:
    return next((lay for lay in ALLOWED if module == lay or module.startswith(lay + ".")), None)


def test_layers_import_only_what_they_may() -> None:
    wrong = []
    for module, targets in graph().items():
        own = layer(module)
        if own is None:
            continue
        for target in targets:
            other = layer(target)
            if target.split(".")[0] == "streams" and other not in ALLOWED[own]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


@pytest.mark.parametrize("path", sorted((ROOT / "streams" / "domain").rglob("*.py")))
def test_domain_is_free_of_kafka_and_settings(path: Path) -> None:
    tree = ast.parse(path.read_text())
    used = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {u for u in used if u.split(".")[0] in NOT_IN_DOMAIN}


def test_no_import_circles() -> None:
    edges = graph()
    circles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                circles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not circles, "\n".join(" -> ".join(c) for c in circles)
