"""Health that reflects reality: liveness and readiness as plain checks, and what feeds them.

Faust's own `/` answers OK whatever happens; these do not.

- Liveness (`/livez`): the event loop is alive (a watchdog beats on it: a beat that came
  late or not at all means the loop was blocked) and no consumer is stuck (records wait on
  a partition it owns, it is not paused, and its progress mark has not moved for longer
  than a threshold).
- Readiness (`/readyz`): what the process needs to do its work, named per process by the
  caller (recovery finished, assignment received, broker reachable).

Both answer 200 when every required check passes, 503 otherwise, with a JSON body naming
each check, whether it passes and why. The checks read state a background sampler keeps
(`HealthMonitor`), so a probe never waits on the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError
from mode import Service

log = logging.getLogger(__name__)

LIVENESS_PATH = "/livez"
READINESS_PATH = "/readyz"

Clock = Callable[[], float]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True
    """A check that is not required is reported but never fails the probe."""


def verdict(checks: Iterable[Check]) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body of a probe made of `checks`."""
    listed = list(checks)
    ok = all(c.ok for c in listed if c.required)
    body = {
        "status": "ok" if ok else "failing",
        "checks": {
            c.name: {"ok": c.ok, "detail": c.detail, **({} if c.required else {"required": False})}
            for c in listed
        },
    }
    return (200 if ok else 503), body


class LoopWatchdog:
    """Beats every `interval` seconds on the event loop it runs on. The loop was blocked
    when a beat came more than `threshold` seconds late, or none came for that long."""

    def __init__(self, interval: float, threshold: float, clock: Clock = time.monotonic) -> None:
        self.interval = interval
        self.threshold = threshold
        self._clock = clock
        self.last_beat: float | None = None
        self.lateness = 0.0

    def beat(self) -> None:
        now = self._clock()
        if self.last_beat is not None:
            self.lateness = max(0.0, now - self.last_beat - self.interval)
        self.last_beat = now

    async def run(self) -> None:
        while True:
            self.beat()
            await asyncio.sleep(self.interval)

    def check(self) -> Check:
        if self.last_beat is None:
            return Check("event_loop", False, "the watchdog has not beaten yet")
        silent = self._clock() - self.last_beat
        if silent > self.interval + self.threshold:
            return Check("event_loop", False, f"no beat for {silent:.1f}s")
        if self.lateness > self.threshold:
            return Check("event_loop", False, f"the loop was blocked for {self.lateness:.1f}s")
        return Check("event_loop", True, f"last beat {self.lateness:.3f}s late")


@dataclass(frozen=True)
class PartitionSample:
    """One owned partition as a consumer sees it. `mark` moves when the consumer makes
    progress on it (its committed offset, or its fetch position); `paused` when it is
    meant to wait (back-pressure, a rebalance, a recovery)."""

    topic: str
    partition: int
    highwater: int | None
    position: int | None
    mark: int | None
    paused: bool = False

    @property
    def lag(self) -> int | None:
        """Records on the broker this consumer has not fetched yet."""
        if self.highwater is None or self.position is None:
            return None
        return max(0, self.highwater - self.position)

    @property
    def waiting(self) -> bool:
        """Records are on the broker beyond the consumer's progress mark."""
        return self.highwater is not None and self.highwater > (self.mark or 0)


class StallWatch:
    """A consumer is stuck when, on a partition it owns and has not paused, records wait
    and its progress mark has not moved for longer than `threshold` seconds."""

    def __init__(self, threshold: float, clock: Clock = time.monotonic) -> None:
        self.threshold = threshold
        self._clock = clock
        self._since: dict[tuple[str, int], tuple[int | None, float | None]] = {}
        """Per partition: its mark, and since when records wait on it without it moving."""

    def observe(self, samples: Iterable[PartitionSample]) -> None:
        """Partitions not among `samples` are no longer owned and are forgotten."""
        now = self._clock()
        seen: dict[tuple[str, int], tuple[int | None, float | None]] = {}
        for s in samples:
            key = (s.topic, s.partition)
            mark, since = self._since.get(key, (s.mark, None))
            if s.paused or not s.waiting:
                since = None
            elif since is None or mark != s.mark:
                since = now
            seen[key] = (s.mark, since)
        self._since = seen

    def stuck(self) -> dict[tuple[str, int], float]:
        """Partitions stuck, with for how long records waited on them with nothing moving."""
        now = self._clock()
        idle = {key: now - since for key, (_, since) in self._since.items() if since is not None}
        return {key: seconds for key, seconds in idle.items() if seconds > self.threshold}


class BrokerProbe:
    """The broker is reachable when a cheap request (metadata) answered within the last
    `max_age` seconds."""

    def __init__(self, max_age: float, clock: Clock = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self.last_ok: float | None = None
        self.last_error: str | None = None

    async def probe(self, request: Callable[[], Awaitable[object]], timeout: float) -> None:
        try:
            await asyncio.wait_for(request(), timeout)
        except (KafkaError, TimeoutError, OSError) as exc:
            self.last_error = repr(exc)
            return
        self.last_ok = self._clock()
        self.last_error = None

    def check(self) -> Check:
        if self.last_ok is None:
            why = self.last_error or "no answer yet"
            return Check("broker", False, f"never answered: {why}")
        age = self._clock() - self.last_ok
        if age > self.max_age:
            return Check("broker", False, f"no answer for {age:.1f}s: {self.last_error}")
        return Check("broker", True, f"answered {age:.1f}s ago")


@dataclass(frozen=True)
class ConsumerView:
    """A consumer group member of this process, and how to sample its owned partitions."""

    group: str
    sample: Callable[[], Awaitable[list[PartitionSample]]]


def aiokafka_view(group: str, consumer: Callable[[], Any]) -> ConsumerView:
    """A service's own aiokafka group consumer (dispatcher, ERP connector): its progress is
    its fetch position; partitions it paused for back-pressure are meant to wait."""

    async def sample() -> list[PartitionSample]:
        member = consumer()
        if member is None:
            return []
        paused = member.paused()
        samples = []
        for tp in sorted(member.assignment()):
            position = await member.position(tp)
            samples.append(
                PartitionSample(
                    tp.topic, tp.partition, member.highwater(tp), position, position, tp in paused
                )
            )
        return samples

    return ConsumerView(group, sample)


def broker_request(consumer: Any) -> Callable[[], Awaitable[object]] | None:
    """A metadata request through a started aiokafka consumer: as cheap as it gets, and
    through the client the service really uses (its addresses, its security)."""
    return None if consumer is None else consumer.topics


def stuck_check(name: str, watch: StallWatch) -> Check:
    stuck = watch.stuck()
    if not stuck:
        return Check(name, True, "no partition with records waiting stands still")
    worst = ", ".join(f"{t}[{p}] {s:.0f}s" for (t, p), s in sorted(stuck.items()))
    return Check(name, False, f"records wait and nothing moved on {worst}")


class HealthMonitor(Service):
    """Beats the watchdog and samples consumers and the broker in the background, so the
    probes and /metrics read fresh state without waiting on anything."""

    def __init__(
        self,
        views: list[ConsumerView],
        broker_request: Callable[[], Callable[[], Awaitable[object]] | None],
        *,
        stall_seconds: float,
        loop_blocked_seconds: float,
        interval: float = 2.0,
        clock: Clock = time.monotonic,
    ) -> None:
        """`broker_request` gives the cheap request to probe the broker with, or None while
        its client is not started."""
        super().__init__()
        self.views = views
        self._broker_request = broker_request
        self.interval = interval
        self.watchdog = LoopWatchdog(min(1.0, interval), loop_blocked_seconds, clock)
        # Two probes in a row must fail before the broker counts as unreachable.
        self.broker = BrokerProbe(2.5 * interval, clock)
        self.stalls = {v.group: StallWatch(stall_seconds, clock) for v in views}
        self.samples: dict[str, list[PartitionSample]] = {v.group: [] for v in views}

    async def on_start(self) -> None:
        self.add_future(self.watchdog.run())
        self.add_future(self._sample_every())

    async def _sample_every(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.interval)

    async def sample(self) -> None:
        for view in self.views:
            try:
                samples = await view.sample()
            except (KafkaError, AssertionError, RuntimeError) as exc:
                # A consumer mid-rebalance or not started yet: sampled again next time.
                log.debug("health: sampling %s failed: %r", view.group, exc)
                continue
            self.samples[view.group] = samples
            self.stalls[view.group].observe(samples)
        request = self._broker_request()
        if request is not None:
            await self.broker.probe(request, timeout=5.0)

    def liveness(self) -> list[Check]:
        return [
            self.watchdog.check(),
            *(stuck_check(f"consumer:{g}", watch) for g, watch in self.stalls.items()),
        ]
