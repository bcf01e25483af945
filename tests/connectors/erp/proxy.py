"""A small real HTTP proxy in front of the real Tryton: it notes every request as the ERP
receives it (when, and which JSON-RPC call) and may answer some itself instead of
forwarding them, as a throttling or failing ERP would."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    at: float
    """When it arrived, in the proxy's monotonic seconds."""
    body: bytes
    """The JSON-RPC call; its id is unique per call, so the same body again is the same
    request sent again."""

    @property
    def method(self) -> str:
        method: str = json.loads(self.body)["method"]
        return method

    @property
    def params(self) -> list[Any]:
        params: list[Any] = json.loads(self.body)["params"]
        return params


@dataclass(frozen=True)
class Answer:
    """What the proxy answers itself instead of forwarding."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)


Policy = Callable[[Request], Answer | None]
"""Called for each request, under the traffic lock: None forwards it."""


@dataclass
class Traffic:
    """What the proxy saw."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    max_in_flight: int = 0
    arrivals: list[Request] = field(default_factory=list)
    refusals: list[tuple[Request, int]] = field(default_factory=list)
    """Requests the proxy answered itself, with the status, as it answered."""


class ErpProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, policy: Policy | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "", parts.port or 80
        self.rpc_path = parts.path
        self.policy = policy or (lambda request: None)
        self.traffic = Traffic()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        """The ERP's URL through the proxy."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}{self.rpc_path}"


class _Handler(BaseHTTPRequestHandler):
    server: ErpProxy

    def do_POST(self) -> None:
        request = Request(time.monotonic(), self.rfile.read(int(self.headers["Content-Length"])))
        traffic = self.server.traffic
        with traffic.lock:
            traffic.arrivals.append(request)
            traffic.in_flight += 1
            traffic.max_in_flight = max(traffic.max_in_flight, traffic.in_flight)
            answer = self.server.policy(request)
            if answer is not None:
                traffic.refusals.append((request, answer.status))
        try:
            if answer is not None:
                self._reply(answer.status, b"refused by the test's proxy", answer.headers)
                return
            upstream = http.client.HTTPConnection(
                self.server.upstream_host, self.server.upstream_port, timeout=60
            )
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request("POST", self.path, body=request.body, headers=headers)
                response = upstream.getresponse()
                self._reply(response.status, response.read(), dict(response.getheaders()))
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


@contextlib.contextmanager
def serving(proxy: ErpProxy) -> Iterator[ErpProxy]:
    """`proxy` answering in a thread while in the block."""
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=10)
