"""An ERP that throttles, which Tryton does not: a small real HTTP proxy in front of the real
Tryton answers 429 or 503 with Retry-After once requests come faster than it allows.

The connector must keep its requests in flight under its cap, send a refused request again
no sooner than its Retry-After, and still execute every command exactly once. (That a
Retry-After also holds back the client's other requests is shown in test_http.py, where
the order of events is certain.)
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from connectors.erp.sink import ErpSink
from streams.contracts.topics import TopicCatalog
from streams.local.tryton import Tryton
from streams.ops.settings import Settings
from tests.connectors.erp.records import publish, sample_commands, wait_results
from tests.connectors.erp.test_sink import _assert_once_in_erp, _assert_succeeded, _ids
from tests.support import RunningService

CAP = 3
ALLOWED_PER_SECOND = 6.0
RETRY_AFTER = 1


@dataclass
class Traffic:
    """What the proxy saw, in its own monotonic seconds."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    max_in_flight: int = 0
    arrivals: list[tuple[float, str]] = field(default_factory=list)
    refusals: list[tuple[float, str, int]] = field(default_factory=list)


class ThrottlingProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "", parts.port or 80
        self.traffic = Traffic()
        self._allowance = 1.0
        self._last = time.monotonic()
        self._refusals = 0
        super().__init__(("127.0.0.1", 0), _Handler)

    def admit(self) -> int | None:
        """None to forward, or the status to refuse with: a bucket of CAP requests, refilled at
        ALLOWED_PER_SECOND."""
        with self.traffic.lock:
            now = time.monotonic()
            self._allowance = min(CAP, self._allowance + (now - self._last) * ALLOWED_PER_SECOND)
            self._last = now
            if self._allowance >= 1.0:
                self._allowance -= 1.0
                return None
            self._refusals += 1
            return 429 if self._refusals % 2 else 503


def _request_key(body: bytes) -> str:
    """The request itself: its JSON-RPC id is unique per call, so the same body again is the
    same request sent again."""
    return body.decode()


class _Handler(BaseHTTPRequestHandler):
    server: ThrottlingProxy

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        key = _request_key(body)
        traffic = self.server.traffic
        with traffic.lock:
            traffic.arrivals.append((time.monotonic(), key))
            traffic.in_flight += 1
            traffic.max_in_flight = max(traffic.max_in_flight, traffic.in_flight)
        try:
            status = self.server.admit()
            if status is not None:
                with traffic.lock:
                    traffic.refusals.append((time.monotonic(), key, status))
                self._reply(status, b"slow down", {"Retry-After": str(RETRY_AFTER)})
                return
            upstream = http.client.HTTPConnection(
                self.server.upstream_host, self.server.upstream_port, timeout=60
            )
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request("POST", self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                self._reply(answer.status, answer.read(), dict(answer.getheaders()))
            finally:
                upstream.close()
        finally:
            with traffic.lock:
                traffic.in_flight -= 1

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def proxy(tryton: Tryton) -> Iterator[ThrottlingProxy]:
    server = ThrottlingProxy(tryton.url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_a_throttling_erp_gets_at_most_the_cap_and_its_retry_after(
    connector_settings: Settings,
    erp_topics: TopicCatalog,
    start_sink: Callable[..., RunningService[ErpSink]],
    proxy: ThrottlingProxy,
    tryton: Tryton,
) -> None:
    commands = sample_commands(seed=601, orders=3)
    ids = _ids(commands)
    path = urlsplit(tryton.url).path
    host, port = proxy.server_address[:2]
    publish(connector_settings, erp_topics, list(commands))
    start_sink(
        erp_url=f"http://{host!s}:{port}{path}",
        erp_max_in_flight={"tryton": CAP},
        erp_give_up_seconds=300,
    )
    answered = wait_results(connector_settings, erp_topics, ids, timeout=300)
    _assert_succeeded(answered, ids)
    assert all(len(answered[c]) == 1 for c in ids)
    _assert_once_in_erp(tryton, commands)

    traffic = proxy.traffic
    statuses = {status for _, _, status in traffic.refusals}
    assert statuses == {429, 503}, "the ERP never throttled: the test shows nothing"
    assert traffic.max_in_flight <= CAP
    for refused_at, key, _ in traffic.refusals:
        # The refused request comes back, and no sooner than the ERP asked.
        retried = [t for t, k in traffic.arrivals if k == key and t > refused_at]
        assert retried, "a refused request was never sent again"
        assert retried[0] >= refused_at + RETRY_AFTER - 0.01
