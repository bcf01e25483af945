"""Run a topology as a Faust worker in this process, until SIGINT/SIGTERM."""

from __future__ import annotations

from typing import NoReturn

import faust
from mode import ServiceT

from streams.ops.gc_tuning import tune_for_streaming
from streams.topology.app import Topology


def run(
    topology: Topology,
    *services: ServiceT,
    loglevel: str = "warning",
    quiet: bool = False,
    override_logging: bool = True,
) -> NoReturn:
    """With `override_logging` false, logging stays as the caller configured it (see
    streams.ops.logs) instead of faust's colored lines."""
    # Our own output goes to stdout as is, not through faust's logger.
    tune_for_streaming()
    worker = faust.Worker(
        topology.app,
        *services,
        loglevel=loglevel,
        quiet=quiet,
        redirect_stdouts=False,
        override_logging=override_logging,
    )
    # Faust's start-up spinner writes cursor control codes even where stdout is a file, and
    # our own output (logs, the demo's progress lines) says what it would.
    worker.spinner = None
    worker.execute_from_commandline()
