"""The `erpbridge` command line: one module per verb, registered on the group in app.py."""

from streams.cli import demo, produce, sample, tail, topics, worker  # noqa: F401  (registers verbs)
from streams.cli.app import main

__all__ = ["main"]
