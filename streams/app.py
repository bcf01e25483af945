"""The Faust application: configuration from Settings, tables, and the agents wired onto it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import faust
from faust.web import Request, Response, View

from streams.accounting import EventAccounting
from streams.agents.context import AgentContext
from streams.agents.deadletters import DeadLetters
from streams.agents.dispatch import DISPATCH_PATH, Dispatcher
from streams.agents.intake import Intake
from streams.agents.orders import OrderAgent
from streams.agents.outputs import Outputs
from streams.agents.results import ResultsAgent
from streams.agents.stock import StockAgent
from streams.codec import Codec, codec_from_settings
from streams.domain.alerts import AlertPolicy
from streams.domain.commands import CommandPolicy
from streams.domain.finance import FinanceMapping
from streams.domain.policy import HOUR_MS, Policy
from streams.domain.routing import RoutingRules
from streams.faust_app import StreamApp
from streams.kafka_security import faust_credentials
from streams.settings import Settings
from streams.tables import Tables
from streams.topics import AGENT_SOURCES, TopicCatalog

ACCOUNTING_PATH = "/erpbridge/accounting/"


@dataclass
class Topology:
    app: faust.App
    accounting: EventAccounting
    tables: Tables
    dispatcher: Dispatcher


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server]


def policy_of(settings: Settings) -> Policy:
    return Policy(
        dedup_ttl_ms=int(settings.dedup_ttl_hours * HOUR_MS),
        max_wait_ms=int(settings.max_wait_minutes * 60_000),
        snapshot_window_ms=int(settings.snapshot_window_hours * HOUR_MS),
    )


def command_policy_of(settings: Settings) -> CommandPolicy:
    return CommandPolicy(settings.erp_target, settings.confirm_on, settings.erp_sources)


def alert_policy_of(settings: Settings) -> AlertPolicy:
    return AlertPolicy.from_settings(settings)


def create_topology(
    settings: Settings, codec: Codec | None = None, clock: Callable[[], float] = time.time
) -> Topology:
    catalog = TopicCatalog.from_settings(settings)
    app = StreamApp(
        settings.app_id,
        stream_topics=frozenset(catalog.physical(name) for name in AGENT_SOURCES),
        broker=broker_urls(settings.require_bootstrap()),
        broker_credentials=faust_credentials(settings),
        # rocksdb keeps state on the worker's volume so a restart replays only the changelog tail.
        store="rocksdb://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # Bytes in, bytes out: the codec decodes, so bad bytes reach the dead-letter topic
        # instead of failing inside Faust's deserialiser.
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_seconds,
        # A few milliseconds of linger batch the many small outputs into fewer requests.
        producer_linger=0.005,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        web_host=settings.web_host,
        web_port=settings.web_port,
        autodiscover=False,
    )
    codec = codec or codec_from_settings(settings)
    rules = RoutingRules.from_file(settings.routing_rules)
    policy = policy_of(settings)
    accounting = EventAccounting()
    tables = Tables.create(app, catalog)
    dead_letters = DeadLetters(app, catalog, AGENT_SOURCES)
    intake = Intake(catalog, codec, accounting, dead_letters)
    context = AgentContext(
        app=app,
        catalog=catalog,
        codec=codec,
        tables=tables,
        intake=intake,
        dead_letters=dead_letters,
        accounting=accounting,
        outputs=Outputs(app, catalog, codec, settings.erp_target),
        rules=rules,
        policy=policy,
        commands=command_policy_of(settings),
        finance=FinanceMapping.from_file(settings.finance_mapping),
        alerts=alert_policy_of(settings),
        clock=clock,
    )
    OrderAgent(context).register(settings.expiry_interval_seconds)
    StockAgent(context).register()
    ResultsAgent(context).register()

    @app.page(ACCOUNTING_PATH)
    async def _accounting(web: View, request: Request) -> Response:
        return web.json({"topics": accounting.snapshot(), "totals": accounting.totals()})

    # Started and stopped with the worker; it has its own consumer group (see its module).
    dispatcher = Dispatcher(settings, catalog, codec)
    app.add_dependency(dispatcher)

    @app.page(DISPATCH_PATH)
    async def _dispatch(web: View, request: Request) -> Response:
        return web.json(dispatcher.snapshot())

    return Topology(app, accounting, tables, dispatcher)
