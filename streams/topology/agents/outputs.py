"""The work the agents hand on: ERP commands to the pending topic, the finance journal, alerts.

Sends go through Faust's buffer without waiting for each one: Faust flushes the producer
before it commits the offsets of the records that caused them. Every output carries a
deterministic id, so a re-send after a crash or a replay is recognisable downstream.
"""

from __future__ import annotations

import faust

from streams.contracts.codec import Codec
from streams.contracts.topics import ALERTS, ERP_PENDING, JOURNAL, TopicCatalog
from streams.domain.alerts import Alert
from streams.domain.commands import Command
from streams.domain.finance import JournalEntry, entry_command


class Outputs:
    def __init__(self, app: faust.App, catalog: TopicCatalog, codec: Codec, target: str) -> None:
        self._codec = codec
        self._target = target
        self._pending = app.topic(catalog.physical(ERP_PENDING))
        self._journal = app.topic(catalog.physical(JOURNAL))
        self._alerts = app.topic(catalog.physical(ALERTS))

    def command(self, command: Command) -> None:
        self._pending.send_soon(key=command.dispatch_key.encode(), value=command.encode())

    def journal(self, entry: JournalEntry) -> None:
        """The entry for analysts, and as a PostJournalEntry for the ERP."""
        self._journal.send_soon(
            key=entry.entry_id.encode(),
            value=self._codec.encode(
                "erpbridge.JournalEntry", entry.to_datum(), topic=self._journal.get_topic_name()
            ),
        )
        self.command(entry_command(entry, self._target))

    def alert(self, alert: Alert) -> None:
        self._alerts.send_soon(
            key=alert.alert_id.encode(),
            value=self._codec.encode(
                "erpbridge.ReconciliationAlert",
                alert.to_datum(),
                topic=self._alerts.get_topic_name(),
            ),
        )
