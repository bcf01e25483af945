"""Messages between the order and stock agents, carried on internal topics as JSON, bundled
per partition.

Orders are keyed by order id and stock by SKU, so an order's effect on stock travels as a
`StockRequest` re-keyed by SKU, and the stock's answer comes back as an `AllocationUpdate`
keyed by order id. Every message is idempotent on its receiver: requests carry a reference
the stock remembers, updates carry absolute quantities and a version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from streams.domain import statejson
from streams.domain.routing import Destination


class RequestKind(StrEnum):
    RESERVE = "reserve"
    RELEASE = "release"
    SHIP = "ship"
    RESTOCK = "restock"


@dataclass(frozen=True, slots=True)
class StockRequest:
    kind: RequestKind
    order_id: str
    sku: str
    ref: str
    """What makes the request unique within its order: the fulfilment or refund id."""
    at_ms: int
    lines: tuple[tuple[str, int], ...] = ()
    """(line id, quantity) to reserve."""
    quantity: int = 0
    """Units shipped or restocked."""
    warehouse: str | None = None
    destination: Destination | None = None
    purchase_order_number: str | None = None
    """The order's, on a shipment or restock: its cost entry carries it."""

    @property
    def cause(self) -> str:
        """The request as the cause of a stock change: unique, since requests apply once."""
        return f"{self.order_id}:{self.kind.value}:{self.ref}"

    def to_json(self) -> dict[str, Any]:
        d = self.destination
        data = {
            "type": "stock_request",
            "kind": self.kind.value,
            "order_id": self.order_id,
            "sku": self.sku,
            "ref": self.ref,
            "at_ms": self.at_ms,
            "lines": [list(line) for line in self.lines],
            "quantity": self.quantity,
            "warehouse": self.warehouse,
            "destination": None if d is None else [d.channel, d.country, d.region],
        }
        # Most orders have none: the key travels only when there is one.
        if self.purchase_order_number is not None:
            data["purchase_order_number"] = self.purchase_order_number
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StockRequest:
        d = data["destination"]
        return cls(
            kind=RequestKind(data["kind"]),
            order_id=data["order_id"],
            sku=data["sku"],
            ref=data["ref"],
            at_ms=data["at_ms"],
            lines=tuple((line_id, qty) for line_id, qty in data["lines"]),
            quantity=data["quantity"],
            warehouse=data["warehouse"],
            destination=None if d is None else Destination(*d),
            purchase_order_number=data.get("purchase_order_number"),
        )


@dataclass(frozen=True, slots=True)
class LineReservation:
    reserved: dict[str, int] = field(default_factory=dict)
    backordered: int = 0


@dataclass(frozen=True, slots=True)
class AllocationUpdate:
    """The absolute reservation state of one order's lines of one SKU."""

    order_id: str
    sku: str
    version: int
    lines: dict[str, LineReservation]

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "allocation",
            "order_id": self.order_id,
            "sku": self.sku,
            "version": self.version,
            "lines": {
                line_id: {"reserved": r.reserved, "backordered": r.backordered}
                for line_id, r in self.lines.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AllocationUpdate:
        return cls(
            order_id=data["order_id"],
            sku=data["sku"],
            version=data["version"],
            lines={
                line_id: LineReservation(dict(r["reserved"]), r["backordered"])
                for line_id, r in data["lines"].items()
            },
        )


@dataclass(frozen=True, slots=True)
class Tick:
    """The order's timer: as of `now_ms`, waiting events past the limit expire and time-based
    alerts are checked."""

    order_id: str
    now_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"type": "tick", "order_id": self.order_id, "now_ms": self.now_ms}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tick:
        return cls(order_id=data["order_id"], now_ms=data["now_ms"])


@dataclass(frozen=True, slots=True)
class ErpOutcome:
    """What the ERP answered for one command (from erp.results)."""

    succeeded: bool
    document_type: str | None
    document_id: str | None
    error: str | None
    permanent: bool
    at_ms: int


@dataclass(frozen=True, slots=True)
class StorefrontOutcome:
    """What a storefront did with a stock level or a fulfilment erpbridge pushed to it (from
    storefront.results or storefront.fulfilment-results)."""

    route: str
    what: str
    """What was pushed, in words: "the stock level 4 of SKU-1 (warehouse WH-WEST)"."""
    facts: dict[str, str]
    """What identifies it (sku, warehouse, quantity; order, fulfilment), for the evidence."""
    failed: bool
    permanent: bool
    message: str | None
    at_ms: int


@dataclass(frozen=True, slots=True)
class ErpAnswer:
    """The ERP's result for one of an order's commands, re-keyed from command id to order id."""

    order_id: str
    command_id: str
    outcome: ErpOutcome

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "erp",
            "order_id": self.order_id,
            "command_id": self.command_id,
            "outcome": statejson.plain(self.outcome),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ErpAnswer:
        return cls(data["order_id"], data["command_id"], ErpOutcome(**data["outcome"]))


OrderFeedback = AllocationUpdate | Tick | ErpAnswer


def encode(message: StockRequest | OrderFeedback) -> bytes:
    return statejson.dumps(message.to_json())


def encode_bundle(messages: Sequence[StockRequest | OrderFeedback]) -> bytes:
    """Several messages for one partition in one record, in order: a batch sends one record
    per partition it reaches, not one per message."""
    return statejson.dumps([message.to_json() for message in messages])


def decode_requests(data: bytes) -> list[StockRequest]:
    """A bundle of requests, or one request alone (the timer and earlier releases)."""
    return [StockRequest.from_json(obj) for obj in _objects(data)]


def decode_feedback(data: bytes) -> list[OrderFeedback]:
    """A bundle of feedback messages, or one alone."""
    return [_feedback(obj) for obj in _objects(data)]


def _objects(data: bytes) -> list[dict[str, Any]]:
    obj = statejson.loads(data)
    return obj if isinstance(obj, list) else [obj]


def _feedback(obj: dict[str, Any]) -> OrderFeedback:
    if obj.get("type") == "allocation":
        return AllocationUpdate.from_json(obj)
    if obj.get("type") == "tick":
        return Tick.from_json(obj)
    if obj.get("type") == "erp":
        return ErpAnswer.from_json(obj)
    raise ValueError(f"unknown order feedback type {obj.get('type')!r}")
