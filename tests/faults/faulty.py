"""`python -m tests.faults.faulty POINT N ARGS...`: `erpbridge ARGS...` (the worker or the ERP
connector, as in production) that kills itself with SIGKILL the N-th time it reaches POINT.

A kill -9 from outside lands wherever the process happens to be; these points are where a
crash costs the most, so a test can aim at each:

- `send`: a record handed to the worker's Kafka producer (state, outputs, dead letters):
  a batch is cut off half sent, its offsets uncommitted.
- `commit`: the worker's consumer about to commit offsets, after Faust flushed the
  producer: every output of the batches is on the broker, the offsets are not.
- `recovery`: a changelog record read while the worker restores its tables.
- `erp-success`: the ERP connector's adapter returned a document: the ERP holds it, no
  result is sent and no offset committed.

Before dying it writes `fault: killed at POINT #N` to stderr, which the test reads back.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from faust.tables.base import Collection
from faust.transport.drivers.aiokafka import Consumer

from connectors.erp.tryton import TrytonAdapter
from streams.cli import main
from streams.ops.async_producer import AsyncProducer, ProducerRecord, Sent

KILLED = "fault: killed at"

# (class, async method, whether the kill comes before the method runs); `send` is apart.
POINTS: dict[str, tuple[type, str, bool]] = {
    "commit": (Consumer, "_commit", True),
    "recovery": (Collection, "on_changelog_event", False),
    "erp-success": (TrytonAdapter, "execute", False),
}


def _die(point: str, count: int) -> None:
    sys.stderr.write(f"{KILLED} {point} #{count}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str, n: int) -> None:
    """Make the N-th time POINT's method is reached in this process its last: the N-th call
    for a point before the method, the N-th that returns for one after it (a call that
    raises, say an ERP call that failed, is not a success)."""
    if point == "send":
        _arm_send(n)
        return
    owner, name, before = POINTS[point]
    original: Callable[..., Any] = getattr(owner, name)
    reached = 0

    @functools.wraps(original)
    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal reached
        if before:
            reached += 1
            if reached == n:
                _die(point, reached)
            return await original(*args, **kwargs)
        result = await original(*args, **kwargs)
        reached += 1
        if reached == n:
            _die(point, reached)
        return result

    setattr(owner, name, counted)


def _arm_send(n: int) -> None:
    """The N-th record the worker's producer is handed, counted over every batch: the
    producer takes a batch's records one by one, so the kill comes once it has produced
    the N-th and asks for the next (or for the end of the batch)."""
    original = AsyncProducer.send
    reached = 0

    def counted(records: Iterable[ProducerRecord]) -> Iterator[ProducerRecord]:
        nonlocal reached
        for record in records:
            yield record
            reached += 1
            if reached == n:
                _die("send", reached)

    def send(self: AsyncProducer, records: Iterable[ProducerRecord]) -> Sent:
        return original(self, counted(records))

    AsyncProducer.send = send  # type: ignore[method-assign]


if __name__ == "__main__":
    point, n, *args = sys.argv[1:]
    arm(point, int(n))
    main(args)
