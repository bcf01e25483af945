"""Tools the deploy tests run, fetched once into the cache; neither is taken from PATH (a CI
machine may have another version, or none).

kustomize renders the overlays: built with `go install` from the Go module proxy (needs Go).
promtool runs the alert rules' unit tests: unpacked from Debian's `prometheus` package,
because building it with Go took over 20 minutes here (it compiles every cloud SDK of
Prometheus' service discovery). Nothing is installed system-wide and no service starts.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from streams.local.jvm import cache_dir, fill_cache_once

_log = logging.getLogger(__name__)

KUSTOMIZE = ("sigs.k8s.io/kustomize/kustomize/v5", "v5.8.2")
"""The newest kustomize whose go.mod accepts Go 1.26 (v5.8.3 asks for 1.27)."""

_GO_MISSING = "install Go 1.26 or newer (go not on PATH nor in /usr/local/go/bin)"


class ToolUnavailable(RuntimeError):
    pass


def go() -> str:
    found = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if found is None:
        raise ToolUnavailable(_GO_MISSING)
    return found


def tool(package: str, version: str) -> Path:
    """The binary of `package@version`, built with `go install` on first use."""
    name = package.rsplit("/", 1)[-1]
    if name.startswith("v") and name[1:].isdigit():  # a major-version suffix: kustomize/v5
        name = package.rsplit("/", 2)[-2]
    target = cache_dir(os.environ) / "tools" / f"{name}-{version}"

    def build(staged: Path, scratch: Path) -> None:
        started = time.monotonic()
        # Go's own module and build caches stay where they are: a rebuild reuses them.
        result = subprocess.run(
            [go(), "install", f"{package}@{version}"],
            env={**os.environ, "GOBIN": str(staged), "GOTOOLCHAIN": "local"},
            cwd=scratch,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if result.returncode != 0:
            raise ToolUnavailable(
                f"go install {package}@{version} failed:\n{result.stderr[-3000:]}"
            )
        _log.info("built %s %s in %.0f s", name, version, time.monotonic() - started)

    return fill_cache_once(target, build, ToolUnavailable) / name


def kustomize_build(directory: Path) -> str:
    result = subprocess.run(
        [str(tool(*KUSTOMIZE)), "build", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(f"kustomize build {directory} failed:\n{result.stderr}")
    return result.stdout


def promtool() -> Path:
    """promtool out of Debian's `prometheus` package (`apt-get download`, `dpkg-deb -x`)."""
    target = cache_dir(os.environ) / "tools" / "promtool-debian"

    def fetch(staged: Path, scratch: Path) -> None:
        download = ["apt-get", "download", "prometheus"]
        result = subprocess.run(download, cwd=scratch, capture_output=True, text=True, timeout=600)
        if result.returncode != 0 and os.geteuid() == 0:
            # A fresh machine may have no package lists yet.
            subprocess.run(["apt-get", "update"], capture_output=True, timeout=600)
            result = subprocess.run(
                download, cwd=scratch, capture_output=True, text=True, timeout=600
            )
        if result.returncode != 0:
            raise ToolUnavailable(
                "promtool: `apt-get download prometheus` failed (install Debian's prometheus "
                f"package, or run once as root):\n{result.stderr[-2000:]}"
            )
        (deb,) = scratch.glob("prometheus_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(scratch / "root")], check=True)
        staged.mkdir()
        shutil.copy2(scratch / "root" / "usr" / "bin" / "promtool", staged / "promtool")

    return fill_cache_once(target, fetch, ToolUnavailable) / "promtool"
