"""Consumer group ids, part of the catalogue like the changelogs' names: each follows the
app id, and the ACLs (streams.contracts.access) name them."""

from __future__ import annotations

import uuid


def worker_group(app_id: str) -> str:
    """The Faust agents' group: Faust names it after the app."""
    return app_id


def dispatch_group(app_id: str) -> str:
    """The dispatcher's consumer group, beside the Faust group `app_id`."""
    return f"{app_id}-dispatch"


def connector_group_prefix(app_id: str) -> str:
    """What the groups of every ERP target's connector start with."""
    return f"{app_id}-connector-"


def connector_group(app_id: str, target: str) -> str:
    """The consumer group of the connector of ERP `target`: one per target."""
    return connector_group_prefix(app_id) + target


def storefront_group(app_id: str) -> str:
    """The storefront sink's group: it reads inventory.availability."""
    return f"{app_id}-storefront"


TAIL_GROUP_PREFIX = "erpbridge-tail-"
READER_GROUP_PREFIX = "erpbridge-reader-"
PUSHES_GROUP_PREFIX = "erpbridge-webhooks-"
"""Readers that assign partitions (`erpbridge tail`; export, dlq and the payouts job's
watermarks through streams.ops.records; the webhooks' stock-push reader) join no group
and commit nothing, but librdkafka wants a group id and looks its coordinator up: a
random id after one of these prefixes."""


def reader_group(prefix: str) -> str:
    """A fresh group id for a reader that assigns its partitions."""
    return prefix + uuid.uuid4().hex
