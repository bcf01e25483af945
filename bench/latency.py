"""Latency at a steady input rate: produce paced, match derived outputs to their cause.

The bench produces the workload at a fixed rate to a running worker, stamping each input
record with its produce time (its Kafka timestamp), and reads `orders.status`, whose
records name the input event that caused them (`cause_event_id`). Latency is the output
record's timestamp (set by the worker's producer when it sends) minus the cause's produce
time; the time the bench itself received the output is kept as a second figure.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer

from bench.cluster import BenchError, await_drained, preload
from bench.machine import CpuMeter, CpuUsage
from bench.worker import Worker
from bench.workload import Workload
from streams.contracts.codec import DecodeError, codec_from_settings
from streams.contracts.topics import ORDER_STATUS, TopicCatalog, spec
from streams.ops.settings import Settings

_QUIET = 3.0
"""Outputs are complete once none arrived for this long (at least) after the inputs were
consumed."""
_CONSUME_TIMEOUT = 60.0
_OUTPUT_TIMEOUT = 60.0


@dataclass
class LatencyResult:
    target_rate: float
    opening: int
    """Opening-stock snapshots loaded (unpaced, not measured) before the paced events."""
    produced: int
    """Paced events."""
    produce_seconds: float
    max_behind_ms: float
    """How far the paced producer fell behind its schedule at worst."""
    consumed: int | None
    """Input events the worker had consumed when the bench stopped waiting."""
    outputs: int
    """orders.status records read."""
    warmup_outputs: int
    """... of which caused by events of the warm-up, not in the figures."""
    unmatched: int
    """... of which name a cause outside the paced events."""
    causes: int
    """Distinct input events (after the warm-up) with at least one output."""
    latencies_ms: list[float] = field(default_factory=list)
    """Output record timestamp - produce time, one per output after the warm-up."""
    observed_ms: list[float] = field(default_factory=list)
    """Time the bench received the output - produce time."""
    notes: list[str] = field(default_factory=list)
    usage: CpuUsage | None = None
    """Cores used while the inputs were produced."""
    totals: dict[str, Any] = field(default_factory=dict)
    """The worker's accounting totals at the end."""

    @property
    def achieved_rate(self) -> float:
        return self.produced / self.produce_seconds if self.produce_seconds > 0 else 0.0


class OutputCollector(threading.Thread):
    """Reads one output topic from its beginning and records (cause, record time, receipt time)."""

    def __init__(self, settings: Settings, topic: str, schema: str, group: str) -> None:
        super().__init__(name="output-collector", daemon=True)
        self.codec = codec_from_settings(settings)
        self.topic = topic
        self.schema = schema
        self.consumer = Consumer(
            {
                **settings.confluent_config(),
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.records: list[tuple[str, int, float]] = []
        self.decode_errors = 0
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            self.consumer.subscribe([self.topic])
            while not self.stopping.is_set():
                for message in self.consumer.consume(num_messages=500, timeout=0.1):
                    self._record(message, time.time() * 1000)
        except BaseException as exc:  # reported by the caller, not lost in the thread
            self.error = exc
        finally:
            self.consumer.close()

    def _record(self, message: Message, received_ms: float) -> None:
        if message.error() is not None:
            return
        try:
            datum = self.codec.decode(message.value(), expected=self.schema).datum
        except DecodeError:
            self.decode_errors += 1
            return
        _kind, timestamp = message.timestamp()
        self.records.append((str(datum["cause_event_id"]), timestamp, received_ms))

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


def measure_paced(
    settings: Settings,
    workload: Workload,
    worker: Worker,
    *,
    rate: float,
    seconds: float,
    warmup: float,
    meter: CpuMeter | None = None,
    say: Callable[[str], None] = print,
) -> LatencyResult:
    """Load the opening stock, then produce `rate` events/s for `seconds` (at most the rest
    of the workload) to a ready worker, and match its orders.status outputs to their causes."""
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    catalog = TopicCatalog.from_settings(settings)
    physical = [catalog.physical(name) for name in workload.topics]
    opening = workload.opening_stock()
    if opening >= len(workload):
        raise BenchError(
            f"the first {len(workload):,} events are all opening stock ({workload.skus:,} SKUs "
            "x 3 warehouses): no orders to measure latency on; use more --events or fewer --skus"
        )
    count = min(len(workload) - opening, math.ceil(rate * seconds))
    notes = []
    if count < rate * seconds:
        notes.append(
            f"the workload has {len(workload) - opening:,} events after the opening stock: the "
            f"paced run lasted {count / rate:.1f}s instead of {seconds:.0f}s"
        )
    collector = OutputCollector(
        settings,
        catalog.physical(ORDER_STATUS),
        spec(ORDER_STATUS).value_schema or "erpbridge.OrderStatusChanged",
        group=f"{settings.topic_prefix}bench-latency",
    )
    collector.start()
    try:
        # The shop's stock exists before its orders: loaded flat out, applied, then the clock runs.
        loaded = preload(settings, workload, stop=opening)
        say(
            f"  latency: opening stock ({opening:,} snapshots) loaded in {loaded:.1f}s; "
            "waiting for the worker to apply it"
        )
        applied = _await_consumption(worker, opening, timeout=_CONSUME_TIMEOUT + opening / 100)
        # ... and everything they caused (availability, changelogs): the clock starts on an
        # idle topology.
        if applied is None or applied < opening or await_drained(settings, catalog) is None:
            raise BenchError(
                f"the worker did not finish the {opening:,} opening-stock snapshots (consumed "
                f"{applied}); log {worker.log_path}:\n{worker.log_tail()}"
            )
        before = meter.snapshot(time.monotonic()) if meter else None
        produced_at, produce_seconds, behind = _produce_paced(
            settings, workload, physical, range(opening, opening + count), rate, worker
        )
        after = meter.snapshot(time.monotonic()) if meter else None
        say(
            f"  latency: produced {count:,} events in {produce_seconds:.1f}s "
            f"({count / produce_seconds:,.0f}/s); waiting for the worker and its outputs"
        )
        consumed = _await_consumption(worker, opening + count, timeout=_CONSUME_TIMEOUT)
        if consumed is None or consumed < opening + count:
            notes.append(
                f"the worker consumed {consumed if consumed is not None else 'an unknown number of'}"
                f" of {opening + count:,} inputs within {_CONSUME_TIMEOUT:.0f}s of the last one"
            )
        _await_quiet(collector, produced_at)
        totals = (worker.accounting() or {}).get("totals", {})
    finally:
        collector.stop()
    if collector.error is not None:
        raise BenchError(f"reading {collector.topic} failed: {collector.error!r}")
    started = min(produced_at.values(), default=0.0)
    result = LatencyResult(
        target_rate=rate,
        opening=opening,
        produced=count,
        produce_seconds=produce_seconds,
        max_behind_ms=behind * 1000,
        consumed=consumed,
        outputs=len(collector.records),
        warmup_outputs=0,
        unmatched=0,
        causes=0,
        notes=notes,
        usage=CpuMeter.usage(before, after) if before and after else None,
        totals=dict(totals),
    )
    causes = set()
    for cause, timestamp, received in collector.records:
        sent = produced_at.get(cause)
        if sent is None:
            result.unmatched += 1
        elif sent < started + warmup * 1000:
            result.warmup_outputs += 1
        else:
            causes.add(cause)
            result.latencies_ms.append(timestamp - sent)
            result.observed_ms.append(received - sent)
    result.causes = len(causes)
    if collector.decode_errors:
        notes.append(f"{collector.decode_errors} {collector.topic} records did not decode")
    if not collector.records:
        notes.append(
            f"no {ORDER_STATUS} output at all: this worker derives no order status "
            "(or not within the wait), so there is no latency to report"
        )
    elif result.latencies_ms and max(result.latencies_ms) <= 0:
        notes.append(
            "output timestamps are not after the inputs': the worker copies input timestamps"
        )
    return result


def _produce_paced(
    settings: Settings,
    workload: Workload,
    physical: list[str],
    events: range,
    rate: float,
    worker: Worker,
) -> tuple[dict[str, float], float, float]:
    """Produce `events` at `rate`; return produce time (epoch ms) by event id, the seconds it
    took and the worst lateness against the schedule (seconds)."""
    producer = Producer(settings.producer_config())
    failures: list[str] = []

    def report(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error.str())

    produced_at: dict[str, float] = {}
    started = time.monotonic()
    behind = 0.0
    next_check = started + 1.0
    index, count = 0, len(events)
    while index < count:
        now = time.monotonic()
        due = started + index / rate
        if due > now:
            # Sleep to the next due event (at least 1 ms, so bursts of due events go together):
            # a busy loop here would take a core from the worker and the broker.
            time.sleep(max(due - now, 0.001))
            continue
        behind = max(behind, now - due)
        while index < count and started + index / rate <= now:
            event = events[index]
            stamp = time.time() * 1000
            try:
                producer.produce(
                    physical[workload.topic_of[event]],
                    key=workload.keys[event],
                    value=workload.values[event],
                    timestamp=int(stamp),
                    on_delivery=report,
                )
            except BufferError:
                producer.poll(0.05)
                continue
            produced_at[workload.event_ids[event]] = stamp
            index += 1
        producer.poll(0)
        if now >= next_check:
            worker.check_alive()
            next_check = now + 1.0
    elapsed = time.monotonic() - started
    unconfirmed = producer.flush(30)
    if unconfirmed or failures:
        raise BenchError(
            f"paced production: {len(failures)} failed, {unconfirmed} unconfirmed: "
            + "; ".join(failures[:5])
        )
    return produced_at, elapsed, behind


def _await_consumption(worker: Worker, count: int, timeout: float) -> int | None:
    """Inputs consumed once they reach `count`, or at the deadline."""
    deadline = time.monotonic() + timeout
    consumed = worker.inputs_consumed()
    while (consumed is None or consumed < count) and time.monotonic() < deadline:
        worker.check_alive()
        time.sleep(0.2)
        consumed = worker.inputs_consumed()
    return consumed


def _await_quiet(collector: OutputCollector, produced_at: dict[str, float]) -> None:
    """Return once no output arrived for _QUIET seconds, or for 1.5 times the longest
    latency seen so far if that is longer (a slow topology emits in bursts), or at the
    deadline."""
    deadline = time.monotonic() + _OUTPUT_TIMEOUT
    seen = 0
    longest = 0.0
    last_change = time.monotonic()
    while time.monotonic() < deadline and collector.is_alive():
        records = collector.records[seen:]
        if records:
            seen += len(records)
            last_change = time.monotonic()
            for cause, _timestamp, received in records:
                if cause in produced_at:
                    longest = max(longest, (received - produced_at[cause]) / 1000)
        elif time.monotonic() - last_change >= max(_QUIET, 1.5 * longest):
            return
        time.sleep(0.2)
