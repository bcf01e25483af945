"""Shopify Payments payouts to PaymentSettled events: what each paid payout settled per
payment, net of Shopify's fee. Shopify sends no webhook for a payout (none among the Admin
API's webhook topics), so `erpbridge payouts sync` reads them with these queries; the
mapping is pure.

A payout's balance transactions of type CHARGE are the payments it settled: `amount`
gross, `fee` Shopify's, `net` what was paid out, all in the payout's currency. The payment
is named as the order transaction webhooks name it (connectors.webhooks.shopify.mapping):
a capture by the authorisation it draws on, a sale by itself; so each charge's source
transaction is looked up for its kind and parent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.webhooks.amounts import currency_code, decimal, plain, timestamp
from connectors.webhooks.inputs import Input, Unmappable, payment_input

SOURCE = "shopify"
GATEWAY = "shopify_payments"

PAYOUTS = """
query Payouts($after: String, $query: String) {
  shopifyPaymentsAccount {
    payouts(first: 50, after: $after, sortKey: ISSUED_AT, query: $query) {
      nodes { legacyResourceId issuedAt status }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
"""Paid payouts issued since a time, oldest first."""

TRANSACTIONS = """
query Transactions($after: String, $query: String) {
  shopifyPaymentsAccount {
    balanceTransactions(first: 100, after: $after, query: $query) {
      nodes {
        id type
        amount { amount currencyCode } fee { amount currencyCode } net { amount currencyCode }
        sourceOrderTransactionId
        associatedOrder { id }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
"""A payout's balance transactions (query `payments_transfer_id:<payout id>`)."""

SOURCES = """
query Sources($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on OrderTransaction { id kind parentTransaction { id } }
  }
}
"""
"""The order transactions the charges came from: their kind and parent."""

SOURCES_PER_QUERY = 100
"""`nodes` takes at most this many ids."""


@dataclass(frozen=True)
class Payout:
    payout_id: str
    """Its legacy (numeric) id, as the REST API and the Shopify admin show it."""
    issued_at: str


def paid_since(issued_at: str) -> str:
    """The search query of the paid payouts issued at or after `issued_at`."""
    return f"status:paid issued_at:>='{issued_at}'"


def of_payout(payout_id: str) -> str:
    """The search query of a payout's balance transactions."""
    return f"payments_transfer_id:{payout_id}"


def payouts(nodes: list[dict[str, Any]]) -> list[Payout]:
    return [
        Payout(str(node["legacyResourceId"]), timestamp(node.get("issuedAt"), "issuedAt"))
        for node in nodes
        if node.get("status") == "PAID"
    ]


def charges(transactions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The balance transactions that settle an order's payment (refunds, adjustments, fees
    and transfers are not a payment's settlement: refunds come as webhooks)."""
    return [t for t in transactions if t.get("type") == "CHARGE" and t.get("associatedOrder")]


def source_ids(found: list[dict[str, Any]]) -> list[str]:
    """The global ids of the order transactions the charges came from."""
    return sorted(
        {
            f"gid://shopify/OrderTransaction/{t['sourceOrderTransactionId']}"
            for t in found
            if t.get("sourceOrderTransactionId") is not None
        }
    )


def payments_by_source(nodes: list[dict[str, Any] | None]) -> dict[str, str]:
    """Order transaction id -> the payment id webhooks gave it: the parent of a capture."""
    found = {}
    for node in nodes:
        if not node:
            continue
        own = _tail(node["id"])
        parent = node.get("parentTransaction")
        found[own] = _tail(parent["id"]) if node.get("kind") == "CAPTURE" and parent else own
    return found


def settlements(
    payout: Payout, found: list[dict[str, Any]], payments: dict[str, str]
) -> list[Input]:
    """A PaymentSettled per charge of `payout` (`found` by `charges`)."""
    return [_settled(payout, charge, payments) for charge in found]


def _settled(payout: Payout, charge: dict[str, Any], payments: dict[str, str]) -> Input:
    where = f"payout {payout.payout_id} balance transaction {_tail(charge['id'])}"
    amounts = {}
    currencies = set()
    for name in ("amount", "fee", "net"):
        money = charge.get(name) or {}
        amounts[name] = decimal(money.get("amount"), f"{where} {name}.amount")
        currencies.add(currency_code(money.get("currencyCode"), f"{where} {name}.currencyCode"))
    if len(currencies) != 1:
        raise Unmappable(
            "mixed-currencies", f"{where}: amount, fee and net in {sorted(currencies)}"
        )
    gross, fee, net = amounts["amount"], amounts["fee"], amounts["net"]
    if gross - fee != net:
        raise Unmappable(
            "settlement-mismatch", f"{where}: gross {gross} less fee {fee} is not net {net}"
        )
    source = charge.get("sourceOrderTransactionId")
    if source is None or str(source) not in payments:
        raise Unmappable("unknown-payment", f"{where} names no order transaction Shopify knows")
    event = {
        "type": "PaymentSettled",
        "payout_id": f"{GATEWAY}:{payout.payout_id}",
        "payment_id": payments[str(source)],
        "gateway": GATEWAY,
        "gross": plain(gross),
        "fee": plain(fee),
        "net": plain(net),
        "currency": currencies.pop(),
    }
    event_id = f"{SOURCE}:balance-transaction:{_tail(charge['id'])}"
    order_id = _tail(charge["associatedOrder"]["id"])
    return payment_input(event_id, payout.issued_at, SOURCE, order_id, event)


def _tail(gid: str) -> str:
    """gid://shopify/Order/450789469 is order 450789469, as webhooks name it."""
    return str(gid).rsplit("/", 1)[-1]
