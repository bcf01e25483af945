"""What an ERP adapter is: one ERP's way of executing erpbridge's commands, idempotently.

An adapter never talks to Kafka and never retries: it executes one command, or raises an
`ErpError` that says whether a retry may help. The sink (connectors.erp.sink) decides
when to retry, how many commands run at once and where failures go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from streams.domain.commands import Command


@dataclass(frozen=True, slots=True)
class Document:
    """What the ERP holds for a command: its model or document type and its id there."""

    type: str
    id: str


class ErpError(Exception):
    """The ERP (or the adapter on its behalf) did not execute a command.

    `code` is short and machine-readable (`unknown-sku`, `http-503`, ...), `message` the
    ERP's own words where it gave any.
    """

    permanent: bool = False

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class PermanentError(ErpError):
    """Retrying cannot help (validation: unknown SKU or customer, an unbalanced entry)."""

    permanent = True


class TransientError(ErpError):
    """A retry may succeed (throttled, unavailable, timed out, a prerequisite not there yet).

    `retry_after` is the ERP's own hint in seconds (Retry-After), when it gave one.
    """

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


UNREACHED = frozenset({"unreachable", "timeout"})
"""TransientError codes of a call that never reached the ERP (or got no answer from it)."""


class ErpAdapter(Protocol):
    """One ERP. `execute` must be idempotent: it looks the command id up in the ERP first
    and returns the document found there instead of creating a second one."""

    name: str
    """The target name commands carry (`Command.target`), e.g. "tryton"."""

    async def open(self) -> None:
        """Connect and log in; may raise TransientError when the ERP is not reachable."""

    async def close(self) -> None: ...

    async def execute(self, command: Command) -> Document: ...
