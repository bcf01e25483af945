"""HTTP for ERP adapters: an httpx transport that protects the ERP at the request level.

- at most `max_in_flight` requests at once;
- 429 and 503 (the ERP did not take the request) are retried here, the same request, with
  exponential backoff and jitter, and their Retry-After holds back every request through
  this transport until it has passed: the ERP asked the client, not one call, to wait;
- once retrying outlasts the backoff's bound, the refusal is returned for the adapter to
  raise as a TransientError.

Retrying the request, not the whole command, matters against a throttling ERP: a command
of several calls that started over on every refusal could starve. Other 5xx may have been
processed, so they go back to the adapter, whose command retries look up before creating.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Callable

import httpx

from connectors.erp.retry import Backoff

THROTTLED = frozenset({429, 503})


def retry_after(header: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delay-seconds or an HTTP date."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class ProtectingTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        max_in_flight: int,
        backoff: Backoff,
        *,
        inner: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._inner = inner or httpx.AsyncHTTPTransport()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._backoff = backoff
        self._clock = clock
        self._rand = rand
        self._not_before = 0.0
        self.throttled = 0
        """Refusals seen (and retried or returned)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            async with self._slots:
                while (wait := self._not_before - self._clock()) > 0:
                    await asyncio.sleep(wait)
                response = await self._inner.handle_async_request(request)
            if response.status_code not in THROTTLED:
                return response
            self.throttled += 1
            hint = retry_after(response.headers.get("Retry-After"))
            if hint:
                self._not_before = max(self._not_before, self._clock() + hint)
            delay = self._backoff.delay(attempt, hint, self._rand)
            if self._backoff.gives_up(self._clock() - started, delay):
                return response
            await response.aclose()
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        await self._inner.aclose()
