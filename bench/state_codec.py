"""State encoding: JSON through dicts, as releases up to 9b01a66 stored state, beside
format 1 (streams.domain.statecodec), on states the sample leaves in the reference model.

    .venv/bin/python -m bench.state_codec [--orders 1500] [--rounds 7]

The sample's events go through the Avro codec first, as the worker decodes them, then into
two reference models side by side: one with this release's rules, one where closed claims
keep their lines, as 9b01a66's did (`Claim.settle` switched off), so the busiest SKU can be
shown as each release keeps it. Prints, per state: bytes, and the median over rounds of
the CPU µs per encode and per decode. It prints figures; it asserts nothing but that each
encoding reads back as the state it was given. docs/benchmarks.md, "State encoding", has
the method and recorded figures.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import msgspec

from streams.contracts.codec import Codec
from streams.contracts.schema_store import SchemaStore
from streams.contracts.topics import spec
from streams.domain import statecodec, statejson
from streams.domain.events import InputEvent
from streams.domain.finance import FinanceMapping
from streams.domain.model import ReferenceModel
from streams.domain.orders import Order
from streams.domain.routing import RoutingRules
from streams.domain.stock import Claim, SkuStock
from streams.ops.settings import REPO_ROOT
from streams.sample.generator import DEFAULT_START, Catalogue, generate

SEED = 7
TARGET_ROUND_S = 0.05
"""Each round repeats an encode or decode for about this long (CPU time)."""


@dataclass(frozen=True)
class Figures:
    size: int
    encode_us: float
    decode_us: float


Coded = tuple[Any, Callable[[Any], bytes], Callable[[bytes], Any]]
"""A state, and how it is encoded and decoded."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1500, help="orders in the sample")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per figure")
    args = parser.parse_args()

    started = time.perf_counter()
    rows, movements = representative_states(args.orders)
    print(
        f"erpbridge state encoding: sample seed {SEED}, {args.orders} orders "
        f"({time.perf_counter() - started:.0f} s to build); Python {platform.python_version()}, "
        f"msgspec {msgspec.__version__}; median of {args.rounds} rounds of ~{TARGET_ROUND_S} s of CPU"
    )
    print(f"{'':<50} {'9b01a66: JSON':>24}   {'now: format 1':>24}")
    print(
        f"{'state':<50} {'bytes':>8} {'enc µs':>7} {'dec µs':>7}   "
        f"{'bytes':>8} {'enc µs':>7} {'dec µs':>7}   (µs: CPU per call)"
    )
    for name, old, new in rows:
        print(f"{name:<50} {_row(old, args.rounds)}   {_row(new, args.rounds)}")
    print(
        f"movements kept for late snapshots per SKU and warehouse at the end: mean "
        f"{statistics.mean(movements):.1f}, max {max(movements)}"
    )


def representative_states(
    orders: int,
) -> tuple[list[tuple[str, Coded | None, Coded | None]], list[int]]:
    """Orders (the same state both ways) and SKUs (each as its release keeps it); and the
    movements each SKU and warehouse keeps at the end."""
    codec = Codec(SchemaStore.from_directory(REPO_ROOT / "schemas"))
    settled, whole = _model(), _model()
    peak: tuple[int, bytes, bytes] = (0, b"", b"")
    for sample in generate(SEED, orders, Catalogue.default(), DEFAULT_START):
        # As the worker decodes it: Decimals carry their schema's scale.
        datum = codec.decode(codec.encode(sample.schema_name, sample.datum, topic="bench")).datum
        event = InputEvent.from_datum(datum, spec(sample.topic).key)
        settled.feed(sample.topic, event, event.occurred_ms)
        with _claims_kept_whole():
            whole.feed(sample.topic, event, event.occurred_ms)
        busiest = max(settled.stock.values(), key=lambda s: len(s.claims))
        if len(busiest.claims) > peak[0]:
            # Encoded (exactly) to keep the moment: the models go on changing.
            kept = statecodec.encode_sku(whole.stock[busiest.sku])
            peak = (len(busiest.claims), statecodec.encode_sku(busiest), kept)

    placed = sorted(
        (o for o in settled.orders.values() if o.placement), key=lambda o: len(_json_order(o))
    )
    median_sku = sorted(settled.stock, key=lambda k: len(_json_sku(whole.stock[k])))[
        len(settled.stock) // 2
    ]
    claims, peak_settled, peak_whole = peak
    at_peak = statecodec.decode_sku(peak_whole)
    closed = sum(c.closed for c in at_peak.claims.values())

    def as_json(state: Any) -> Coded:
        if isinstance(state, Order):
            return (state, _json_order, statecodec.decode_order)
        # 9b01a66's JSON had no `changed` (the last change's cause), which came later.
        return (msgspec.structs.replace(state, changed=None), _json_sku, statecodec.decode_sku)

    def current(state: Any) -> Coded:
        if isinstance(state, Order):
            return (state, statecodec.encode_order, statecodec.decode_order)
        return (state, statecodec.encode_sku, statecodec.decode_sku)

    return [
        (
            "order, median size",
            as_json(placed[len(placed) // 2]),
            current(placed[len(placed) // 2]),
        ),
        ("order, largest", as_json(placed[-1]), current(placed[-1])),
        (
            "SKU, median size at the end",
            as_json(whole.stock[median_sku]),
            current(settled.stock[median_sku]),
        ),
        (
            f"SKU at its peak: {claims} claims, {closed} closed",
            as_json(at_peak),
            current(statecodec.decode_sku(peak_settled)),
        ),
        ("  the same, closed claims kept whole", None, current(at_peak)),
    ], [len(w.movements) for st in settled.stock.values() for w in st.warehouses.values()]


def measure(
    state: Any, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any], rounds: int
) -> Figures:
    data = encode(state)
    if decode(data) != state:
        raise AssertionError(f"{encode.__name__} does not read back as the state it was given")
    return Figures(
        len(data),
        _median_us(lambda: encode(state), rounds),
        _median_us(lambda: decode(data), rounds),
    )


def _median_us(call: Callable[[], object], rounds: int) -> float:
    """Median over rounds of the CPU time per call (this thread's, so that other processes
    on the machine's cores do not count), in µs."""
    start = time.thread_time()
    call()
    once = max(time.thread_time() - start, 1e-6)
    repeat = max(1, int(TARGET_ROUND_S / once))
    per_call = []
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(repeat):
            call()
        per_call.append((time.thread_time() - start) / repeat)
    return statistics.median(per_call) * 1e6


def _row(coded: Coded | None, rounds: int) -> str:
    if coded is None:
        return f"{'-':>8} {'-':>7} {'-':>7}"
    figures = measure(*coded, rounds)
    return f"{figures.size:>8} {figures.encode_us:>7.1f} {figures.decode_us:>7.1f}"


def _model() -> ReferenceModel:
    return ReferenceModel(
        RoutingRules.from_file(REPO_ROOT / "config" / "routing.json"),
        FinanceMapping.from_file(REPO_ROOT / "config" / "finance.json"),
    )


@contextmanager
def _claims_kept_whole() -> Iterator[None]:
    with mock.patch.object(Claim, "settle", lambda self: None):
        yield


# -- the JSON writers of 9b01a66 (streams/domain/orders.py order_to_json and
#    streams/domain/stock.py SkuStock.to_json there), kept here only to measure against;
#    statecodec reads what they write ---------------------------------------------------------


def _json_order(order: Order) -> bytes:
    plain = statejson.plain
    return statejson.dumps(
        {
            "order_id": order.order_id,
            "placement": plain(order.placement),
            "lines": {i: plain(line) for i, line in order.lines.items()},
            "cancelled_ms": order.cancelled_ms,
            "cancel_reason": order.cancel_reason,
            "payments": {i: plain(p) for i, p in order.payments.items()},
            "fulfilments": {i: plain(f) for i, f in order.fulfilments.items()},
            "refunds": {i: plain(r) for i, r in order.refunds.items()},
            "waiting": [
                {
                    "event": {
                        "event_id": w.event.event_id,
                        "occurred_ms": w.event.occurred_ms,
                        "source": w.event.source,
                        "key": w.event.key,
                        "kind": w.event.kind,
                        "payload": statejson.tag(w.event.payload),
                    },
                    "record": w.record,
                    "first_seen_ms": w.first_seen_ms,
                    "reason": w.reason,
                    "detail": w.detail,
                }
                for w in order.waiting
            ],
            "seen": order.seen,
            "status": order.status,
            "transitions": [plain(t) for t in order.transitions],
            "pruned_ms": order.pruned_ms,
            "issued": order.issued,
            "erp": {i: plain(o) for i, o in order.erp.items()},
        }
    )


def _json_sku(stock: SkuStock) -> bytes:
    return statejson.dumps(
        {
            "sku": stock.sku,
            "warehouses": {
                w: {
                    "on_hand": s.on_hand,
                    "reserved": s.reserved,
                    "snapshot_as_of": s.snapshot_as_of,
                    "movements": s.movements,
                    "horizon_ms": s.horizon_ms,
                    "unit_cost": None if s.unit_cost is None else str(s.unit_cost),
                    "cost_currency": s.cost_currency,
                    "drift": s.drift,
                }
                for w, s in stock.warehouses.items()
            },
            "claims": {
                o: {
                    "lines": {
                        i: [line.quantity, line.reserved, line.backordered, line.shipped]
                        for i, line in c.lines.items()
                    },
                    "refs": sorted(c.refs),
                    "released": c.released,
                    "version": c.version,
                    "updated_ms": c.updated_ms,
                }
                for o, c in stock.claims.items()
            },
            "seen": stock.seen,
            "pruned_ms": stock.pruned_ms,
        }
    )


if __name__ == "__main__":
    main()
