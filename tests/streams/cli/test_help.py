"""Every verb explains itself."""

from __future__ import annotations

import click
from click.testing import CliRunner

from streams.cli import main


def _verbs(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += _verbs(command, (*prefix, name))
    return found


def test_every_verb_has_help() -> None:
    verbs = _verbs(main)
    assert {("produce",), ("tail",), ("topics", "create"), ("sample",), ("demo",)} <= set(verbs)
    for verb in verbs:
        result = CliRunner().invoke(main, [*verb, "--help"])
        assert result.exit_code == 0, (verb, result.output)
        command = main
        for part in verb:
            command = command.commands[part]  # type: ignore[attr-defined]
        assert command.help, f"`erpbridge {' '.join(verb)}` has no description"
        assert command.help.split("\n")[0].strip() in " ".join(result.output.split())
