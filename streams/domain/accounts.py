"""Storefront accounts into the ERP's customers (pure): commerce.customers to UpsertCustomer.

An account the storefront's customer opened (no ERP mark) becomes an ERP customer: the ERP
finds it by the account's external id (`<storefront>:<account id>`) or its e-mail, or
creates it, and keeps the external id so the account's orders find their customer. An
account marked with an ERP customer id was made or claimed by erpbridge from erp.customers:
the ERP is its master, and only learns the account's external id (a link).

Storefronts report every change of an account, erpbridge's own pushes included. Per account
the last command sent is remembered: an account event asking for the command sent last is
its echo (or the same account told again) and sends nothing, except a redelivery of the very
event that sent it, whose command may have been lost with the crash that redelivers it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.domain.commands import Command, CommandPolicy, Kind
from streams.domain.events import InputEvent, Rejection

ACCOUNT_CHANGED = "AccountChanged"


def external_id(storefront: str, account_id: str) -> str:
    """How the ERP knows a storefront account: also the key of commerce.customers."""
    return f"{storefront}:{account_id}"


@dataclass(frozen=True, slots=True)
class Sent:
    """The last UpsertCustomer an account caused, and the event that caused it."""

    event_id: str
    command_id: str

    def encode(self) -> bytes:
        return json.dumps([self.event_id, self.command_id]).encode()

    @classmethod
    def decode(cls, data: bytes) -> Sent:
        event_id, command_id = json.loads(data)
        return cls(event_id, command_id)


def upsert_command(event: InputEvent, policy: CommandPolicy) -> Command:
    """The account's UpsertCustomer; Rejection for an account the ERP cannot name."""
    p = event.payload
    account = external_id(p["storefront"], p["account_id"])
    if p.get("erp_customer_id") is not None:
        # The ERP's details are the truth: the link depends on nothing else, so pushing them
        # to the account again and again asks for the same command.
        body: dict[str, Any] = {
            "storefront": p["storefront"],
            "account_id": p["account_id"],
            "erp_customer_id": p["erp_customer_id"],
            "name": None,
            "email": None,
            "phone": None,
            "addresses": [],
        }
        command_id = f"customers/{account}/link/{p['erp_customer_id']}"
    else:
        name = p.get("name") or p.get("email")
        if not name:
            raise Rejection(
                "unnamed-account",
                f"account {account} has neither a name nor an e-mail to name its ERP customer",
            )
        body = {
            "storefront": p["storefront"],
            "account_id": p["account_id"],
            "erp_customer_id": None,
            "name": name,
            "email": p.get("email"),
            "phone": p.get("phone"),
            "addresses": [dict(a) for a in p.get("addresses") or ()],
        }
        # A changed account asks again (an account fixed after the ERP refused it).
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        command_id = f"customers/{account}/upsert/{digest}"
    return Command(
        command_id, Kind.UPSERT_CUSTOMER, policy.target, event.occurred_ms, account, body
    )


def account_command(
    event: InputEvent, policy: CommandPolicy, sent: Sent | None
) -> tuple[Command | None, Sent | None]:
    """The command the account event sends (None: its echo) and what to remember."""
    command = upsert_command(event, policy)
    if sent is not None and sent.command_id == command.command_id:
        if sent.event_id == event.event_id:
            return command, sent
        return None, sent
    return command, Sent(event.event_id, command.command_id)


def order_account(order: Mapping[str, Any]) -> dict[str, Any] | None:
    """The storefront account a CreateSalesOrder's customer stands for, as an UpsertCustomer
    body: the ERP makes or finds its customer from the order itself when the order gets there
    before the account does. None for an order from no storefront, or whose customer has
    neither a name nor an e-mail."""
    storefront, customer = order.get("storefront"), order["customer"]
    name = customer.get("name") or customer.get("email")
    if not storefront or not name:
        return None
    ship_to = order.get("ship_to")
    return {
        "storefront": storefront,
        "account_id": customer["customer_id"],
        "erp_customer_id": None,
        "name": name,
        "email": customer.get("email"),
        "phone": None,
        "addresses": [] if ship_to is None else [_erp_address(ship_to)],
    }


def _erp_address(address: Mapping[str, Any]) -> dict[str, Any]:
    """An erpbridge.Address as an erpbridge.ErpAddress (regions as ISO 3166-2 codes)."""
    country, region = address["country"], address.get("region")
    if region and "-" not in region:
        region = f"{country}-{region}"
    return {
        "name": address.get("name"),
        "street": "\n".join(line for line in (address["line1"], address.get("line2")) if line),
        "city": address["city"],
        "region": region,
        "postal_code": address.get("postal_code"),
        "country": country,
    }
