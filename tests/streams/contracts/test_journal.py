"""finance.journal's records read back: the entry the topology wrote, so the PostJournalEntry
the dispatcher makes of it is the one the worker sent to the pending topic itself (JSON
there, Avro on erp.commands), byte for byte; records that are no entry are refused."""

from __future__ import annotations

import time
from datetime import date

import pytest

from streams.contracts.codec import Codec, DecodeError
from streams.contracts.journal import InvalidEntry, decode_entry, encode_entry, entry_of
from streams.contracts.topics import ERP_COMMANDS, JOURNAL, spec
from streams.domain.commands import Command
from streams.domain.events import InputEvent
from streams.domain.finance import FinanceMapping, JournalEntry, entry_command
from streams.domain.model import ReferenceModel
from streams.ops.settings import REPO_ROOT
from streams.sample.generator import DEFAULT_START, Catalogue, generate
from tests.streams.domain.builders import RULES
from tests.support import STORE

CODEC = Codec(STORE)
FINANCE = FinanceMapping.from_file(REPO_ROOT / "config" / "finance.json")


def sample_entries() -> list[JournalEntry]:
    """Every entry the rules make of a sample: each template, currencies and taxes."""
    model = ReferenceModel(RULES, FINANCE)
    now_ms = int(time.time() * 1000)
    for event in generate(11, 12, Catalogue.default(), DEFAULT_START):
        datum = CODEC.decode(CODEC.encode(event.schema_name, event.datum, topic=event.topic)).datum
        model.feed(event.topic, InputEvent.from_datum(datum, spec(event.topic).key), now_ms)
    return list(model.journal.values())


def test_an_entry_read_back_makes_the_command_the_worker_sent() -> None:
    entries = sample_entries()
    templates = {e.entry_id.split("/")[2] for e in entries}
    assert {"sale", "capture", "settlement", "credit-note", "cogs", "restock"} <= templates
    for entry in entries:
        read_back = decode_entry(CODEC, encode_entry(CODEC, entry, topic=JOURNAL))
        command = entry_command(read_back, "tryton")
        # What the worker put on the pending topic, and what the dispatcher read there.
        was = entry_command(entry, "tryton")
        assert command.encode() == was.encode(), entry.entry_id
        sent = CODEC.encode("erpbridge.ErpCommand", command.to_datum(), topic=ERP_COMMANDS)
        assert sent == CODEC.encode(
            "erpbridge.ErpCommand", Command.decode(was.encode()).to_datum(), topic=ERP_COMMANDS
        )


def test_records_that_are_no_entry_are_refused() -> None:
    (entry, *_) = sample_entries()
    datum = CODEC.decode(encode_entry(CODEC, entry, topic=JOURNAL)).datum
    with pytest.raises(InvalidEntry, match="posting date 2001-01-01"):
        entry_of({**datum, "posting_date": date(2001, 1, 1)})
    with pytest.raises(DecodeError) as wrong:
        command = entry_command(entry, "tryton").to_datum()
        decode_entry(CODEC, CODEC.encode("erpbridge.ErpCommand", command, topic=ERP_COMMANDS))
    assert wrong.value.reason == "wrong-schema"
    with pytest.raises(DecodeError) as empty:
        decode_entry(CODEC, None)
    assert empty.value.reason == "empty"
