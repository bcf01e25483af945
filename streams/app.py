"""The Faust application: configuration from Settings, and the agents wired onto it."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.web import Request, Response, View

from streams.accounting import EventAccounting
from streams.agents import intake
from streams.codec import Codec, codec_from_settings
from streams.settings import Settings
from streams.topics import TopicCatalog

ACCOUNTING_PATH = "/erpbridge/accounting/"


@dataclass
class Topology:
    app: faust.App
    accounting: EventAccounting


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server]


def create_topology(settings: Settings, codec: Codec | None = None) -> Topology:
    app = faust.App(
        settings.app_id,
        broker=broker_urls(settings.require_bootstrap()),
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
        web_host=settings.web_host,
        web_port=settings.web_port,
        autodiscover=False,
    )
    accounting = EventAccounting()
    intake.register(
        app,
        TopicCatalog.from_settings(settings),
        codec or codec_from_settings(settings),
        accounting,
    )

    @app.page(ACCOUNTING_PATH)
    async def _accounting(web: View, request: Request) -> Response:
        return web.json({"topics": accounting.snapshot(), "totals": accounting.totals()})

    return Topology(app, accounting)
