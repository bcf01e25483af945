"""ERP commands: what erpbridge asks an ERP to do, each with a deterministic id.

A command id is the idempotency key a sink de-duplicates on. It is derived from the source
entity, the operation and its version (`<order id>/sales-order/1`, `<order id>/shipment/
<fulfilment id>`, ...), never from a clock or a counter, so re-processing after a crash or a
replay of the input yields the same id.

Commands wait on `internal.erp-pending` for the rate limit (streams.dispatch), where some
coalesce; the `dispatch_key` keeps the ones that may coalesce on one partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

from streams.domain import statejson

SOURCE = "erpbridge"


class Kind(StrEnum):
    """The ErpCommand union's members."""

    CREATE_SALES_ORDER = "CreateSalesOrder"
    CANCEL_SALES_ORDER = "CancelSalesOrder"
    RECORD_SHIPMENT = "RecordShipment"
    CREATE_CREDIT_NOTE = "CreateCreditNote"
    ADJUST_INVENTORY = "AdjustInventory"
    POST_JOURNAL_ENTRY = "PostJournalEntry"


class Lane(IntEnum):
    """Priority lanes, most urgent first: what customers and money wait on goes first."""

    ORDERS = 0
    """Sales orders, cancellations and credit notes."""
    SHIPMENTS = 1
    BOOKKEEPING = 2
    """Journal entries and inventory adjustments, which may also coalesce while they wait."""


LANES: dict[Kind, Lane] = {
    Kind.CREATE_SALES_ORDER: Lane.ORDERS,
    Kind.CANCEL_SALES_ORDER: Lane.ORDERS,
    Kind.CREATE_CREDIT_NOTE: Lane.ORDERS,
    Kind.RECORD_SHIPMENT: Lane.SHIPMENTS,
    Kind.ADJUST_INVENTORY: Lane.BOOKKEEPING,
    Kind.POST_JOURNAL_ENTRY: Lane.BOOKKEEPING,
}


@dataclass(frozen=True, slots=True)
class Command:
    command_id: str
    kind: Kind
    target: str
    """The ERP it is addressed to, as named in the rate limits."""
    created_ms: int
    """When the fact that called for it happened; stable across replays."""
    dispatch_key: str
    """Key on the pending topic: the order id, or the SKU and warehouse of an adjustment."""
    body: dict[str, Any]
    """The union member's Avro datum (Decimals as Decimal)."""

    @property
    def lane(self) -> Lane:
        return LANES[self.kind]

    def to_json(self) -> dict[str, Any]:
        return {
            "command_id": self.command_id,
            "kind": self.kind.value,
            "target": self.target,
            "created_ms": self.created_ms,
            "dispatch_key": self.dispatch_key,
            "body": statejson.tag(self.body),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Command:
        return cls(
            command_id=data["command_id"],
            kind=Kind(data["kind"]),
            target=data["target"],
            created_ms=data["created_ms"],
            dispatch_key=data["dispatch_key"],
            body=statejson.untag(data["body"]),
        )

    def encode(self) -> bytes:
        """The pending topic's value."""
        return statejson.dumps(self.to_json())

    @classmethod
    def decode(cls, data: bytes) -> Command:
        return cls.from_json(statejson.loads(data))

    def to_datum(self) -> dict[str, Any]:
        """The erpbridge.ErpCommand datum for erp.commands."""
        return {
            "event_id": self.command_id,
            "occurred_at": datetime.fromtimestamp(self.created_ms / 1000, UTC),
            "source": SOURCE,
            "command_id": self.command_id,
            "target": self.target,
            "priority": int(self.lane),
            "command": (f"erpbridge.{self.kind.value}", self.body),
        }


def sales_order_id(order_id: str) -> str:
    return f"{order_id}/sales-order/1"


def cancellation_id(order_id: str) -> str:
    return f"{order_id}/cancel/1"


def shipment_id(order_id: str, fulfilment_id: str) -> str:
    return f"{order_id}/shipment/{fulfilment_id}"


def credit_note_id(order_id: str, refund_id: str) -> str:
    return f"{order_id}/credit-note/{refund_id}"


def adjustment_id(sku: str, warehouse: str, event_id: str) -> str:
    return f"{sku}@{warehouse}/adjust/{event_id}"


def journal_command_id(entry_id: str) -> str:
    return f"{entry_id}/post"
