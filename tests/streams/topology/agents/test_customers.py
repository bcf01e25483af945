"""Storefront accounts through the worker on the real broker: an account the customer
opened becomes one UpsertCustomer on erp.commands, its echoes none, a marked account one
link, and an account with nothing to name a customer by goes to the dead-letter topic."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from streams.contracts.codec import Codec
from streams.contracts.topics import CUSTOMERS, ERP_COMMANDS, TopicCatalog
from streams.ops.settings import Settings
from streams.sample.generator import SampleEvent
from tests.streams.domain.builders import account as storefront_account
from tests.streams.topology.agents.pipeline import dead_letters, produce, quiesce, read_all
from tests.support import STORE, WorkerProcess, wait_for

CODEC = Codec(STORE)


def account(event_id: str, account_id: str, **changes: Any) -> SampleEvent:
    """The account's AccountChanged as a record of commerce.customers."""
    event = storefront_account(account_id, event_id=event_id, **changes)
    datum = {
        "event_id": event.event_id,
        "occurred_at": datetime.fromtimestamp(event.occurred_ms / 1000, UTC),
        "source": event.source,
        "account": event.key,
        "event": ("erpbridge.AccountChanged", event.payload),
    }
    return SampleEvent(CUSTOMERS, event.key, "erpbridge.CustomerEvent", datum)


def test_accounts_become_customer_commands_once_and_their_echoes_nothing(
    settings: Settings, topics: TopicCatalog, start_worker: Callable[[], WorkerProcess]
) -> None:
    events = [
        account("e1", "a1"),
        account("e2", "a1"),  # told again unchanged: an echo
        account("e3", "a1", erp_customer_id="CUS-9"),  # marked by the ERP's push: a link
        account("e4", "a1", erp_customer_id="CUS-9", name="Pushed Name"),  # the push's echo
        account("e5", "a2", name=None, email=None),
    ]
    produce(settings, topics, CODEC, events)
    worker = start_worker()
    wait_for(
        lambda: worker.accounting()["totals"]["consumed"] == len(events),
        timeout=60,
        what="the worker to read every account event",
    )
    quiesce(settings, topics)
    commands = [
        CODEC.decode(m.value()).datum for m in read_all(settings, topics.physical(ERP_COMMANDS))
    ]
    assert [(c["command_id"].split("/")[2], c["command"][0]) for c in commands] == [
        ("upsert", "erpbridge.UpsertCustomer"),
        ("link", "erpbridge.UpsertCustomer"),
    ]
    upsert, link = (c["command"][1] for c in commands)
    assert (upsert["name"], upsert["email"], upsert["erp_customer_id"]) == (
        "Buyer a1", "a1@example.com", None,
    )  # fmt: skip
    assert (link["erp_customer_id"], link["name"]) == ("CUS-9", None)
    assert all(c["priority"] == 0 for c in commands)
    assert dead_letters(settings, topics, CODEC, "") == [("e5", "unnamed-account")]
    totals = worker.accounting()["totals"]
    assert (totals["applied"], totals["duplicate"], totals["dead_lettered"]) == (2, 2, 1)
