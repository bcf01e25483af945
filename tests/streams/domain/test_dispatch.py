"""Dispatch rules without Kafka: the token bucket on a fake clock, lanes, coalescing, and
which offsets are safe to commit."""

from __future__ import annotations

from decimal import Decimal
from itertools import count
from typing import Any

import pytest

from streams.contracts.topics import ERP_PENDING, JOURNAL
from streams.domain.commands import Command, Kind, Lane
from streams.domain.dispatch import (
    MAX_ADJUSTMENT_PARTS,
    DispatchQueue,
    OffsetTracker,
    Pending,
    Source,
    TokenBucket,
    batch_id,
    merge,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sends_within(bucket: TokenBucket, clock: FakeClock, seconds: float, step: float) -> int:
    """How many sends the bucket allows, trying every `step` seconds for `seconds`."""
    sent = 0
    end = clock.now + seconds
    while clock.now < end - 1e-12:
        while bucket.take():
            sent += 1
        clock.now += step
    return sent


# --- token bucket ---------------------------------------------------------------------------


def test_bucket_starts_empty_and_fills_to_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=50, burst=10, clock=clock)
    assert not bucket.take()
    assert bucket.delay() == pytest.approx(0.02)
    clock.now += 60
    assert bucket.tokens() == 10
    assert sum(bucket.take() for _ in range(20)) == 10


def test_bucket_rate_and_burst_bound_every_window() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=50, burst=10, clock=clock)
    clock.now += 5  # full
    times: list[float] = []
    end = clock.now + 10
    while clock.now < end:
        while bucket.take():
            times.append(clock.now)
        clock.now += 0.001
    assert len(times) == pytest.approx(10 + 50 * 10, abs=1)
    worst = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert worst <= 60


def test_bucket_resize_scales_rate_and_burst_and_grants_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=60, burst=12, clock=clock, share=0.0)
    clock.now += 10
    assert bucket.tokens() == 0
    assert bucket.delay() is None  # no share, no sends

    bucket.resize(0.5)
    assert bucket.tokens() == 0  # a bigger share is earned, not given
    assert bucket.capacity == 6
    clock.now += 10
    assert bucket.tokens() == 6
    assert sends_within(bucket, clock, 10, 0.001) == pytest.approx(6 + 30 * 10, abs=1)

    clock.now += 10
    bucket.resize(1 / 3)
    assert bucket.tokens() == pytest.approx(4)  # capped at the smaller burst
    bucket.resize(0.0)
    assert bucket.tokens() == 0


def test_bucket_smaller_than_a_token_still_sends_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=1, clock=clock, share=0.25)  # 0.25 tokens at most
    assert sends_within(bucket, clock, 20, 0.01) == pytest.approx(2.5 * 20, abs=1)


# --- commands -------------------------------------------------------------------------------

_offsets = count()


def pending(
    command: Command, partition: int = 0, queued_ms: int = 0, topic: str = ERP_PENDING
) -> Pending:
    return Pending(command, Source(topic, partition, next(_offsets)), queued_ms)


def order(n: int) -> Command:
    body = {"order_id": f"o-{n}", "reason": None}
    return Command(f"o-{n}/cancel/1", Kind.CANCEL_SALES_ORDER, "erp", n, f"o-{n}", body)


def adjustment(
    n: int, delta: int, sku: str = "SKU-1", warehouse: str = "WH-1", reason: str = "damage"
) -> Command:
    body = {"sku": sku, "warehouse_id": warehouse, "delta": delta, "reason": reason}
    body["reference"] = f"ref-{n}"
    return Command(
        f"{sku}@{warehouse}/adjust/e-{n}",
        Kind.ADJUST_INVENTORY,
        "erp",
        n,
        f"{sku}@{warehouse}",
        body,
    )


def journal(n: int, entries: int = 1) -> Command:
    body = {"entries": [journal_entry(f"je-{n}-{i}") for i in range(entries)]}
    return Command(f"je-{n}/post", Kind.POST_JOURNAL_ENTRY, "erp", n, f"o-{n}", body)


def journal_entry(entry_id: str) -> dict[str, Any]:
    return {"entry_id": entry_id, "exchange_rate": Decimal(1), "lines": []}


def drain(queue: DispatchQueue) -> list[Command]:
    out = []
    while (dispatch := queue.pop()) is not None:
        out.append(dispatch.command)
    return out


# --- lanes ----------------------------------------------------------------------------------


def test_most_urgent_lane_first_fifo_within_a_lane() -> None:
    queue = DispatchQueue(journal_batch_size=1)
    shipment = Command("o-9/shipment/f", Kind.RECORD_SHIPMENT, "erp", 0, "o-9", {})
    for command in (adjustment(1, 1, sku="A"), journal(2), shipment, order(3), order(4)):
        queue.push(pending(command))
    assert queue.depth() == {Lane.ORDERS: 2, Lane.SHIPMENTS: 1, Lane.BOOKKEEPING: 2}
    ids = [c.command_id for c in drain(queue)]
    assert ids == [
        "o-3/cancel/1",
        "o-4/cancel/1",
        "o-9/shipment/f",
        "A@WH-1/adjust/e-1",
        "je-2/post",
    ]
    assert len(queue) == 0 and queue.held == 0


def test_oldest_and_partitions_per_lane() -> None:
    queue = DispatchQueue(journal_batch_size=10)
    assert queue.oldest_ms() is None
    queue.push(pending(journal(1), partition=2, queued_ms=500))
    queue.push(pending(order(2), partition=0, queued_ms=300))
    # Read from the journal, it merges into the first batch all the same.
    queue.push(pending(journal(3), partition=2, queued_ms=100, topic=JOURNAL))
    assert queue.oldest_ms() == 100
    assert queue.partitions_in(Lane.BOOKKEEPING) == {(ERP_PENDING, 2), (JOURNAL, 2)}
    assert queue.partitions_in(Lane.ORDERS) == {(ERP_PENDING, 0)}


# --- coalescing -----------------------------------------------------------------------------


def test_adjustments_of_one_sku_and_warehouse_net_into_one() -> None:
    queue = DispatchQueue(journal_batch_size=10)
    deltas = [5, -2, 7, -1]
    for n, delta in enumerate(deltas):
        queue.push(pending(adjustment(n, delta)))
    queue.push(pending(adjustment(9, 3, warehouse="WH-2")))
    assert queue.held == 5 and len(queue) == 2

    first = queue.pop()
    assert first is not None
    assert first.saved == 3
    body = first.command.body
    assert body["delta"] == sum(deltas)
    assert [p["delta"] for p in body["parts"]] == deltas
    assert [p["command_id"] for p in body["parts"]] == [
        f"SKU-1@WH-1/adjust/e-{n}" for n in range(4)
    ]
    assert body["reason"] == "damage" and body["reference"] is None  # references differ
    assert first.command.command_id.startswith("batch/")
    assert first.command.created_ms == 0

    second = queue.pop()
    assert second is not None and second.saved == 0
    assert second.command == adjustment(9, 3, warehouse="WH-2")  # alone: sent as it came


def test_mixed_reasons_say_coalesced() -> None:
    merged = merge(
        [pending(adjustment(1, 1, reason="damage")), pending(adjustment(2, 1, reason="count"))]
    )
    assert merged.body["reason"] == "coalesced"


def test_adjustments_stop_merging_at_the_parts_cap() -> None:
    queue = DispatchQueue(journal_batch_size=10)
    for n in range(MAX_ADJUSTMENT_PARTS + 1):
        queue.push(pending(adjustment(n, 1)))
    assert len(queue) == 2


def test_journal_entries_batch_up_to_the_size() -> None:
    queue = DispatchQueue(journal_batch_size=5)
    for n in range(6):
        queue.push(pending(journal(n)))
    queue.push(pending(journal(6, entries=3)))  # fits the second batch: 1 + 3
    queue.push(pending(journal(7, entries=2)))  # 4 + 2 > 5: a third batch
    batches = drain(queue)
    sizes = [len(c.body["entries"]) for c in batches]
    assert sizes == [5, 4, 2]
    entry_ids = [e["entry_id"] for c in batches for e in c.body["entries"]]
    assert sorted(entry_ids) == sorted(
        [f"je-{n}-0" for n in range(6)] + ["je-6-0", "je-6-1", "je-6-2", "je-7-0", "je-7-1"]
    )
    assert len(set(entry_ids)) == len(entry_ids)


def test_journal_batches_keep_their_lane_place_and_orders_overtake() -> None:
    queue = DispatchQueue(journal_batch_size=10)
    queue.push(pending(journal(1)))
    queue.push(pending(adjustment(2, 1)))
    queue.push(pending(journal(3)))
    queue.push(pending(order(4)))
    kinds = [c.kind for c in drain(queue)]
    assert kinds == [Kind.CANCEL_SALES_ORDER, Kind.POST_JOURNAL_ENTRY, Kind.ADJUST_INVENTORY]


def test_merged_ids_are_deterministic_and_order_free() -> None:
    a, b, c = adjustment(1, 1), adjustment(2, -1), adjustment(3, 4)
    assert merge([pending(a), pending(b)]).command_id == merge([pending(b), pending(a)]).command_id
    assert batch_id(["x", "y"]) == batch_id(["y", "x"])
    assert merge([pending(a), pending(b)]).command_id != merge([pending(a), pending(c)]).command_id


def test_orders_never_merge() -> None:
    with pytest.raises(ValueError):
        merge([pending(order(1)), pending(order(2))])


def test_a_sent_merge_acknowledges_every_member_source() -> None:
    queue = DispatchQueue(journal_batch_size=10)
    members = [pending(journal(n), partition=n % 3) for n in range(4)]
    for member in members:
        queue.push(member)
    dispatch = queue.pop()
    assert dispatch is not None
    assert dispatch.sources == tuple(m.source for m in members)


# --- revocation and failed sends ------------------------------------------------------------


def test_drop_forgets_revoked_partitions_and_keeps_the_rest_merging() -> None:
    queue = DispatchQueue(journal_batch_size=3)
    queue.push(pending(journal(1), partition=0))
    queue.push(pending(journal(2), partition=1))
    queue.push(pending(order(3), partition=1))
    queue.push(pending(adjustment(4, 2), partition=1))
    assert queue.drop({(ERP_PENDING, 1)}) == 3
    assert queue.held == 1 and queue.depth() == {
        Lane.ORDERS: 0,
        Lane.SHIPMENTS: 0,
        Lane.BOOKKEEPING: 1,
    }
    queue.push(pending(journal(5), partition=0))
    queue.push(pending(journal(6), partition=0))
    queue.push(pending(journal(7), partition=0))  # 4 entries: a second batch
    batches = drain(queue)
    assert [[e["entry_id"] for e in c.body["entries"]] for c in batches] == [
        ["je-1-0", "je-5-0", "je-6-0"],
        ["je-7-0"],
    ]


def test_requeued_dispatch_goes_first_in_its_lane_unchanged() -> None:
    queue = DispatchQueue(journal_batch_size=10)
    queue.push(pending(adjustment(1, 1)))
    queue.push(pending(adjustment(2, 1)))
    dispatch = queue.pop()
    assert dispatch is not None
    queue.push(pending(adjustment(3, 5)))
    queue.requeue(dispatch)
    assert queue.held == 3
    again = queue.pop()
    assert again is not None and again.command == dispatch.command
    last = queue.pop()
    assert last is not None and last.command.body["delta"] == 5


def test_members_put_back_apart_go_first_each_alone() -> None:
    queue = DispatchQueue(journal_batch_size=10)
    for n in range(3):
        queue.push(pending(journal(n)))
    dispatch = queue.pop()
    assert dispatch is not None and len(dispatch.members) == 3
    queue.push(pending(journal(5)))
    queue.requeue_apart(dispatch.members[1:])  # the first could not be sent
    assert queue.held == 3
    # Apart and first, in their order; what came meanwhile still merges behind them.
    assert [[e["entry_id"] for e in c.body["entries"]] for c in drain(queue)] == [
        ["je-1-0"],
        ["je-2-0"],
        ["je-5-0"],
    ]


# --- offsets --------------------------------------------------------------------------------


def test_commit_never_passes_a_waiting_record() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12, 14):  # 13 is a gap (a transaction marker, say)
        tracker.received(Source(ERP_PENDING, 0, offset))
    tracker.received(Source(ERP_PENDING, 1, 0))
    assert tracker.committable() == {(ERP_PENDING, 0): 10, (ERP_PENDING, 1): 0}
    tracker.done(Source(ERP_PENDING, 0, 11))
    tracker.done(Source(ERP_PENDING, 0, 12))
    assert tracker.committable()[ERP_PENDING, 0] == 10
    tracker.done(Source(ERP_PENDING, 0, 10))
    assert tracker.committable()[ERP_PENDING, 0] == 14
    tracker.done(Source(ERP_PENDING, 0, 14))
    tracker.done(Source(ERP_PENDING, 1, 0))
    assert tracker.committable() == {(ERP_PENDING, 0): 15, (ERP_PENDING, 1): 1}


def test_one_partition_number_of_two_topics_commits_apart() -> None:
    tracker = OffsetTracker()
    tracker.received(Source(ERP_PENDING, 0, 7))
    tracker.received(Source(JOURNAL, 0, 3))
    tracker.received(Source(JOURNAL, 0, 4))
    tracker.done(Source(JOURNAL, 0, 4))
    tracker.done(Source(ERP_PENDING, 0, 7))
    # The journal's record 3 still waits: its partition stays there, the pending one moves on.
    assert tracker.committable() == {(ERP_PENDING, 0): 8, (JOURNAL, 0): 3}
    tracker.forget([(ERP_PENDING, 0)])
    assert tracker.committable() == {(JOURNAL, 0): 3}


def test_drop_forgets_only_the_revoked_topic_partitions() -> None:
    queue = DispatchQueue(journal_batch_size=10)
    queue.push(pending(journal(1), partition=1))
    queue.push(pending(journal(2), partition=1, topic=JOURNAL))
    queue.push(pending(order(3), partition=1, topic=ERP_PENDING))
    assert queue.drop({(JOURNAL, 1)}) == 1
    assert queue.partitions_in(Lane.BOOKKEEPING) == {(ERP_PENDING, 1)}
    assert queue.partitions_in(Lane.ORDERS) == {(ERP_PENDING, 1)}
    assert queue.held == 2


def test_forgotten_partitions_are_not_committed() -> None:
    tracker = OffsetTracker()
    tracker.received(Source(ERP_PENDING, 0, 5))
    tracker.forget([(ERP_PENDING, 0)])
    tracker.done(Source(ERP_PENDING, 0, 5))  # a send that finished after revocation
    assert tracker.committable() == {}
