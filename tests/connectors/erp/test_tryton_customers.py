"""Storefront accounts as Tryton parties (UpsertCustomer), and the sales orders of their
orders, against the session's real Tryton. Every test uses accounts and e-mails of its own:
tests share one ERP database."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from connectors.erp.adapter import PermanentError
from connectors.erp.tryton import TrytonAdapter
from streams.domain.accounts import upsert_command
from streams.domain.commands import Command, Kind, order_commands
from streams.domain.orders import Order
from streams.local.tryton import Tryton
from tests.connectors.erp.test_tryton import NOW, POLICY, A, checked, order_id, read
from tests.streams.domain.builders import account, apply, line, placed
from tests.support import on_tryton

STOREFRONT = "shop"


def account_command(account_id: str, **changes: Any) -> Command:
    """The UpsertCustomer of a storefront account with a phone and an address."""
    details = {"phone": "+1 518 555 0100", "addresses": [{
        "name": None, "street": "1 Main St", "city": "Albany", "region": "US-NY",
        "postal_code": "12207", "country": "US"}]}  # fmt: skip
    event = account(account_id, storefront=STOREFRONT, at=NOW, **(details | changes))
    return checked(upsert_command(event, POLICY))


def account_order(customer_id: str, storefront: str | None) -> Command:
    """The sales order of an order on account placed by `customer_id` on `storefront`."""
    oid = order_id()
    order = Order(oid)
    event = placed(oid, [line("L1", A, 1)], payment_terms="ON_ACCOUNT",
                   purchase_order_number=f"PO-{oid}", at=NOW, storefront=storefront)  # fmt: skip
    event.payload["customer"]["customer_id"] = customer_id
    apply(order, event)
    (command,) = [c for c in order_commands(order, POLICY) if c.kind is Kind.CREATE_SALES_ORDER]
    return checked(command)


async def parties_with(erp: TrytonAdapter, external: str) -> list[int]:
    rows = await erp.rpc.search_read("party.identifier", [["code", "=", external]], ["party"])
    return [row["party"] for row in rows]


def test_a_new_account_becomes_one_party_that_its_orders_are_sold_to(tryton: Tryton) -> None:
    account_id = uuid.uuid4().hex[:10]
    first = account_command(account_id)
    moved = account_command(account_id, name="Renamed Buyer")

    async def scenario(erp: TrytonAdapter) -> None:
        document = await erp.execute(first)
        assert document.type == "party.party"
        # Redelivered, or the account changed before the ERP's customer reached it: the same.
        assert await erp.execute(first) == document == await erp.execute(moved)
        party_id = int(document.id)
        assert await parties_with(erp, f"{STOREFRONT}:{account_id}") == [party_id]
        (party,) = await read(erp, "party.party", [party_id], ["name", "code", "email", "phone",
                              "addresses"])  # fmt: skip
        assert party["name"] == f"Buyer {account_id}" and party["code"]
        assert (party["email"], party["phone"]) == (f"{account_id}@example.com", "+1 518 555 0100")
        (address,) = await read(erp, "party.address", party["addresses"],
                                ["street", "city", "postal_code"])  # fmt: skip
        assert (address["street"], address["city"], address["postal_code"]) == (
            "1 Main St", "Albany", "12207",
        )  # fmt: skip

        sale = await erp.execute(account_order(account_id, STOREFRONT))
        (row,) = await read(erp, "sale.sale", [int(sale.id)], ["party"])
        assert row["party"] == party_id
        # The account's id means nothing without its storefront.
        with pytest.raises(PermanentError) as unknown:
            await erp.execute(account_order(account_id, None))
        assert unknown.value.code == "unknown-customer"

    on_tryton(tryton, scenario)


def test_an_account_with_the_email_of_a_customer_is_that_customer(tryton: Tryton) -> None:
    account_id = uuid.uuid4().hex[:10]

    async def scenario(erp: TrytonAdapter) -> None:
        (known,) = await erp.rpc.search_read(
            "party.party", [["code", "=", "CUS-0002"]], ["name", "email"]
        )
        document = await erp.execute(account_command(account_id, email=known["email"]))
        assert int(document.id) == known["id"]
        (party,) = await read(erp, "party.party", [known["id"]], ["name"])
        assert party["name"] == known["name"]  # the ERP's details are kept
        assert await parties_with(erp, f"{STOREFRONT}:{account_id}") == [known["id"]]

    on_tryton(tryton, scenario)


def test_a_marked_account_is_linked_to_its_customer_and_an_unknown_mark_refused(
    tryton: Tryton,
) -> None:
    account_id = uuid.uuid4().hex[:10]

    async def scenario(erp: TrytonAdapter) -> None:
        (known,) = await erp.rpc.search_read("party.party", [["code", "=", "CUS-0003"]], ["name"])
        link = account_command(account_id, erp_customer_id="CUS-0003")
        assert int((await erp.execute(link)).id) == known["id"]
        assert await parties_with(erp, f"{STOREFRONT}:{account_id}") == [known["id"]]
        sale = await erp.execute(account_order(account_id, STOREFRONT))
        (row,) = await read(erp, "sale.sale", [int(sale.id)], ["party"])
        assert row["party"] == known["id"]

        with pytest.raises(PermanentError) as unknown:
            await erp.execute(account_command(uuid.uuid4().hex[:10], erp_customer_id="NOPE-1"))
        assert unknown.value.code == "unknown-customer" and "NOPE-1" in unknown.value.message

    on_tryton(tryton, scenario)


def test_an_email_two_customers_share_is_refused_rather_than_guessed(tryton: Tryton) -> None:
    email = f"{uuid.uuid4().hex[:10]}@example.com"

    async def scenario(erp: TrytonAdapter) -> None:
        parties = await erp.rpc.create("party.party", [
            {"name": f"Twin {n}", "contact_mechanisms": [["create", [
                {"type": "email", "value": email}]]]}
            for n in (1, 2)
        ])  # fmt: skip
        with pytest.raises(PermanentError) as ambiguous:
            await erp.execute(account_command(uuid.uuid4().hex[:10], email=email))
        assert ambiguous.value.code == "ambiguous-customer"
        assert all(str(p) in ambiguous.value.message for p in parties)

    on_tryton(tryton, scenario)


def test_an_order_before_its_account_makes_the_customer_the_account_then_finds(
    tryton: Tryton,
) -> None:
    account_id = uuid.uuid4().hex[:10]
    order = account_order(account_id, STOREFRONT)
    order.body["customer"].update(name=f"Early {account_id}", email=f"{account_id}@example.com")

    async def scenario(erp: TrytonAdapter) -> None:
        sale = await erp.execute(order)
        (row,) = await read(erp, "sale.sale", [int(sale.id)], ["party"])
        (party,) = await read(erp, "party.party", [row["party"]], ["name", "email", "addresses"])
        assert (party["name"], party["email"]) == (
            f"Early {account_id}",
            f"{account_id}@example.com",
        )
        (address,) = await read(erp, "party.address", party["addresses"], ["street", "city"])
        ship_to = order.body["ship_to"]
        assert address["city"] == ship_to["city"] and ship_to["line1"] in address["street"]
        # The account, arriving after: the same customer, not a second one.
        assert int((await erp.execute(account_command(account_id))).id) == row["party"]
        assert await parties_with(erp, f"{STOREFRONT}:{account_id}") == [row["party"]]

    on_tryton(tryton, scenario)
