"""Storefront accounts into UpsertCustomer: what each account event asks of the ERP, and
which events are echoes that ask nothing."""

from __future__ import annotations

from typing import Any

import pytest

from streams.contracts.codec import Codec
from streams.contracts.schema_store import SchemaStore
from streams.domain.accounts import (
    Sent,
    account_command,
    external_id,
    order_account,
    upsert_command,
)
from streams.domain.commands import Command, CommandPolicy, Kind, Lane
from streams.domain.events import InputEvent, Rejection
from streams.ops.settings import REPO_ROOT
from tests.streams.domain.builders import account as storefront_account

POLICY = CommandPolicy(target="tryton")
ADDRESS = {
    "name": None,
    "street": "1 Main St\nApt 2",
    "city": "Albany",
    "region": "US-NY",
    "postal_code": "12207",
    "country": "US",
}


def account(event_id: str = "ev-1", **changes: Any) -> InputEvent:
    """Ada's account on the shop, with a phone and an address."""
    details = {"email": "ada@example.com", "name": "Ada Lovelace", "phone": "+1 518 555 0100",
               "addresses": [ADDRESS]}  # fmt: skip
    return storefront_account("42", event_id=event_id, **(details | changes))


def test_an_account_the_customer_opened_asks_the_erp_for_a_customer_with_its_details() -> None:
    command = upsert_command(account(), POLICY)
    assert command.kind is Kind.UPSERT_CUSTOMER and command.lane is Lane.ORDERS
    assert command.dispatch_key == external_id("shop", "42") == "shop:42"
    assert command.command_id.startswith("customers/shop:42/upsert/")
    assert command.body == {
        "storefront": "shop",
        "account_id": "42",
        "erp_customer_id": None,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "phone": "+1 518 555 0100",
        "addresses": [ADDRESS],
    }


def test_an_account_without_a_name_is_named_by_its_email_and_one_without_either_is_refused() -> (
    None
):
    assert upsert_command(account(name=None), POLICY).body["name"] == "ada@example.com"
    with pytest.raises(Rejection) as refused:
        upsert_command(account(name=None, email=None), POLICY)
    assert refused.value.reason == "unnamed-account" and "shop:42" in refused.value.detail


def test_a_changed_account_asks_again_and_the_same_account_the_same() -> None:
    first = upsert_command(account(), POLICY)
    assert upsert_command(account("ev-2"), POLICY) == first
    moved = upsert_command(account("ev-3", addresses=[{**ADDRESS, "city": "Troy"}]), POLICY)
    assert moved.command_id != first.command_id


def test_a_marked_account_only_links_whatever_its_details() -> None:
    link = upsert_command(account(erp_customer_id="C-7"), POLICY)
    assert link.command_id == "customers/shop:42/link/C-7"
    assert link.body == {
        "storefront": "shop",
        "account_id": "42",
        "erp_customer_id": "C-7",
        "name": None,
        "email": None,
        "phone": None,
        "addresses": [],
    }
    renamed = upsert_command(account("ev-2", erp_customer_id="C-7", name="A. King"), POLICY)
    assert renamed == link
    # Even an account without a name: the ERP names its own customer.
    assert upsert_command(account(erp_customer_id="C-7", name=None, email=None), POLICY) == link


def test_the_command_sent_last_is_not_sent_again_but_a_redelivery_of_its_event_is() -> None:
    first, sent = account_command(account("ev-1"), POLICY, None)
    assert first is not None and sent == Sent("ev-1", first.command_id)
    echo, after_echo = account_command(account("ev-2"), POLICY, sent)
    assert echo is None and after_echo == sent
    again, after_again = account_command(account("ev-1"), POLICY, sent)
    assert again == first and after_again == sent
    # Marked by the ERP's push: one link, and its echoes nothing.
    link, linked = account_command(account("ev-3", erp_customer_id="C-7"), POLICY, sent)
    assert link is not None and link.command_id.endswith("/link/C-7")
    assert linked == Sent("ev-3", link.command_id)
    pushed, _ = account_command(account("ev-4", erp_customer_id="C-7", name="X"), POLICY, linked)
    assert pushed is None


def test_what_an_account_sent_survives_its_table() -> None:
    sent = Sent("ev-1", "customers/shop:42/upsert/0123456789abcdef")
    assert Sent.decode(sent.encode()) == sent


def test_the_command_is_a_valid_erp_command_and_survives_the_pending_topic() -> None:
    codec = Codec(SchemaStore.from_directory(REPO_ROOT / "schemas"))
    for event in (account(), account(erp_customer_id="C-7")):
        command = upsert_command(event, POLICY)
        assert Command.decode(command.encode()) == command
        data = codec.encode("erpbridge.ErpCommand", command.to_datum(), topic="erp.commands")
        decoded = codec.decode(data, expected="erpbridge.ErpCommand").datum
        assert decoded["command"] == ("erpbridge.UpsertCustomer", command.body)
        assert Command.from_datum(decoded) == command


def test_a_storefront_orders_customer_stands_for_its_account() -> None:
    order = {
        "storefront": "shop",
        "customer": {"customer_id": "42", "email": "ada@example.com", "name": None},
        "ship_to": {"name": "Ada", "line1": "1 Main St", "line2": "Apt 2", "city": "Albany",
                    "region": "NY", "postal_code": "12207", "country": "US"},
    }  # fmt: skip
    assert order_account(order) == {
        "storefront": "shop",
        "account_id": "42",
        "erp_customer_id": None,
        "name": "ada@example.com",
        "email": "ada@example.com",
        "phone": None,
        "addresses": [ADDRESS | {"name": "Ada"}],
    }
    assert order_account({**order, "storefront": None}) is None
    assert order_account({**order, "customer": {"customer_id": "42"}}) is None
