"""Run a topology as a Faust worker in this process, until SIGINT/SIGTERM."""

from __future__ import annotations

from typing import NoReturn

import faust
from mode import ServiceT

from streams.app import Topology


def run(
    topology: Topology, *services: ServiceT, loglevel: str = "warning", quiet: bool = False
) -> NoReturn:
    # Our own output goes to stdout as is, not through faust's logger.
    worker = faust.Worker(
        topology.app, *services, loglevel=loglevel, quiet=quiet, redirect_stdouts=False
    )
    worker.execute_from_commandline()
