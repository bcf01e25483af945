"""Debian packages a local tool needs (PostgreSQL for Tryton, buildah for the image),
installed with apt-get when missing and the process may (root on Debian or Ubuntu)."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

_log = logging.getLogger(__name__)

_INSTALL_TIMEOUT_S = 900.0
_LOCK = "/run/lock/erpbridge-apt.lock"


def can_install(env: Mapping[str, str]) -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get", path=env.get("PATH")) is not None


def install(packages: Sequence[str], env: Mapping[str, str]) -> None:
    """apt-get install `packages`; the caller checks afterwards for what it needs, so a
    failed install surfaces as that tool's own 'install X' message.

    One at a time across processes (the test session's xdist workers may need the same
    package at once, and apt-get fails rather than waits on another's lock)."""
    _log.info("apt-get install -y %s", " ".join(packages))
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for args in (["apt-get", "update"], ["apt-get", "install", "-y", *packages]):
            subprocess.run(
                args, capture_output=True, timeout=_INSTALL_TIMEOUT_S, check=False,
                stdin=subprocess.DEVNULL, env={**env, "DEBIAN_FRONTEND": "noninteractive"},
            )  # fmt: skip
