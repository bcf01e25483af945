"""The Faust application: configuration from Settings, tables, and the agents wired onto it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from faust.web import Request, Response, View

from streams.contracts.codec import Codec, codec_from_settings
from streams.contracts.topics import AGENT_SOURCES, TopicCatalog
from streams.domain.alerts import AlertPolicy
from streams.domain.commands import CommandPolicy
from streams.domain.finance import FinanceMapping
from streams.domain.policy import HOUR_MS, Policy
from streams.domain.routing import RoutingRules
from streams.domain.tracking import TrackingPolicy
from streams.ops.health import (
    LIVENESS_PATH,
    READINESS_PATH,
    Check,
    ConsumerView,
    HealthMonitor,
    aiokafka_view,
    broker_request,
    verdict,
)
from streams.ops.kafka_security import faust_credentials
from streams.ops.metrics import CONTENT_TYPE, METRICS_PATH, render
from streams.ops.settings import Settings
from streams.topology.accounting import EventAccounting
from streams.topology.agents.context import AgentContext
from streams.topology.agents.customers import CustomersAgent
from streams.topology.agents.deadletters import DeadLetters
from streams.topology.agents.dispatch import DISPATCH_PATH, Dispatcher
from streams.topology.agents.intake import Intake
from streams.topology.agents.orders import OrderAgent
from streams.topology.agents.outputs import Outputs
from streams.topology.agents.results import ResultsAgent
from streams.topology.agents.stock import StockAgent
from streams.topology.agents.storefront_results import StorefrontResultsAgent
from streams.topology.faust_app import StreamApp
from streams.topology.metrics import worker_registry
from streams.topology.tables import Tables

ACCOUNTING_PATH = "/erpbridge/accounting/"


@dataclass
class Topology:
    app: StreamApp
    accounting: EventAccounting
    tables: Tables
    dispatcher: Dispatcher
    monitor: HealthMonitor


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server]


def policy_of(settings: Settings) -> Policy:
    return Policy(
        dedup_ttl_ms=int(settings.dedup_ttl_hours * HOUR_MS),
        max_wait_ms=int(settings.max_wait_minutes * 60_000),
        snapshot_window_ms=int(settings.snapshot_window_hours * HOUR_MS),
        approval_thresholds=settings.approval_thresholds,
        po_required_groups=frozenset(settings.po_number_required_groups),
    )


def command_policy_of(settings: Settings) -> CommandPolicy:
    return CommandPolicy(settings.erp_target, settings.confirm_on, settings.erp_sources)


def alert_policy_of(settings: Settings) -> AlertPolicy:
    return AlertPolicy.from_settings(settings)


def tracking_policy_of(settings: Settings) -> TrackingPolicy:
    routes = settings.webhook_routes.items()
    return TrackingPolicy(frozenset(name for name, route in routes if route.push_tracking))


def create_topology(
    settings: Settings, codec: Codec | None = None, clock: Callable[[], float] = time.time
) -> Topology:
    catalog = TopicCatalog.from_settings(settings)
    app = StreamApp(
        settings.app_id,
        stream_topics=frozenset(catalog.physical(name) for name in AGENT_SOURCES),
        producer_config=settings.producer_config(),
        broker=broker_urls(settings.require_bootstrap()),
        broker_credentials=faust_credentials(settings),
        # rocksdb keeps state on the worker's volume so a restart replays only the changelog tail.
        store="rocksdb://",
        datadir=str(settings.data_dir),
        # No standby copies of other workers' tables: faust-streaming 0.15 drops records
        # while it starts reading them (its recovery clears them from the queue, or skips
        # them as already read after it seeks back), then applies the later ones, so a
        # partition that moved to its standby came with keys missing. A moved partition is
        # restored from its changelog instead, as Kafka Streams does by default.
        table_standby_replicas=0,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # Bytes in, bytes out: the codec decodes, so bad bytes reach the dead-letter topic
        # instead of failing inside Faust's deserialiser.
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        # False where an operator owns the topics: Faust then declares none, changelogs included.
        topic_allow_declare=settings.create_topics,
        # No timer or task runs on_leader, so the leader topic would only be one more to create.
        topic_disable_leader=True,
        consumer_group_instance_id=settings.group_instance_id,
        web_host=settings.web_host,
        web_port=settings.web_port,
        autodiscover=False,
    )
    codec = codec or codec_from_settings(settings)
    rules = RoutingRules.from_file(settings.routing_rules)
    policy = policy_of(settings)
    accounting = EventAccounting()
    tables = Tables.create(app, catalog)
    dead_letters = DeadLetters(catalog)
    intake = Intake(catalog, codec, accounting, dead_letters)
    context = AgentContext(
        app=app,
        catalog=catalog,
        codec=codec,
        tables=tables,
        intake=intake,
        dead_letters=dead_letters,
        accounting=accounting,
        outputs=Outputs(catalog, codec),
        rules=rules,
        policy=policy,
        commands=command_policy_of(settings),
        finance=FinanceMapping.from_file(settings.finance_mapping),
        alerts=alert_policy_of(settings),
        tracking=tracking_policy_of(settings),
        clock=clock,
    )
    OrderAgent(context).register(settings.expiry_interval_seconds)
    StockAgent(context).register()
    results = ResultsAgent(context)
    results.register()
    StorefrontResultsAgent(context).register()
    CustomersAgent(context).register()

    @app.page(ACCOUNTING_PATH)
    async def _accounting(web: View, request: Request) -> Response:
        return web.json({"topics": accounting.snapshot(), "totals": accounting.totals()})

    # Started and stopped with the worker; it has its own consumer group (see its module).
    dispatcher = Dispatcher(settings, catalog, codec)
    app.add_dependency(dispatcher)

    @app.page(DISPATCH_PATH)
    async def _dispatch(web: View, request: Request) -> Response:
        return web.json(dispatcher.snapshot())

    monitor = HealthMonitor(
        [
            ConsumerView(settings.app_id, app.stream_samples),
            aiokafka_view(dispatcher.group, dispatcher.consumer),
        ],
        lambda: broker_request(dispatcher.consumer()),
        stall_seconds=settings.health_stall_seconds,
        loop_blocked_seconds=settings.health_loop_blocked_seconds,
    )
    # Started with the app, before recovery: the probes answer (503) while it recovers.
    app.add_dependency(monitor)
    registry = worker_registry(
        accounting, dispatcher, results, tables, context.now_ms, lambda: monitor.samples
    )

    @app.page(LIVENESS_PATH)
    async def _livez(web: View, request: Request) -> Response:
        status, body = verdict(monitor.liveness())
        return web.json(body, status=status)

    @app.page(READINESS_PATH)
    async def _readyz(web: View, request: Request) -> Response:
        status, body = verdict(worker_readiness(app, dispatcher, monitor))
        return web.json(body, status=status)

    @app.page(METRICS_PATH)
    async def _metrics(web: View, request: Request) -> Response:
        # aiohttp refuses a charset inside content_type=, so the header goes as is.
        return web.bytes(render(registry), headers={"Content-Type": CONTENT_TYPE})

    return Topology(app, accounting, tables, dispatcher, monitor)


def worker_readiness(app: StreamApp, dispatcher: Dispatcher, monitor: HealthMonitor) -> list[Check]:
    """Tables recovered, both groups (Faust's and the dispatcher's) gave this worker its
    partitions (maybe none: more workers than partitions), the broker answers."""
    owned = len(app.assignor.assigned_actives()) if app.assigned else 0
    return [
        Check(
            "recovery",
            app.tables.actives_ready,
            "tables recovered" if app.tables.actives_ready else "recovering tables",
        ),
        Check(
            "assignment",
            app.assigned,
            f"{owned} partitions owned" if app.assigned else "waiting for the group",
        ),
        Check(
            "dispatch_assignment",
            dispatcher.joined,
            "assigned" if dispatcher.joined else f"waiting for the group {dispatcher.group}",
        ),
        monitor.broker.check(),
    ]
