"""CPU accounting from /proc (Linux): who used the cores during a measured window.

The benchmark shares two cores between the broker, the process under test and the bench
itself; anything else running on the machine (a test suite, a build) lowers the figures.
`CpuMeter` measures each known process and the whole machine, so the report can say how
much went to processes outside the benchmark. Elsewhere than Linux the figures are None.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads); None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # utime and stime are fields 14 and 15 of stat; fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine spent busy (all cores) since boot."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    # user nice system idle iowait irq softirq steal; guest time is already in user.
    values = [int(v) for v in first[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def listening_pid(port: int) -> int | None:
    """The process with a TCP socket listening on `port` on this machine, if it can be seen."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # fields[1] is local address:port in hex, [3] the state (0A = LISTEN), [9] the inode.
            if (
                len(fields) > 9
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(entry.name)
        except OSError:
            continue
    return None


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    machine: float | None
    processes: dict[str, float | None]


@dataclass(frozen=True)
class CpuUsage:
    """Cores in use on average over a window: 1.0 is one core fully busy."""

    machine: float | None
    processes: dict[str, float | None] = field(default_factory=dict)

    @property
    def others(self) -> float | None:
        """What processes outside the benchmark used, when every part of it was measured."""
        if self.machine is None or any(v is None for v in self.processes.values()):
            return None
        return max(0.0, self.machine - sum(v or 0.0 for v in self.processes.values()))


class CpuMeter:
    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids

    def snapshot(self, at: float) -> CpuSnapshot:
        return CpuSnapshot(
            at,
            machine_busy_seconds(),
            {
                name: None if pid is None else process_cpu_seconds(pid)
                for name, pid in self.pids.items()
            },
        )

    @staticmethod
    def usage(
        before: CpuSnapshot, after: CpuSnapshot, extra: dict[str, float] | None = None
    ) -> CpuUsage:
        """Cores used between two snapshots; `extra` adds CPU seconds measured elsewhere
        (a process that has exited) over the same window."""
        wall = after.at - before.at
        if wall <= 0:
            return CpuUsage(None)
        machine = None
        if before.machine is not None and after.machine is not None:
            machine = (after.machine - before.machine) / wall
        processes: dict[str, float | None] = {}
        for name, start in before.processes.items():
            end = after.processes.get(name)
            processes[name] = None if start is None or end is None else (end - start) / wall
        for name, seconds in (extra or {}).items():
            processes[name] = seconds / wall
        return CpuUsage(machine, processes)
