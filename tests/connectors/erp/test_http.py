"""connectors.erp.http: Retry-After parsing and the request-level protection of an ERP.

The throttling ERP here is httpx's in-process MockTransport: Tryton never throttles (the
connector test against a throttling proxy in front of the real Tryton is test_throttling).
"""

from __future__ import annotations

import asyncio
import time

import httpx

from connectors.erp.http import ProtectingTransport, retry_after
from connectors.erp.retry import Backoff


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    assert retry_after("120") == 120.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after("soon") is None and retry_after(None) is None


def _erp(statuses: list[int], seen: list[float], hint: str | None = None) -> httpx.MockTransport:
    """Answers each request with the next status (with Retry-After `hint`), then 200; notes
    when each request came."""

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.content == b"call-1"
        seen.append(time.monotonic())
        status = statuses.pop(0) if statuses else 200
        headers = {"Retry-After": hint} if hint and status in (429, 503) else {}
        return httpx.Response(status, headers=headers, text="ok" if status == 200 else "busy")

    return httpx.MockTransport(answer)


def test_throttled_requests_are_sent_again_after_the_erps_retry_after() -> None:
    seen: list[float] = []
    transport = ProtectingTransport(
        2, Backoff(initial=0.01, maximum=0.05, give_up_after=30), inner=_erp([429, 503], seen, "1")
    )

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.post("http://erp/rpc", content=b"call-1")

    response = asyncio.run(call())
    assert response.status_code == 200
    assert len(seen) == 3 and transport.throttled == 2
    assert seen[1] - seen[0] >= 1.0 and seen[2] - seen[1] >= 1.0


def test_a_refusal_that_outlasts_the_bound_is_returned_to_the_adapter() -> None:
    seen: list[float] = []
    transport = ProtectingTransport(
        1, Backoff(initial=0.1, maximum=0.1, give_up_after=0.5), inner=_erp([503] * 100, seen)
    )

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.post("http://erp/rpc", content=b"call-1")

    assert asyncio.run(call()).status_code == 503
    # Retried at 0.05 to 0.1 s intervals until the next wait would pass 0.5 s.
    assert 2 <= len(seen) <= 11


def test_other_server_errors_go_back_at_once() -> None:
    # A 500 may have been processed: only the adapter, which looks up first, may try again.
    seen: list[float] = []
    transport = ProtectingTransport(
        1, Backoff(initial=0.01, maximum=0.05, give_up_after=30), inner=_erp([500], seen)
    )

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.post("http://erp/rpc", content=b"call-1")

    assert asyncio.run(call()).status_code == 500
    assert len(seen) == 1


def test_a_retry_after_holds_back_every_request_through_the_transport() -> None:
    arrivals: dict[str, list[float]] = {"first": [], "second": []}
    statuses = [429]

    def answer(request: httpx.Request) -> httpx.Response:
        arrivals[request.content.decode()].append(time.monotonic())
        if statuses:
            return httpx.Response(statuses.pop(), headers={"Retry-After": "1"})
        return httpx.Response(200)

    transport = ProtectingTransport(
        2,
        Backoff(initial=0.01, maximum=0.05, give_up_after=30),
        inner=httpx.MockTransport(answer),
    )

    async def calls() -> None:
        async with httpx.AsyncClient(transport=transport) as client:
            first = asyncio.ensure_future(client.post("http://erp/rpc", content=b"first"))
            while not transport.throttled:
                await asyncio.sleep(0.005)
            # Sent once the ERP has said "wait 1 s", by a caller that never saw the refusal.
            second = await client.post("http://erp/rpc", content=b"second")
            assert second.status_code == 200 and (await first).status_code == 200

    asyncio.run(calls())
    refused = arrivals["first"][0]
    assert arrivals["second"][0] >= refused + 1.0
    assert arrivals["first"][1] >= refused + 1.0
