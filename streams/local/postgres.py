"""Throwaway PostgreSQL clusters from the machine's own binaries, for the ERP and the
storefront that run here (streams.local.tryton, streams.local.medusa).

The binaries come from Debian's package (installed with apt when running as root and they
are missing). A cluster lives in a run directory under /tmp, listens on a free loopback port,
trusts its superuser, and trades durability for speed (its data is thrown away). As root,
initdb and postgres run as an unprivileged user, since they refuse root.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

from streams.local import debian
from streams.local.jvm import free_ports, log_tail, stop_process

# initdb and postgres refuse to run as root; as root they run as this unprivileged user.
_PG_OS_USER = "nobody"
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 30.0
PG_MISSING = (
    "install PostgreSQL server binaries (Debian/Ubuntu: apt-get install postgresql; "
    "initdb, pg_ctl, postgres not found in /usr/lib/postgresql/*/bin nor on PATH)"
)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries can be found or installed; the message says what to install."""


def postgres_bin(env: Mapping[str, str]) -> Path:
    """The directory of initdb/postgres/psql, installing the Debian package if root may."""
    found = _find_postgres_bin(env)
    if found is None and debian.can_install(env):
        debian.install(["postgresql"], env)
        found = _find_postgres_bin(env)
    if found is None:
        raise PostgresUnavailable(PG_MISSING)
    return found


def _find_postgres_bin(env: Mapping[str, str]) -> Path | None:
    # Debian keeps the server binaries off PATH, one directory per major version: newest first.
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    on_path = shutil.which("initdb", path=env.get("PATH"))
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for directory in candidates:
        if all(
            os.access(Path(directory) / tool, os.X_OK) for tool in ("initdb", "postgres", "psql")
        ):
            return Path(directory)
    return None


def pg_major(bin_dir: Path) -> str:
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return out.split()[-1].split(".")[0]


def give_to_cluster_owner(path: Path) -> None:
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam(_PG_OS_USER)
    for root, dirs, files in os.walk(path):
        for name in (".", *dirs, *files):
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)


class Postgres:
    """One throwaway PostgreSQL cluster in `run_dir`, on a loopback port, with `superuser`
    trusted from loopback."""

    def __init__(self, bin_dir: Path, run_dir: Path, log_path: Path, superuser: str) -> None:
        self.superuser = superuser
        self.bin_dir = bin_dir
        self.run_dir = run_dir
        self.data = run_dir / "pgdata"
        self.log_path = log_path
        self.port = free_ports(1)[0]
        self.process: subprocess.Popen[bytes] | None = None

    def _as_owner(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        user = pwd.getpwnam(_PG_OS_USER)
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]

    def initdb(self) -> None:
        self._run(
            [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", self.superuser,
             "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
            as_owner=True,
        )  # fmt: skip

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self._as_owner(), str(self.bin_dir / "postgres"), "-D", str(self.data),
                 "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                 "-c", f"unix_socket_directories={self.run_dir}",
                 # Throwaway data: durability only costs time here.
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"PostgreSQL exited with {self.process.returncode} while starting, "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if self.psql("SELECT 1", check=False):
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"PostgreSQL not ready after {_START_TIMEOUT_S:.0f}s, log {self.log_path}"
        )

    def psql(self, sql: str, *, check: bool = True) -> bool:
        result = subprocess.run(
            [str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
             "-U", self.superuser, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
            capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise RuntimeError(f"psql {sql!r} failed: {result.stderr.strip()}")
        return result.returncode == 0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # SIGINT is PostgreSQL's fast shutdown: no waiting for clients, still a clean stop.
            self.process.send_signal(signal.SIGINT)
        if self.process is not None:
            stop_process(self.process, _STOP_TIMEOUT_S)

    def _run(self, args: list[str], *, as_owner: bool) -> None:
        with self.log_path.open("ab") as log:
            result = subprocess.run(
                [*(self._as_owner() if as_owner else []), *args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                timeout=_START_TIMEOUT_S, check=False,
            )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(args[0]).name} failed (exit {result.returncode}), "
                f"log {self.log_path}:\n{log_tail(self.log_path)}"
            )


def new_run_dir(name: str) -> Path:
    """A run directory under /tmp, not the cache: the cache may sit in root's home, where the
    cluster's owner cannot reach."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"erpbridge-{name}-"))
    give_to_cluster_owner(run_dir)
    return run_dir


def started_copy(
    stack: ExitStack,
    bin_dir: Path,
    template: Path,
    run_dir: Path,
    log_path: Path,
    superuser: str,
    databases: tuple[str, str],
) -> Postgres:
    """A cluster copied from the stopped data dir `template` into `run_dir` and started, with
    `databases[0]` created from its `databases[1]`; stopped when `stack` closes, or at exit."""
    pg = Postgres(bin_dir, run_dir, log_path, superuser)
    shutil.copytree(template, pg.data, symlinks=True)
    pg.data.chmod(0o700)  # postgres refuses a data dir others can read
    give_to_cluster_owner(pg.data)
    stack.callback(pg.stop)
    atexit.register(pg.stop)
    stack.callback(atexit.unregister, pg.stop)
    pg.start()
    database, template_database = databases
    pg.psql(f"CREATE DATABASE {database} TEMPLATE {template_database}")
    return pg
