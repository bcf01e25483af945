"""erpbridge's container image, built daemonless with buildah as a user's CI would, and the
lock of the dependencies it installs.

`python -m streams.local.image build` (`make image`) builds the root Containerfile with
buildah (`--isolation chroot`, vfs storage in erpbridge's cache, so it runs as root without
a daemon, user namespaces or overlay mounts) and exports the image as an OCI archive,
printing its digest. With no registry reachable the base is a root file system of Debian's
packages made by mmdebstrap and imported; `--base REF` builds from a registry's image
instead. A build whose inputs (the Containerfile, the lock, the code, the schemas and
configuration) hashed the same before is not built again.

`python -m streams.local.image lock` (`make lock`) resolves pyproject.toml's dependencies
to the exact versions the image installs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.local import debian
from streams.local.jvm import cache_dir
from streams.ops.settings import REPO_ROOT

_log = logging.getLogger(__name__)

NAME = "erpbridge"
CONTAINERFILE = REPO_ROOT / "Containerfile"
LOCK = REPO_ROOT / "deploy" / "image" / "requirements.lock"
OUTPUT_DIR = REPO_ROOT / "build" / "image"
# What the image is made of: a change to any of these is a new image.
INPUTS = (
    "Containerfile", ".dockerignore", "pyproject.toml", "README.md",
    "deploy/image", "streams", "connectors", "schemas", "config",
)  # fmt: skip
# The Containerfile's default base, for builds that can pull from a registry.
REGISTRY_BASE = "docker.io/library/python:3.11-slim-bookworm"
# The same Debian release and Python as that base, from Debian's own packages.
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_PACKAGES = ("python3.11", "python3.11-venv", "ca-certificates")
_MMDEBSTRAP_OPTIONS = (
    "--variant=minbase",
    # Documentation and translations are no use in an image; licences stay.
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
)
_TOOLS = {"buildah": "buildah", "mmdebstrap": "mmdebstrap"}
_BUILD_TIMEOUT_S = 1800.0
TOOLS_MISSING = "install buildah and mmdebstrap (Debian/Ubuntu: apt-get install buildah mmdebstrap)"


class ImageBuildError(RuntimeError):
    """The image could not be built; the message says which step and how it failed."""


@dataclass(frozen=True)
class BuiltImage:
    reference: str  # erpbridge:<version>, the name deploy/k8s uses
    inputs_reference: str  # erpbridge:inputs-<hash>, what a repeated build finds
    digest: str  # the manifest's, as a registry will report it after a push
    archive: Path  # OCI archive of `reference`
    archive_bytes: int
    build_seconds: float
    cached: bool


def version() -> str:
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def _input_files() -> Iterator[Path]:
    for name in INPUTS:
        path = REPO_ROOT / name
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and "__pycache__" not in file.parts:
                yield file


def inputs_hash(base: str) -> str:
    digest = hashlib.sha256(base.encode())
    for file in _input_files():
        digest.update(str(file.relative_to(REPO_ROOT)).encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _debian_base_reference() -> str:
    recipe = [DEBIAN_SUITE, DEBIAN_MIRROR, *DEBIAN_PACKAGES, *_MMDEBSTRAP_OPTIONS]
    key = hashlib.sha256("\n".join(recipe).encode()).hexdigest()[:12]
    return f"localhost/{NAME}-base:{DEBIAN_SUITE}-{key}"


class Buildah:
    """buildah on erpbridge's own storage: vfs needs no kernel overlay support, and its own
    root leaves the machine's container storage (and its driver) alone."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = {**env, "BUILDAH_ISOLATION": "chroot"}
        storage = cache_dir(env) / "containers"
        self._global = [
            "--root", str(storage / "storage"),
            "--runroot", str(storage / "run"),
            "--storage-driver", "vfs",
        ]  # fmt: skip

    def run(self, *args: str, timeout: float = _BUILD_TIMEOUT_S) -> str:
        command = ["buildah", *self._global, *args]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=self._env,
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-25:])
            raise ImageBuildError(f"buildah {args[0]} failed (exit {result.returncode}):\n{tail}")
        return result.stdout

    def command(self, *args: str) -> list[str]:
        """A buildah command line for the caller to run itself (a long-running container)."""
        return ["buildah", *self._global, *args]

    @property
    def env(self) -> dict[str, str]:
        return dict(self._env)

    def has_image(self, reference: str) -> bool:
        try:
            self.run("inspect", "--type", "image", reference)
        except ImageBuildError:
            return False
        return True

    def image_config(self, reference: str) -> dict[str, object]:
        """The image's OCI configuration (`config` of the image spec: User, Entrypoint, …)."""
        inspected = json.loads(self.run("inspect", "--type", "image", reference))
        return dict(inspected["OCIv1"]["config"])


def ensure_tools(env: Mapping[str, str]) -> None:
    missing = [package for tool, package in _TOOLS.items() if not shutil.which(tool)]
    if missing and debian.can_install(env):
        debian.install(missing, env)
    if any(shutil.which(tool) is None for tool in _TOOLS):
        raise ImageBuildError(TOOLS_MISSING)


def _import_debian_base(buildah: Buildah, reference: str, env: Mapping[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="erpbridge-base-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        command = [
            "mmdebstrap", "--quiet", *_MMDEBSTRAP_OPTIONS,
            f"--include={','.join(DEBIAN_PACKAGES)}",
            "--format=tar", DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR,
        ]  # fmt: skip
        # A fixed date makes the same packages the same root file system.
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S,
            env={**env, "SOURCE_DATE_EPOCH": "0"}, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise ImageBuildError(
                f"mmdebstrap failed (exit {result.returncode}); {DEBIAN_MIRROR} must be "
                f"reachable:\n{result.stderr[-3000:]}"
            )
        container = buildah.run("from", "scratch").strip()
        try:
            buildah.run("add", container, str(rootfs), "/")
            buildah.run(
                "config",
                "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env", "LANG=C.UTF-8",
                "--cmd", "/bin/bash",
                container,
            )  # fmt: skip
            buildah.run("commit", "--quiet", container, reference)
        finally:
            buildah.run("rm", container)


def _ca_bundle_secret(env: Mapping[str, str]) -> list[str]:
    """The host's CA bundle as the build's `ca-bundle` secret, where the host names one: a
    TLS-inspecting proxy's CA is what lets pip inside the build reach PyPI."""
    for variable in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        path = env.get(variable)
        if path and Path(path).is_file():
            return ["--secret", f"id=ca-bundle,src={path}"]
    return []


def _forget_older_builds(buildah: Buildah, keep: str) -> None:
    """Each build is a full copy on vfs: only the newest stays, beside the base."""
    listed = buildah.run("images", "--format", "{{.Name}}:{{.Tag}}")
    for name in listed.split():
        if name.startswith(f"localhost/{NAME}:inputs-") and name != f"localhost/{keep}":
            try:
                buildah.run("rmi", name)
            except ImageBuildError:  # a container still runs it: next build's turn
                _log.info("kept %s: in use", name)


def build(
    base: str | None = None,
    output_dir: Path = OUTPUT_DIR,
    env: Mapping[str, str] | None = None,
) -> BuiltImage:
    """Build (or find already built) the image from `base`, None meaning Debian's packages."""
    env = dict(os.environ if env is None else env)
    ensure_tools(env)
    buildah = Buildah(env)
    started = time.monotonic()
    if base is None:
        base = _debian_base_reference()
        if not buildah.has_image(base):
            _import_debian_base(buildah, base, env)
    tag = version()
    reference = f"{NAME}:{tag}"
    inputs_reference = f"{NAME}:inputs-{inputs_hash(base)}"
    cached = buildah.has_image(inputs_reference)
    if not cached:
        buildah.run(
            "bud", "--quiet", "--isolation", "chroot",
            "--build-arg", f"BASE={base}",
            *_ca_bundle_secret(env),
            "--file", str(CONTAINERFILE),
            "--tag", reference, "--tag", inputs_reference,
            str(REPO_ROOT),
        )  # fmt: skip
        _forget_older_builds(buildah, keep=inputs_reference)
    else:
        buildah.run("tag", inputs_reference, reference)
    output_dir.mkdir(parents=True, exist_ok=True)
    archive = output_dir / f"{NAME}-{tag}.oci.tar"
    digest_file = output_dir / f"{NAME}-{tag}.digest"
    archive.unlink(missing_ok=True)
    buildah.run(
        "push", "--quiet", "--digestfile", str(digest_file),
        reference, f"oci-archive:{archive}:{reference}",
    )  # fmt: skip
    return BuiltImage(
        reference=reference,
        inputs_reference=inputs_reference,
        digest=digest_file.read_text(encoding="utf-8").strip(),
        archive=archive,
        archive_bytes=archive.stat().st_size,
        build_seconds=time.monotonic() - started,
        cached=cached,
    )


def resolve_lock(env: Mapping[str, str] | None = None) -> str:
    """pyproject.toml's dependencies resolved afresh to exact versions, as the lock's text."""
    with tempfile.TemporaryDirectory(prefix="erpbridge-lock-") as tmp:
        report = Path(tmp) / "report.json"
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
            "--report", str(report), str(REPO_ROOT),
        ]  # fmt: skip
        subprocess.run(command, check=True, env=None if env is None else dict(env))
        installs = json.loads(report.read_text(encoding="utf-8"))["install"]
    pins = sorted(
        f"{item['metadata']['name']}=={item['metadata']['version']}"
        for item in installs
        if not item.get("is_direct")  # erpbridge itself: the image installs it from its wheel
    )
    header = (
        "# The image's Python packages, exactly: `make lock` resolves pyproject.toml's\n"
        "# dependencies afresh and writes this file; tests check it still satisfies them.\n"
    )
    return header + "\n".join(pins) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.local.image", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help="build the image and export it")
    build_command.add_argument(
        "--base",
        default=os.environ.get("ERPBRIDGE_IMAGE_BASE") or None,
        help=f"base image to pull (e.g. {REGISTRY_BASE}); default: Debian's packages",
    )
    build_command.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    commands.add_parser("lock", help=f"write {LOCK.relative_to(REPO_ROOT)}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "lock":
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        LOCK.write_text(resolve_lock(), encoding="utf-8")
        print(f"wrote {LOCK.relative_to(REPO_ROOT)}")
        return 0
    try:
        image = build(args.base, args.output_dir)
    except ImageBuildError as error:
        print(f"image: {error}", file=sys.stderr)
        return 1
    how = "unchanged inputs, built before" if image.cached else "built"
    archive = image.archive
    shown = archive.relative_to(REPO_ROOT) if archive.is_relative_to(REPO_ROOT) else archive
    print(
        f"{image.reference} ({how}, {image.build_seconds:.0f} s)\n"
        f"digest  {image.digest}\n"
        f"archive {shown} ({image.archive_bytes / 1e6:.0f} MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
