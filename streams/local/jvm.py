"""Pieces shared by the local JVM services (Kafka broker, schema registry) run for development and tests."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

_log = logging.getLogger(__name__)

_MAVEN_TIMEOUT_S = 900.0


def cache_dir(env: Mapping[str, str]) -> Path:
    explicit = env.get("ERPBRIDGE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path(env.get("HOME", "~")).expanduser() / ".cache"
    return base / "erpbridge"


JAVA_MISSING = "install a Java runtime, 17 or newer (java not on PATH nor in JAVA_HOME)"
CACHE_MARKER = ".complete"


def is_cached(target: Path) -> bool:
    return (target / CACHE_MARKER).is_file()


def fill_cache_once(
    target: Path, fill: Callable[[Path, Path], None], incomplete: Callable[[str], Exception]
) -> Path:
    """Fill `target` once: `fill(staged, scratch)` writes into `staged`, which is renamed into place.

    Staging beside the final place means a concurrent or interrupted run never sees a
    half-filled directory; `scratch` is a work directory removed afterwards.
    """
    if is_cached(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        staged, scratch = Path(tmp) / "staged", Path(tmp) / "scratch"
        scratch.mkdir()
        fill(staged, scratch)
        (staged / CACHE_MARKER).write_text(f"{target.name}\n", encoding="utf-8")
        try:
            staged.rename(target)
        except OSError:
            if not is_cached(target):
                raise incomplete(f"{target} exists but is incomplete: delete it") from None
            # Another run finished the same download first; its copy is as good as ours.
    return target


def run_maven(
    mvn: str, args: list[str], *, cwd: Path, what: str, unavailable: Callable[[str], Exception]
) -> None:
    result = subprocess.run(
        [mvn, "-q", "-B", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=_MAVEN_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise unavailable(
            f"Maven could not fetch {what} (exit {result.returncode}); Maven Central must be "
            "reachable:\n" + tail(result.stdout + result.stderr)
        )


def java(env: Mapping[str, str]) -> str | None:
    java_home = env.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java", path=env.get("PATH"))


def maven(env: Mapping[str, str]) -> str | None:
    return shutil.which("mvn", path=env.get("PATH"))


def free_ports(count: int) -> list[int]:
    # Hold every socket until all are bound so the ports differ from each other.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def new_log(env: Mapping[str, str], service: str) -> Path:
    """An empty, uniquely named log file for one run of `service` under the cache's logs."""
    logs = cache_dir(env) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=logs, prefix=f"{service}-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".log"
    )
    os.close(fd)
    return Path(name)


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM for a clean shutdown; SIGKILL when it does not come within `timeout` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def dispose_log(log_path: Path, keep: Callable[[], bool], service: str) -> None:
    if keep():
        # Logging's last-resort handler prints this even where logging is not configured.
        _log.warning("%s log kept: %s", service, log_path)
    else:
        log_path.unlink(missing_ok=True)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def log_tail(log_path: Path) -> str:
    return tail(log_path.read_text(errors="replace"))
