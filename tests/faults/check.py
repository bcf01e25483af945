"""The one check that ends every fault run: nothing lost, nothing doubled, read from the outside.

- The ERP, read over Tryton's JSON-RPC (`erp_problems`): exactly one sale per sales-order
  command, one shipment per fulfilment, one credit note (and return, when restocked) per
  refund, one internal shipment per stock adjustment, one posted move per journal entry, a
  note per cancellation, and nothing else; Tryton's stock per SKU and warehouse equal to
  erpbridge's; its ledger equal to finance.journal, account by account, and each customer's
  receivable too.
- The topology, read from its topics: every input event applied (its id in its order's or
  SKU's state) or dead-lettered, as the reference model says; every command issued (on the
  pending topic, or as an entry on finance.journal) reached the connector and succeeded,
  none dead-lettered by the dispatcher; each derived topic's last record per key is the
  model's.

A run without an ERP (the soak's stream-only mode) is checked up to erp.commands.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from streams.contracts import deadletter
from streams.contracts.topics import (
    ERP_COMMANDS,
    ERP_PENDING,
    JOURNAL,
    ORDER_STATUS,
    dead_letter_of,
    spec,
)
from streams.domain.alerts import BACKORDER, OVERSOLD, order_findings, stock_findings
from streams.domain.commands import Command, Kind, sales_order_id
from streams.domain.model import ReferenceModel
from streams.sample.generator import Catalogue
from streams.topology.agents.results import outcome_of
from streams.topology.app import alert_policy_of
from tests.connectors.erp import erp_reads, records
from tests.faults.loop import CODEC, Loop
from tests.streams.topology.agents.pipeline import (
    TopologyState,
    assert_handed_on_like_model,
    assert_matches_model,
    dead_letters,
    latest_by_key,
    model_dead_letters,
    read_all,
    run_model,
)
from tests.support import TrytonLogin

ON_RESERVATIONS = {BACKORDER, OVERSOLD}
"""Alert types whose findings depend on reservations."""

FINAL_STATES = {
    # Tryton processes a confirmed sale in a task after the commit; a server stopped in
    # between leaves the task queued for a queue worker, which the local Tryton does not
    # run: the sale stays confirmed, as erpbridge confirmed it.
    "sale.sale": {"confirmed", "processing", "done", "cancelled"},
    "stock.shipment.out": {"done"},
    "stock.shipment.out.return": {"done"},
    "account.invoice": {"validated"},
    "stock.shipment.internal": {"done"},
    "account.move": {"posted"},
}


@dataclass
class Verdict:
    """What the check found; `problems` empty when nothing was lost or doubled."""

    problems: list[str] = field(default_factory=list)
    lost: int = 0
    doubled: int = 0
    dead_lettered: int = 0
    documents: Counter[str] = field(default_factory=Counter)
    """Documents in the ERP per model."""

    @property
    def ok(self) -> bool:
        return not self.problems


def documents_called_for(commands: dict[str, list[Command]]) -> dict[str, dict[str, list[str]]]:
    """Per Tryton model, the id of each document the commands call for, and the commands
    carrying it (the dispatcher coalesces adjustments and batches journal entries)."""
    wanted: dict[str, dict[str, list[str]]] = {model: {} for model in erp_reads.DOCUMENTS}

    def want(model: str, document_id: str, command_id: str) -> None:
        wanted[model].setdefault(document_id, []).append(command_id)

    for command_id, copies in commands.items():
        command = copies[0]
        body = command.body
        match command.kind:
            case Kind.CREATE_SALES_ORDER:
                want("sale.sale", command_id, command_id)
            case Kind.RECORD_SHIPMENT:
                want("stock.shipment.out", command_id, command_id)
            case Kind.CREATE_CREDIT_NOTE:
                want("account.invoice", command_id, command_id)
                if (
                    body["restock"]
                    and body.get("warehouse_id")
                    and any(line["quantity"] > 0 for line in body["lines"])
                ):
                    want("stock.shipment.out.return", command_id, command_id)
            case Kind.ADJUST_INVENTORY:
                # Coalesced adjustments stand for their parts; a part netting to 0 moves nothing.
                parts = body.get("parts") or [{"command_id": command_id, "delta": body["delta"]}]
                for part in parts:
                    if part["delta"]:
                        want("stock.shipment.internal", part["command_id"], command_id)
            case Kind.POST_JOURNAL_ENTRY:
                for entry in body["entries"]:
                    want("account.move", entry["entry_id"], command_id)
    return wanted


def erp_problems(erp: TrytonLogin, state: TopologyState, found: Verdict) -> None:
    """The ERP against what erpbridge issued and holds: documents, stock, ledger."""
    catalogue = Catalogue.default()
    books = erp_reads.books(
        erp, [sku.code for sku in catalogue.skus], [w.warehouse_id for w in catalogue.warehouses]
    )
    issued = documents_called_for(state.commands)
    for model_name, wanted in issued.items():
        # Cancelling a confirmed sale makes Tryton plan a shipment of its own (no erpbridge
        # id) and cancel it: not a document erpbridge asked for.
        held = {
            i: states
            for i, states in books.documents[model_name].items()
            if i or set(states) != {"cancelled"}
        }
        found.documents[model_name] = sum(len(states) for states in held.values())
        missing = sorted(set(wanted) - set(held))
        extra = sorted(set(held) - set(wanted))
        twice = sorted(f"{i} (issued in {wanted.get(i)})" for i, s in held.items() if len(s) > 1)
        unfinished = sorted(
            f"{i} ({s})" for i, states in held.items() for s in states
            if s not in FINAL_STATES[model_name]
        )  # fmt: skip
        found.lost += len(missing)
        found.doubled += sum(len(states) - 1 for states in held.values()) + len(extra)
        for label, ids in (("missing", missing), ("never issued", extra), ("more than once", twice),
                           ("not finished", unfinished)):  # fmt: skip
            if ids:
                found.problems.append(f"{model_name} in the ERP, {label}: {len(ids)}: {ids[:5]}")
    for command_id, copies in state.commands.items():
        if copies[0].kind is Kind.CANCEL_SALES_ORDER:
            sale = sales_order_id(command_id.split("/", 1)[0])
            notes = books.comments.get(sale, "").count(f"Cancelled by erpbridge ({command_id})")
            if notes != 1:
                found.problems.append(f"{command_id}: {notes} cancellation notes on {sale}")
                found.lost += notes == 0
                found.doubled += max(notes - 1, 0)

    ours = {
        (sku, warehouse): level.on_hand
        for sku, stock in state.stock.items()
        for warehouse, level in stock.warehouses.items()
    }
    stock_differs = {
        key: (ours.get(key, 0), books.stock.get(key, 0))
        for key in ours.keys() | books.stock.keys()
        if ours.get(key, 0) != books.stock.get(key, 0)
    }
    if stock_differs:
        found.problems.append(
            f"stock (erpbridge, ERP) differs: {dict(sorted(stock_differs.items()))}"
        )

    journal: dict[str, tuple[Decimal, Decimal]] = {}
    for copies in state.journal.values():
        for line in copies[0]["lines"]:
            debit, credit = journal.get(line["account"], (Decimal(0), Decimal(0)))
            journal[line["account"]] = (
                debit + line["functional_debit"],
                credit + line["functional_credit"],
            )
    ledger_differs = {
        account: (journal.get(account), books.ledger.get(account))
        for account in journal.keys() | books.ledger.keys()
        if journal.get(account) != books.ledger.get(account)
    }
    if ledger_differs:
        found.problems.append(f"ledger (finance.journal, ERP) by account differs: {ledger_differs}")
    # The sample's customers are Tryton parties with their customer id as code.
    owed: dict[str, Decimal] = {}
    for copies in state.journal.values():
        for line in copies[0]["lines"]:
            if line["party"] is not None:
                owed[line["party"]] = (
                    owed.get(line["party"], Decimal(0))
                    + line["functional_debit"]
                    - line["functional_credit"]
                )
    receivables_differ = {
        party: (owed.get(party), books.receivables.get(party))
        for party in owed.keys() | books.receivables.keys()
        if owed.get(party, Decimal(0)) != books.receivables.get(party, Decimal(0))
    }
    if receivables_differ:
        found.problems.append(
            f"receivables (finance.journal, ERP) by customer differ: {receivables_differ}"
        )


def answered_model(loop: Loop, results: dict[str, list[dict[str, Any]]]) -> ReferenceModel:
    """The reference model over the run's events, then told the ERP's answers as the
    topology was (the model has no ERP: a sale it never hears of keeps its alert open)."""
    model = run_model(loop.events, loop.settings, CODEC)
    now_ms = max((outcome_of(r).at_ms for answers in results.values() for r in answers), default=0)
    for command_id, answers in sorted(results.items()):
        for datum in answers:
            order_id = datum["order_id"]
            if order_id is not None and order_id in model.orders:
                model.answer(order_id, command_id, outcome_of(datum), now_ms)
    return model


def topology_problems(loop: Loop, state: TopologyState, found: Verdict) -> None:
    """The topics against the reference model: inputs, commands, derived records."""
    settings, catalog = loop.settings, loop.catalog
    results = records.results(settings, catalog)
    model = answered_model(loop, results)
    for what, compare in (
        ("the topology's state", lambda: assert_matches_model(state, model, prefix="")),
        ("the commands and journal", lambda: assert_handed_on_like_model(state, model, "", CODEC)),
    ):
        try:
            compare()
        except AssertionError as error:
            found.problems.append(f"{what} differs from the reference model: {error}")

    # Every input event: applied (remembered by its order or SKU) or dead-lettered.
    letters = dead_letters(settings, catalog, CODEC, "")
    found.dead_lettered = len(letters)
    if letters != model_dead_letters(model):
        found.problems.append(f"dead letters {letters} != the model's {model_dead_letters(model)}")
    accounted = {event_id for event_id, _ in letters}
    accounted.update(e for o in state.orders.values() for e in o.seen)
    accounted.update(e for s in state.stock.values() for e in s.seen)
    unaccounted = sorted(
        event.datum["event_id"] for event in loop.events if event.datum["event_id"] not in accounted
    )
    if unaccounted:
        found.lost += len(unaccounted)
        found.problems.append(
            f"{len(unaccounted)} input events neither applied nor dead-lettered: {unaccounted[:10]}"
        )

    # Every command issued reached the connector and succeeded.
    sent: dict[str, list[Command]] = {}
    for message in read_all(settings, catalog.physical(ERP_COMMANDS)):
        datum = CODEC.decode(message.value(), expected=spec(ERP_COMMANDS).value_schema).datum
        command = Command.from_datum(datum)
        sent.setdefault(command.command_id, []).append(command)
    reached = documents_called_for(sent)
    for model_name, wanted in documents_called_for(state.commands).items():
        never = sorted(set(wanted) - set(reached[model_name]))
        if never:
            found.lost += len(never)
            found.problems.append(
                f"{len(never)} {model_name} issued but never sent to the ERP: {never[:5]}"
            )
    failed = {
        c: [r["error"] for r in rs if r["status"] != "SUCCEEDED"] for c, rs in results.items()
    }
    failed = {c: errors for c, errors in failed.items() if errors}
    if failed:
        found.problems.append(f"ERP commands failed: {dict(list(failed.items())[:5])}")
    # Without an ERP nobody answers; the check stops at erp.commands.
    unanswered = sorted(set(sent) - set(results)) if loop.erp is not None else []
    if unanswered:
        found.problems.append(f"{len(unanswered)} commands without a result: {unanswered[:5]}")
    for name in (ERP_PENDING, JOURNAL):
        letters = read_all(settings, catalog.physical(dead_letter_of(name)))
        if letters:
            reasons = Counter(
                deadletter.describe(m.headers() or [])[deadletter.REASON] for m in letters
            )
            found.problems.append(f"dispatcher dead letters of {name}: {dict(reasons)}")
    erp_letters = records.dead_letters(settings, catalog)
    if erp_letters:
        found.problems.append(
            f"ERP commands dead-lettered: {[(d.key, d.reason) for d in erp_letters]}"
        )

    # The derived topics: the last record of each key is the model's state (availability
    # is compared by assert_matches_model above).
    statuses = {
        key.decode(): CODEC.decode(value).datum["status"]
        for key, value in latest_by_key(read_all(settings, catalog.physical(ORDER_STATUS))).items()
        if value is not None
    }
    expected = {o: order.status.value for o, order in model.orders.items() if order.status}
    if statuses != expected:
        wrong = {o: (statuses.get(o), s) for o, s in expected.items() if statuses.get(o) != s}
        found.problems.append(f"last orders.status (topic, model) differs: {wrong}")
    open_alerts = sorted(
        (datum["alert_type"], datum["entity_id"])
        for datum in state.alerts.values()
        if datum["status"] == "OPEN"
    )
    # Which orders got the last units depends on arrival order: alerts on reservations are
    # the worker's own state's findings, the others the model's.
    policy, now_ms = alert_policy_of(settings), int(time.time() * 1000)
    expected_open = sorted(
        [(a.alert_type, a.entity_id) for a in model.alerts.values()
         if a.resolved_ms is None and a.alert_type not in ON_RESERVATIONS]
        + [(kind, order_id) for order_id, order in state.orders.items()
           for kind in order_findings(order, policy, now_ms) if kind in ON_RESERVATIONS]
        + [(kind, sku) for sku, stock in state.stock.items()
           for kind in stock_findings(stock, policy) if kind in ON_RESERVATIONS]
    )  # fmt: skip
    if open_alerts != expected_open:
        differ = sorted(set(open_alerts) ^ set(expected_open))
        found.problems.append(f"open alerts differ (on one side only): {differ[:20]}")


def verdict(loop: Loop) -> Verdict:
    """Read everything and compare; raises nothing, so the soak can count what it finds."""
    found = Verdict()
    state = TopologyState.read(loop.settings, loop.catalog, CODEC)
    topology_problems(loop, state, found)
    if loop.erp is not None:
        erp_problems(loop.erp, state, found)
    return found


def assert_nothing_lost_nor_doubled(loop: Loop) -> Verdict:
    found = verdict(loop)
    assert found.ok, "\n".join(found.problems)
    return found
