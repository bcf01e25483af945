"""finance.journal's records: a journal entry as the topology writes it, and as the dispatcher
reads it back to post it to the ERP.

Each entry is written once, Avro-encoded and keyed by its id, for analysts and the ERP
alike; read back, it is the entry again, which `entry_command` turns into the very
PostJournalEntry the worker used to send beside it.
"""

from __future__ import annotations

from typing import Any

from streams.contracts.codec import Codec
from streams.domain import statejson
from streams.domain.finance import JournalEntry, JournalLine

SCHEMA = "erpbridge.JournalEntry"


class InvalidEntry(ValueError):
    """A decoded record that is not an entry the topology could have written."""


def entry_key(entry: JournalEntry) -> bytes:
    return entry.entry_id.encode()


def encode_entry(codec: Codec, entry: JournalEntry, *, topic: str) -> bytes:
    return codec.encode(SCHEMA, entry.to_datum(), topic=topic)


def decode_entry(codec: Codec, value: bytes | None) -> JournalEntry:
    """The entry a finance.journal record holds. Raises the codec's DecodeError for bytes
    that are no JournalEntry, InvalidEntry for one whose fields disagree."""
    return entry_of(codec.decode(value, expected=SCHEMA).datum)


def entry_of(datum: dict[str, Any]) -> JournalEntry:
    """The entry of an erpbridge.JournalEntry datum (`JournalEntry.to_datum` reversed)."""
    entry = JournalEntry(
        entry_id=datum["entry_id"],
        posted_ms=statejson.millis(datum["occurred_at"]),
        order_id=datum["order_id"],
        description=datum["description"],
        transaction_currency=datum["transaction_currency"],
        functional_currency=datum["functional_currency"],
        exchange_rate=datum["exchange_rate"],
        lines=tuple(
            JournalLine(
                account=line["account"],
                debit=line["debit"],
                credit=line["credit"],
                functional_debit=line["functional_debit"],
                functional_credit=line["functional_credit"],
                tax_jurisdiction=line["tax_jurisdiction"],
                memo=line["memo"],
                party=line["party"],
            )
            for line in datum["lines"]
        ),
        purchase_order_number=datum["purchase_order_number"],
    )
    # The posting date follows from the time; the ERP must not get another than the record's.
    if entry.posting_date != datum["posting_date"]:
        raise InvalidEntry(
            f"entry {entry.entry_id}: posting date {datum['posting_date']} is not the UTC day "
            f"of its time {datum['occurred_at'].isoformat()}"
        )
    return entry
