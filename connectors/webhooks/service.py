"""The webhooks connector: an aiohttp service with one route per configured shop or
account, /webhooks/<provider>/<route>, beside /livez (also /healthz), /readyz, /metrics.

A webhook is answered 200 only once the broker confirmed its records; in order:
  404  no such route
  413  a body larger than ERPBRIDGE_WEBHOOK_MAX_BODY_BYTES
  401  the signature does not verify with any of the route's secrets (nothing is parsed,
       nothing published; logged without the body or the secret)
  415  a content type other than JSON;  400  a body that is not JSON, a required header
       missing
  200  a topic not ingested (counted); a stock level that echoes erpbridge's own push;
       the input events, confirmed; or a body that verifies but cannot be mapped, with its
       headers and the reason on webhooks.dlq, confirmed
  503  the broker did not confirm within ERPBRIDGE_WEBHOOK_ACK_TIMEOUT_SECONDS, or the
       provider's own API did not answer what the mapping needs (a Stripe payout's
       transactions): the provider retries, and the retry's event id makes it one event
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import httpx
from aiohttp import web
from mode import Service

from connectors.webhooks.arrivals import Arrivals
from connectors.webhooks.echoes import Echoes
from connectors.webhooks.inputs import BadDelivery, Input, Unavailable, UnknownTopic, Unmappable
from connectors.webhooks.intake import Intake
from connectors.webhooks.metrics import WebhookMetrics
from connectors.webhooks.providers import Request, Unauthentic
from connectors.webhooks.publisher import NotConfirmed, Publisher
from connectors.webhooks.pushes import PushReader
from connectors.webhooks.routes import PATH, Route, routes_of
from streams.contracts import deadletter
from streams.contracts.codec import Codec
from streams.contracts.jsonlines import parse_timestamp
from streams.contracts.topics import STOCK_PUSHES, WEBHOOKS_DLQ, TopicCatalog
from streams.ops.health import LIVENESS_PATH, READINESS_PATH, Check, HealthMonitor, verdict
from streams.ops.metrics import CONTENT_TYPE, METRICS_PATH, render
from streams.ops.records import Outgoing
from streams.ops.settings import Settings

log = logging.getLogger(__name__)

HEALTHZ_PATH = "/healthz"
_KEPT_HEADERS = ("content-type", "user-agent")
"""Besides the providers' own X-… and signature headers, what a dead letter keeps."""


@dataclass(frozen=True)
class _Answer:
    status: int
    outcome: str
    body: bytes
    content_type: str = "application/json"


def _error(status: int, outcome: str, message: str) -> _Answer:
    return _Answer(status, outcome, json.dumps({"error": message}).encode())


class WebhookService(Service):
    def __init__(
        self,
        settings: Settings,
        catalog: TopicCatalog,
        codec: Codec,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._catalog = catalog
        self._codec = codec
        self._clock = clock
        self.routes = routes_of(settings)
        self.host = settings.webhook_web_host
        self.port = settings.webhook_web_port
        self.metrics = WebhookMetrics()
        self._arrivals = Arrivals()
        self._echoes = Echoes(int(settings.webhook_echo_seconds * 1000))
        self._dead_letters = catalog.physical(WEBHOOKS_DLQ)
        self._publisher = Publisher(
            settings.producer_config(), settings.webhook_ack_timeout_seconds
        )
        self._pushes = PushReader(
            settings.confluent_config(), catalog.physical(STOCK_PUSHES), self._echoes
        )
        self.monitor = HealthMonitor(
            [],
            lambda: self._broker_request,
            stall_seconds=settings.health_stall_seconds,
            loop_blocked_seconds=settings.health_loop_blocked_seconds,
        )
        self.add_dependency(self.monitor)
        self._runner: web.AppRunner | None = None
        # The providers' APIs, for what a webhook does not carry; within the ack timeout.
        self._api_client = httpx.AsyncClient(timeout=settings.webhook_ack_timeout_seconds)
        self._intake = Intake(catalog, codec, self._api_client)

    async def _broker_request(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._publisher.metadata, 4.0)

    async def on_start(self) -> None:
        self._publisher.start()
        await asyncio.get_running_loop().run_in_executor(None, self._pushes.start, 30.0)
        app = web.Application(client_max_size=self._settings.webhook_max_body_bytes)
        app.router.add_post(PATH, self._receive)
        app.router.add_get(LIVENESS_PATH, self._livez)
        app.router.add_get(HEALTHZ_PATH, self._livez)
        app.router.add_get(READINESS_PATH, self._readyz)
        app.router.add_get(METRICS_PATH, self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info(
            "webhooks: serving %s on %s:%s",
            ", ".join(r.path for r in self.routes.values()),
            self.host,
            self.port,
        )

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self._api_client.aclose()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._publisher.stop)
        await loop.run_in_executor(None, self._pushes.stop)

    async def _livez(self, request: web.Request) -> web.Response:
        status, body = verdict(self.monitor.liveness())
        return web.json_response(body, status=status)

    async def _readyz(self, request: web.Request) -> web.Response:
        status, body = verdict(
            [
                Check("routes", bool(self.routes), f"{len(self.routes)} webhook routes"),
                self.monitor.broker.check(),
                Check(
                    "stock_pushes",
                    self._pushes.caught_up.is_set(),
                    "read" if self._pushes.caught_up.is_set() else "still reading",
                ),
            ]
        )
        return web.json_response(body, status=status)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=render(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE}
        )

    async def _receive(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        route = self.routes.get((request.match_info["provider"], request.match_info["route"]))
        if route is None:
            answer = _error(404, "rejected", "no such webhook route")
        else:
            answer = await self._answer(route, request)
            self.metrics.requests.labels(route.provider.name, route.name, answer.outcome).inc()
            self.metrics.seconds.labels(route.provider.name).observe(time.perf_counter() - started)
        return web.Response(
            status=answer.status, body=answer.body, headers={"Content-Type": answer.content_type}
        )

    async def _answer(self, route: Route, http: web.Request) -> _Answer:
        limit = self._settings.webhook_max_body_bytes
        if http.content_length is not None and http.content_length > limit:
            return _error(413, "rejected", f"the body is larger than {limit} bytes")
        try:
            body = await http.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "rejected", f"the body is larger than {limit} bytes")
        request = Request(http.headers, body)
        provider = route.provider
        if provider.is_ping(request):
            return _Answer(200, "ignored", b'{"status": "ok"}')
        problem = provider.problem(
            request, route.keys, self._settings.webhook_timestamp_tolerance_seconds
        )
        if problem is not None:
            return self._unauthentic(route, http, problem)
        if http.content_type != "application/json":
            return _error(
                415, "rejected", f"the content type is {http.content_type}, not application/json"
            )
        try:
            document = json.loads(body, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as error:
            return _error(400, "rejected", f"the body is not JSON: {error}")
        try:
            kept = self._ingested(route, await self._intake.inputs(route, request, document))
            records = [self._intake.record(item) for item in kept]
        except Unauthentic as error:
            return self._unauthentic(route, http, str(error))
        except BadDelivery as error:
            return _error(400, "rejected", str(error))
        except UnknownTopic as error:
            log.info("webhooks %s: %s", route.path, error)
            return _Answer(200, "ignored", provider.accepted, provider.accepted_type)
        except Unmappable as error:
            return await self._dead_letter(route, request, error)
        except Unavailable as error:
            log.warning("webhooks %s: answered 503: %s", route.path, error)
            return _error(503, "unavailable", "what the event needs could not be read yet; retry")
        if not records:
            return _Answer(200, "ignored", provider.accepted, provider.accepted_type)
        try:
            await self._publisher.publish(records)
        except NotConfirmed as error:
            log.warning("webhooks %s: answered 503: %s", route.path, error)
            return _error(503, "unavailable", "the event could not be stored yet; retry")
        for item in kept:
            self.metrics.events.labels(provider.name, route.name, item.topic).inc()
        return _Answer(200, "published", provider.accepted, provider.accepted_type)

    def _unauthentic(self, route: Route, http: web.Request, problem: str) -> _Answer:
        # Who sent it and why it failed; never the body, the signature or a secret.
        log.warning(
            "webhooks %s: refused a request from %s: signature %s", route.path, http.remote, problem
        )
        return _error(401, "unauthentic", "the signature does not verify")

    def _ingested(self, route: Route, inputs: list[Input]) -> list[Input]:
        """The inputs to publish: without echoes of erpbridge's own stock pushes; those out
        of order counted."""
        now_ms = int(self._clock() * 1000)
        kept = []
        for item in inputs:
            event = item.record["event"]
            # A one-branch union (commerce.customers') comes bare, without its "type".
            kind = event.get("type", item.topic)
            if kind == "StockSnapshot" and self._echoes.echoes(
                item.key, event["warehouse_id"], event["on_hand"], now_ms
            ):
                log.info("webhooks %s: %s echoes erpbridge's own push", route.path, item.event_id)
                continue
            occurred_ms = int(parse_timestamp(item.occurred_at).timestamp() * 1000)
            if self._arrivals.late(item.topic, item.key, kind, occurred_ms):
                self.metrics.reordered.labels(route.provider.name, route.name).inc()
            kept.append(item)
        return kept

    async def _dead_letter(self, route: Route, request: Request, error: Unmappable) -> _Answer:
        provider = route.provider
        headers = [
            (name, value.encode())
            for name, value in request.headers.items()
            if name.lower().startswith(("x-", "stripe-")) or name.lower() in _KEPT_HEADERS
        ]
        letter = deadletter.dead_letter(
            dlq_topic=self._dead_letters,
            source_topic=route.path,
            partition=-1,
            offset=-1,
            # The same body again (a retry) is the same dead letter.
            key=hashlib.sha256(request.body).hexdigest().encode(),
            value=request.body,
            headers=headers,
            stage="webhook",
            reason=error.reason,
            error=error.detail,
        )
        log.warning("webhooks %s: dead-lettered: %s", route.path, error)
        record = Outgoing(
            letter.topic, None, letter.key, letter.value, tuple(letter.headers), "the dead letter"
        )
        try:
            await self._publisher.publish([record])
        except NotConfirmed as failure:
            log.warning("webhooks %s: answered 503: %s", route.path, failure)
            return _error(503, "unavailable", "the event could not be stored yet; retry")
        return _Answer(200, "dead_lettered", provider.accepted, provider.accepted_type)
