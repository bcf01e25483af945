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
from contextlib import contextmanager
from dataclasses import dataclass

import aiohttp

from bench.machine import CpuMeter, CpuUsage
from bench.stats import percentile
from bench.wait import wait_for
from streams.contracts.topics import TopicCatalog
from streams.local.kafka import running_broker
from streams.ops.settings import REPO_ROOT, Settings
from streams.ops.topic_admin import ensure_topics

_SHOPIFY_SECRET = "bench-shopify-secret"
_STRIPE_SECRET = "whsec_bench"
_FIXTURES = REPO_ROOT / "tests" / "fixtures"
_STARTUP_SECONDS = 60.0


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


def _requests(count: int) -> list[Request]:
    """Signed bodies, made before the clock starts: half Shopify orders, half Stripe captures."""
    order = json.loads((_FIXTURES / "shopify" / "order.json").read_text())["order"]
    stripe = json.loads((_FIXTURES / "stripe" / "fixtures3-subset.json").read_text())
    intent = stripe["resources"]["payment_intent"] | {"amount_received": 40994}
    made = []
    for n in range(count):
        order_id = 10_000_000 + n
        if n % 2 == 0:
            body = json.dumps(order | {"id": order_id}).encode()
            signature = base64.b64encode(
                hmac.new(_SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
            ).decode()
            headers = {
                "X-Shopify-Topic": "orders/create",
                "X-Shopify-Hmac-Sha256": signature,
                "X-Shopify-Event-Id": str(uuid.uuid4()),
            }
            made.append(Request("/webhooks/shopify/bench", body, headers))
        else:
            event = {
                "id": f"evt_bench_{n}",
                "type": "payment_intent.succeeded",
                "created": int(time.time()),
                "data": {"object": intent | {"metadata": {"order_id": str(order_id - 1)}}},
            }
            body = json.dumps(event).encode()
            t = int(time.time())
            v1 = hmac.new(_STRIPE_SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256)
            headers = {"Stripe-Signature": f"t={t},v1={v1.hexdigest()}"}
            made.append(Request("/webhooks/stripe/payments", body, headers))
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
def _connector(settings: Settings, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.require_bootstrap(),
        "ERPBRIDGE_TOPIC_PREFIX": settings.topic_prefix,
        "ERPBRIDGE_WEBHOOK_WEB_PORT": str(port),
        "ERPBRIDGE_WEBHOOK_ROUTES": json.dumps(
            {"bench": {"provider": "shopify"}, "payments": {"provider": "stripe"}}
        ),
        "ERPBRIDGE_WEBHOOK_SECRETS": json.dumps(
            {"bench": [_SHOPIFY_SECRET], "payments": [_STRIPE_SECRET]}
        ),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "connector", "webhooks", "--loglevel", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(port: int) -> bool:
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
    port = _free_port()
    with _connector(settings, port) as process:
        wait_for(lambda: _ready(port), timeout=_STARTUP_SECONDS, what="the connector's /readyz")
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
