"""Load test of one webhooks connector replica: a bounded number of signed webhooks over
loopback, each answered 200 only once the broker confirmed its events.

    .venv/bin/python -m bench.webhooks                    # 20,000 requests, 16 at a time
    .venv/bin/python -m bench.webhooks --requests 5000 --concurrency 16

The connector runs as its own process (`erpbridge connector webhooks`, one replica) on a
broker of its own (or KAFKA_BOOTSTRAP_SERVERS); the client sends, from this process,
Shopify orders/create (order #1001, 7.6 kB) and Stripe payment_intent.succeeded bodies in
turn, each signed with the route's secret and with an event id of its own, and times each
request from its send to its answer. It prints verified requests per second, latency
percentiles and who used the cores; it is not a test and asserts nothing but that every
answer was 200. Method and recorded figures: docs/benchmarks.md ("Webhooks").
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.machine import CpuMeter, CpuUsage
from bench.stats import percentile
from bench.wait import wait_for
from streams.contracts.topics import TopicCatalog
from streams.local.kafka import running_broker
from streams.ops.settings import REPO_ROOT, Settings
from streams.ops.topic_admin import ensure_topics

SHOPIFY_SECRET = "bench-shopify-secret"
STRIPE_SECRET = "whsec_bench"
_FIXTURES = REPO_ROOT / "tests" / "fixtures"
_STARTUP_SECONDS = 60.0
SAMPLE_ORDER: dict[str, Any] = json.loads((_FIXTURES / "shopify" / "order.json").read_text())[
    "order"
]
"""Shopify's order #1001 (three SKUs, tax lines, a discount code; 409.94 USD)."""
SAMPLE_INTENT: dict[str, Any] = json.loads(
    (_FIXTURES / "stripe" / "fixtures3-subset.json").read_text()
)["resources"]["payment_intent"]


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    latencies: list[float]
    cpu: CpuUsage

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def shopify_order(order: dict[str, Any]) -> Request:
    """Shopify's orders/create of `order`, signed for the "bench" route."""
    body = json.dumps(order).encode()
    signature = base64.b64encode(
        hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
    ).decode()
    headers = {
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Event-Id": str(uuid.uuid4()),
    }
    return Request("/webhooks/shopify/bench", body, headers)


def stripe_captured(event_id: str, order_id: str, cents: int) -> Request:
    """Stripe's payment_intent.succeeded for `cents` of `order_id`, signed for "payments"."""
    intent = SAMPLE_INTENT | {"amount": cents, "amount_received": cents}
    event = {
        "id": event_id,
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {"object": intent | {"metadata": {"order_id": order_id}}},
    }
    body = json.dumps(event).encode()
    t = int(time.time())
    v1 = hmac.new(STRIPE_SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256)
    return Request(
        "/webhooks/stripe/payments", body, {"Stripe-Signature": f"t={t},v1={v1.hexdigest()}"}
    )


def _requests(count: int) -> list[Request]:
    """Signed bodies, made before the clock starts: half Shopify orders, half Stripe captures."""
    made = []
    for n in range(count):
        order_id = 10_000_000 + n
        if n % 2 == 0:
            made.append(shopify_order(SAMPLE_ORDER | {"id": order_id}))
        else:
            made.append(stripe_captured(f"evt_bench_{n}", str(order_id - 1), 40994))
    return made


async def _send(base: str, requests: list[Request], concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector) as session:

        async def client() -> None:
            for request in queue:
                started = time.perf_counter()
                async with session.post(
                    request.path,
                    data=request.body,
                    headers={"Content-Type": "application/json", **request.headers},
                ) as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"{request.path} answered {answer.status}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


@contextmanager
def connector(
    verb: str, settings: Settings, env: dict[str, str], log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`erpbridge connector <verb>` as its own process on `settings`' broker and topics, with
    `env` (ERPBRIDGE_* settings) added; its output to `log`, or nowhere."""
    environment = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.require_bootstrap(),
        "ERPBRIDGE_TOPIC_PREFIX": settings.topic_prefix,
        "ERPBRIDGE_APP_ID": settings.app_id,
        "ERPBRIDGE_PARTITIONS": str(settings.partitions),
        **env,
    }
    with ExitStack() as stack:
        out = subprocess.DEVNULL if log is None else stack.enter_context(log.open("wb"))
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "connector", verb, "--loglevel", "warning"],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT if log is not None else None,
        )
        try:
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)


def webhooks_connector(settings: Settings, port: int, log: Path | None = None) -> Any:
    """`erpbridge connector webhooks` on `port` with the bench's Shopify and Stripe routes."""
    return connector(
        "webhooks",
        settings,
        {
            "ERPBRIDGE_WEBHOOK_WEB_PORT": str(port),
            "ERPBRIDGE_WEBHOOK_ROUTES": json.dumps(
                {"bench": {"provider": "shopify"}, "payments": {"provider": "stripe"}}
            ),
            "ERPBRIDGE_WEBHOOK_SECRETS": json.dumps(
                {"bench": [SHOPIFY_SECRET], "payments": [STRIPE_SECRET]}
            ),
        },
        log,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def run(bootstrap: str, count: int, concurrency: int, warmup: int) -> Result:
    settings = Settings(
        kafka_bootstrap_servers=bootstrap, topic_prefix=f"bench-webhooks-{uuid.uuid4().hex[:6]}-"
    )
    ensure_topics(settings.confluent_config(), TopicCatalog.from_settings(settings))
    port = free_port()
    with webhooks_connector(settings, port) as process:
        wait_for(lambda: ready(port), timeout=_STARTUP_SECONDS, what="the connector's /readyz")
        base = f"http://127.0.0.1:{port}"
        asyncio.run(_send(base, _requests(warmup), concurrency))
        requests = _requests(count)
        meter = CpuMeter({"webhooks connector": process.pid, "bench client": os.getpid()})
        before = meter.snapshot(time.monotonic())
        seconds, latencies = asyncio.run(_send(base, requests, concurrency))
        cpu = CpuMeter.usage(before, meter.snapshot(time.monotonic()))
    return Result(count, seconds, latencies, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=1_000)
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        result = run(bootstrap, args.requests, args.concurrency, args.warmup)
    else:
        with running_broker() as broker:
            result = run(broker.bootstrap_servers, args.requests, args.concurrency, args.warmup)
    ms = [1000 * s for s in result.latencies]
    print(f"{result.requests} verified webhooks in {result.seconds:.1f} s: {result.rate:,.0f}/s")
    print(
        "latency to the 200: "
        + ", ".join(f"p{int(q * 100)} {percentile(ms, q):.1f} ms" for q in (0.5, 0.9, 0.99))
        + f", max {max(ms):.1f} ms ({args.concurrency} in flight)"
    )
    cores = ", ".join(
        f"{name} {value:.2f}" for name, value in result.cpu.processes.items() if value is not None
    )
    machine = result.cpu.machine
    print(f"cores used: {cores}; whole machine {machine:.2f}" if machine else f"cores: {cores}")


if __name__ == "__main__":
    main()
