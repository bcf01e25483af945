"""The `erpbridge` command line: one module per verb, registered on the group in app.py."""

from streams.cli import (  # noqa: F401  (registers verbs)
    acls,
    connector,
    demo,
    dlq,
    export,
    k8s,
    local,
    payouts,
    produce,
    replay,
    resync,
    sample,
    tail,
    topics,
    webhooks,
    worker,
)
from streams.cli.app import main

__all__ = ["main"]
