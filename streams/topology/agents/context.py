"""What every agent works with, built once by streams.topology.app."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import faust
from faust.types import TopicT

from streams.contracts.codec import Codec
from streams.contracts.topics import TopicCatalog
from streams.domain.alerts import AlertPolicy
from streams.domain.commands import CommandPolicy
from streams.domain.finance import FinanceMapping
from streams.domain.policy import Policy
from streams.domain.routing import RoutingRules
from streams.domain.tracking import TrackingPolicy
from streams.topology.accounting import EventAccounting
from streams.topology.agents.deadletters import DeadLetters
from streams.topology.agents.intake import Intake
from streams.topology.agents.outputs import Outputs
from streams.topology.faust_app import StreamApp
from streams.topology.tables import Tables


def catalog_topic(app: faust.App, catalog: TopicCatalog, *names: str) -> TopicT:
    """A Faust topic over catalogue topics (one partition count: the first one's)."""
    return app.topic(
        *(catalog.physical(name) for name in names), partitions=catalog.partitions(names[0])
    )


@dataclass(frozen=True)
class AgentContext:
    app: StreamApp
    catalog: TopicCatalog
    codec: Codec
    tables: Tables
    intake: Intake
    dead_letters: DeadLetters
    accounting: EventAccounting
    outputs: Outputs
    rules: RoutingRules
    policy: Policy
    commands: CommandPolicy
    finance: FinanceMapping
    alerts: AlertPolicy
    tracking: TrackingPolicy
    clock: Callable[[], float] = field(default=time.time)

    def topic(self, *names: str) -> TopicT:
        return catalog_topic(self.app, self.catalog, *names)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)
