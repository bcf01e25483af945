"""From a webhook to a document in the ERP: how long a paid order takes from the payment
gateway's webhook to its sales order in Tryton, through every part of erpbridge.

    .venv/bin/python -m bench.webhook_to_erp [--orders 120] [--rate 2]

One broker and one Tryton of the project's own (streams.local), and as their own processes
`erpbridge worker`, `erpbridge connector erp` and `erpbridge connector webhooks`, as
deployed. Paced at `--rate` orders per second, each order is Shopify's orders/create
(order #1001, its three SKUs swapped for the sample catalogue's, the customer one of its
customers) then, half a pace later, Stripe's payment_intent.succeeded for its total: the
capture that makes a prepaid order a sales order. Per order it times, from the send of the
capture's webhook: its 200 (the event is on the broker), and the sales order's success on
erp.results (its record's timestamp, set when the connector had Tryton's answer). It prints
percentiles and asserts nothing. Method and recorded figures: docs/benchmarks.md ("From a
webhook to the ERP").
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
from confluent_kafka import Consumer

from bench.stats import percentile
from bench.wait import wait_for
from bench.webhooks import (
    SAMPLE_ORDER,
    Request,
    connector,
    free_port,
    ready,
    shopify_order,
    stripe_captured,
    webhooks_connector,
)
from bench.worker import Worker
from streams.contracts.codec import codec_from_settings
from streams.contracts.topics import ERP_RESULTS, TopicCatalog, spec
from streams.domain.commands import order_of_sales_order
from streams.local.kafka import running_broker
from streams.local.tryton import running_tryton
from streams.ops.settings import REPO_ROOT, Settings
from streams.ops.topic_admin import ensure_topics
from streams.sample.generator import Catalogue

_STARTUP_SECONDS = 180.0
_DRAIN_SECONDS = 120.0
_PERCENTILES = (0.5, 0.95, 0.99, 1.0)


@dataclass(frozen=True)
class Order:
    order_id: str
    placed: Request
    captured: Request


@dataclass
class Timing:
    sent: float
    """Epoch seconds when the capture's webhook was sent."""
    answered: float | None = None
    in_erp: float | None = None


def _orders(count: int, run: str) -> list[Order]:
    """Signed webhooks made before the clock starts: order #1001 as sample customers'."""
    catalogue = Catalogue.default()
    customers = [
        c for c in catalogue.customers if c.payment_terms == "PREPAID" and c.currency == "USD"
    ]
    made = []
    for n in range(count):
        order_id = int(run, 16) * 10_000 + n
        order = copy.deepcopy(SAMPLE_ORDER)
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        order |= {"id": order_id, "name": f"#{order_id}", "created_at": now, "updated_at": now}
        order["customer"]["id"] = customers[n % len(customers)].customer_id
        for i, line in enumerate(order["line_items"]):
            line["sku"] = catalogue.skus[(3 * n + i) % len(catalogue.skus)].code
        cents = int(Decimal(order["total_price"]) * 100)
        made.append(
            Order(
                str(order_id),
                shopify_order(order),
                stripe_captured(f"evt_e2e_{run}_{n}", str(order_id), cents),
            )
        )
    return made


def _post(client: httpx.Client, request: Request) -> None:
    answer = client.post(
        request.path,
        content=request.body,
        headers={"Content-Type": "application/json", **request.headers},
    )
    if answer.status_code != 200:
        raise RuntimeError(f"{request.path} answered {answer.status_code}: {answer.text}")


def _in_erp(settings: Settings, timings: dict[str, Timing], deadline: float) -> list[str]:
    """Reads erp.results until every order's sales order succeeded (or the deadline); the
    failures it saw."""
    codec = codec_from_settings(settings)
    consumer = Consumer(
        {
            **settings.confluent_config(),
            "group.id": f"bench-e2e-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([TopicCatalog.from_settings(settings).physical(ERP_RESULTS)])
    failures: list[str] = []
    try:
        while time.time() < deadline and any(t.in_erp is None for t in timings.values()):
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            result = codec.decode(message.value(), expected=spec(ERP_RESULTS).value_schema).datum
            order_id = order_of_sales_order(result["command_id"])
            if order_id not in timings:
                continue
            if result["status"] != "SUCCEEDED":
                failures.append(f"{result['command_id']}: {result['status']} {result['error']}")
                continue
            timings[order_id].in_erp = message.timestamp()[1] / 1000
    finally:
        consumer.close()
    return failures


def run(count: int, rate: float, logs: Path) -> tuple[dict[str, Timing], list[str]]:
    run_id = uuid.uuid4().hex[:6]
    with ExitStack() as stack:
        broker = stack.enter_context(running_broker())
        tryton = stack.enter_context(running_tryton())
        settings = Settings(
            kafka_bootstrap_servers=broker.bootstrap_servers,
            topic_prefix=f"bench-e2e-{run_id}-",
            data_dir=logs / "data",
        )
        ensure_topics(settings.confluent_config(), TopicCatalog.from_settings(settings))
        worker = Worker.start(settings, REPO_ROOT, logs / "worker.log", "warning")
        stack.callback(worker.stop)
        stack.enter_context(
            connector(
                "erp",
                settings,
                {
                    "ERPBRIDGE_ERP_URL": tryton.url,
                    "ERPBRIDGE_ERP_LOGIN": tryton.login,
                    "ERPBRIDGE_ERP_PASSWORD": tryton.password,
                    "ERPBRIDGE_CONNECTOR_WEB_PORT": str(free_port()),
                },
                logs / "erp-connector.log",
            )
        )
        port = free_port()
        stack.enter_context(webhooks_connector(settings, port, logs / "webhooks-connector.log"))
        wait_for(worker.ready, timeout=_STARTUP_SECONDS, what="the worker's /readyz")
        wait_for(lambda: ready(port), timeout=_STARTUP_SECONDS, what="the webhooks' /readyz")
        orders = _orders(count, run_id)
        timings: dict[str, Timing] = {}
        pace = 1 / rate
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            start = time.monotonic()
            for n, order in enumerate(orders):
                time.sleep(max(0.0, start + n * pace - time.monotonic()))
                _post(client, order.placed)
                time.sleep(max(0.0, start + (n + 0.5) * pace - time.monotonic()))
                timing = timings[order.order_id] = Timing(time.time())
                _post(client, order.captured)
                timing.answered = time.time()
        failures = _in_erp(settings, timings, time.time() + _DRAIN_SECONDS)
        worker.check_alive()
    return timings, failures


def _line(what: str, seconds: list[float]) -> str:
    figures = ", ".join(
        f"{'max' if q == 1.0 else f'p{round(q * 100)}'} {percentile(seconds, q) * 1000:,.0f} ms"
        for q in _PERCENTILES
    )
    return f"{what}: {figures} ({len(seconds)} orders)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=120)
    parser.add_argument("--rate", type=float, default=2.0, help="orders per second")
    parser.add_argument("--warmup", type=int, default=10, help="first orders left out")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    timings, failures = run(args.orders + args.warmup, args.rate, logs)
    measured = list(timings.values())[args.warmup :]
    answered = [t.answered - t.sent for t in measured if t.answered is not None]
    in_erp = [t.in_erp - t.sent for t in measured if t.in_erp is not None]
    print(f"{args.orders} paid orders at {args.rate}/s (after {args.warmup} left out); logs {logs}")
    print(_line("capture webhook answered 200", answered))
    if in_erp:
        print(_line("sales order in Tryton (erp.results)", in_erp))
    missing = len(measured) - len(in_erp)
    if missing:
        print(f"{missing} orders had no sales order in Tryton within {_DRAIN_SECONDS:.0f} s")
    for failure in failures[:10]:
        print(f"failed: {failure}")


if __name__ == "__main__":
    main()
