"""The stream worker with a business clock the test moves, for timers and alerts.

`python -m tests.streams.clocked_worker CLOCK_FILE`: the clock is the system time plus the
milliseconds written in CLOCK_FILE, so a test covers minutes of business time in seconds
through the topology's injectable clock; settings come from the environment as usual.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from streams.ops.settings import Settings
from streams.topology import worker
from streams.topology.app import create_topology


class FileClock:
    def __init__(self, path: Path) -> None:
        self._path = path

    def __call__(self) -> float:
        text = self._path.read_text().strip() if self._path.exists() else ""
        return time.time() + int(text or 0) / 1000


def advance(clock_file: Path, ms: int) -> None:
    """Move the business clock of the workers reading `clock_file` forward by `ms`."""
    text = clock_file.read_text().strip() if clock_file.exists() else ""
    clock_file.write_text(str(int(text or 0) + ms))


if __name__ == "__main__":
    clock_file = Path(sys.argv[1])
    worker.run(create_topology(Settings(), clock=FileClock(clock_file)), loglevel="info")
