"""Finding, and building, the flyk-controlplane binary (the Go module in controlplane/).

In order: `FLYK_CONTROLPLANE_BIN` (a prebuilt binary named by the user), a binary shipped
inside the package (`flyk/_bin/`, what a platform wheel carries: docs/k8s.md), then the
build cache (`<user cache dir>/flyk/controlplane/<key>/`, keyed by a digest of the module's
go.mod, go.sum and sources, so a changed pin builds anew and an unchanged one never does).
`build()` compiles the module with the Go toolchain into that cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flyk.errors import ConfigError, FlykError, UsageError

BINARY_ENV_VAR = "FLYK_CONTROLPLANE_BIN"
BINARY_NAME = "flyk-controlplane"
_PACKAGE = Path(__file__).resolve().parent.parent
# A wheel carries the module's sources here (pyproject's force-include); a checkout has them
# beside the package.
_SOURCE_DIRS = (_PACKAGE / "_controlplane", _PACKAGE.parent / "controlplane")
_SHIPPED = _PACKAGE / "_bin" / BINARY_NAME

BUILD_HINT = (
    "build it with `flyk ext k8s build` (needs Go 1.26), or name one with FLYK_CONTROLPLANE_BIN"
)


def source_dir() -> Path | None:
    for candidate in _SOURCE_DIRS:
        if (candidate / "go.mod").is_file():
            return candidate
    return None


def cache_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("flyk", appauthor=False)) / "controlplane"


def source_key(source: Path) -> str:
    """A digest of what the binary is built from: go.mod, go.sum and the Go files."""
    digest = hashlib.sha256()
    files = [source / "go.mod", source / "go.sum", *sorted(source.glob("*.go"))]
    for path in files:
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cached_path(source: Path) -> Path:
    return cache_root() / source_key(source) / BINARY_NAME


def _usable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find() -> Path | None:
    """The binary to run, or None when there is none (and none named)."""
    named = os.environ.get(BINARY_ENV_VAR)
    if named:
        path = Path(named).expanduser()
        if not _usable(path):
            raise ConfigError(
                f"{BINARY_ENV_VAR}={named} is not an executable file", hint=BUILD_HINT
            )
        return path
    if _usable(_SHIPPED):
        return _SHIPPED
    source = source_dir()
    if source is not None and _usable(cached := cached_path(source)):
        return cached
    return None


def require() -> Path:
    path = find()
    if path is None:
        raise ConfigError("the flyk control-plane binary is not built", hint=BUILD_HINT)
    return path


def pinned_version(source: Path, module: str) -> str:
    """The version go.mod pins for `module` (Kubernetes' is what `kubectl version` shows)."""
    pattern = re.compile(rf"^\s*{re.escape(module)} (v\d+\.\d+\.\d+)\s*$", re.M)
    match = pattern.search((source / "go.mod").read_text())
    if not match:
        raise ConfigError(f"{source / 'go.mod'} pins no {module} version")
    return match.group(1)


def ldflags(version: str, kine_version: str) -> str:
    """Version variables Kubernetes' own build sets (else `/version` says v0.0.0-master), and
    kine's."""
    major, minor, _ = version.removeprefix("v").split(".", 2)
    values = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags.extend(f"-X {package}.{key}={value}" for key, value in values.items())
    flags.append(f"-X github.com/k3s-io/kine/pkg/version.Version={kine_version}")
    return " ".join(flags)


@dataclass(frozen=True)
class Built:
    path: Path
    seconds: float
    size_bytes: int
    reused: bool


def build(*, force: bool = False, progress: Callable[[str], None] = lambda _line: None) -> Built:
    """Compile the module into the cache (or find it there). Go writes its module and build
    caches as usual (GOMODCACHE, GOCACHE), so a second build of a new pin is quick."""
    source = source_dir()
    if source is None:
        raise ConfigError(
            "the control plane's Go sources are not in this installation",
            hint=f"install flyk from its repository, or set {BINARY_ENV_VAR}",
        )
    target = cached_path(source)
    if _usable(target) and not force:
        return Built(target, 0.0, target.stat().st_size, reused=True)
    go = shutil.which("go")
    if go is None:
        raise UsageError(
            "building the control plane needs Go 1.26 (`go` is not on PATH)",
            hint=f"install Go, or set {BINARY_ENV_VAR} to a prebuilt flyk-controlplane",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{BINARY_NAME}.{os.getpid()}.partial")
    command = [
        go, "build", "-trimpath", "-tags", "providerless",
        "-ldflags", ldflags(
            pinned_version(source, "k8s.io/kubernetes"),
            pinned_version(source, "github.com/k3s-io/kine"),
        ), "-o", str(partial), ".",
    ]  # fmt: skip
    env = {**os.environ, "CGO_ENABLED": "0"}
    started = time.monotonic()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(15):
            progress(f"still compiling ({time.monotonic() - started:.0f} s)")

    progress(f"compiling {source.name}/ with {_go_version(go)} (the first build takes minutes)")
    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        result = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True)
    finally:
        done.set()
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        for line in result.stderr.strip().splitlines()[-15:]:
            progress(line)
        raise FlykError(f"go build failed (exit {result.returncode}); its last lines are above")
    partial.replace(target)
    seconds = time.monotonic() - started
    return Built(target, seconds, target.stat().st_size, reused=False)


def _go_version(go: str) -> str:
    try:
        out = subprocess.run([go, "version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "go"
    match = re.search(r"go(\d+\.\d+(?:\.\d+)?)", out)
    return f"Go {match.group(1)}" if match else "go"
