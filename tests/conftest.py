"""Test isolation: each test gets its own HOME, XDG dirs and a clean Fly/Kubernetes env."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from flyk.local import LocalBackend
from tests.spec_check import SpecCheckingTransport

if TYPE_CHECKING:
    from tests.kubelet.realkube import ControlPlane, Kube

# Variables that would make a test depend on the developer's machine.
_LEAKY_ENV = (
    "FLY_API_TOKEN",
    "FLY_ACCESS_TOKEN",
    "FLY_APP",
    "FLY_ORG",
    "FLY_REGION",
    "FLY_JSON",
    "FLY_FLAPS_BASE_URL",
    "FLY_API_HOSTNAME",
    "FLY_CONFIG_DIR",
    "FLYK_LOCAL_DB",
    "KUBECONFIG",
    "FLYK_CONTROLPLANE_BIN",  # the real control plane runs only where a test asks for it
    "FLYK_LOCAL_RUNTIME",
)


@pytest.fixture(autouse=True)
def isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    for name in _LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    # flyk's own requests must name only the spec's fields: a typo in the client is a 400 here,
    # where the real API (and a lenient local backend) would silently ignore the field.
    monkeypatch.setenv("FLYK_LOCAL_STRICT", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("TERM", "dumb")
    yield home


# api and local wrap the backend's transport themselves (some send bad requests on purpose).
_CHECKS_ITS_OWN_EXCHANGES = ("api", "local")
_TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def spec_checked_local_backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every exchange with an in-process local backend is checked against the spec.

    The CLI and k8s suites reach the backend through `LocalBackend.transport()` (their
    fixtures, or the CLI's own context): wrapping it here checks them all, with no edit to their
    fixtures, so a request the spec does not allow fails the test that sent it."""
    relative = Path(str(request.node.path)).resolve().relative_to(_TESTS)
    if relative.parts[0] in _CHECKS_ITS_OWN_EXCHANGES:
        return
    unchecked = LocalBackend.transport

    def checked(backend: LocalBackend) -> httpx.BaseTransport:
        return SpecCheckingTransport(unchecked(backend))

    monkeypatch.setattr(LocalBackend, "transport", checked)


@pytest.fixture(scope="session")
def controlplane_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real flyk-controlplane binary (upstream Kubernetes and kine, controlplane/), built
    once with Go into the user's cache (keyed by go.mod, go.sum and the sources), so later
    runs reuse it. A lock keeps pytest-xdist's workers from building it twice at once.

    Without Go and without a built binary the tests that need it are skipped, except in CI
    (`CI` set), where that is a failure: CI must run them."""
    import os
    import shutil

    from filelock import FileLock

    from flyk.k8s import binary

    named = os.environ.get(binary.BINARY_ENV_VAR)
    if named:
        return Path(named)
    if shutil.which("go") is None and binary.find() is None:
        message = "the control plane needs Go to build (or FLYK_CONTROLPLANE_BIN)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    cache = binary.cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / ".build.lock")):
        return binary.build().path


@pytest.fixture(scope="session")
def control_plane(
    controlplane_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """kine, kube-apiserver, kube-controller-manager, kube-scheduler and CoreDNS with
    production's flags, run by flyk's supervisor (tests/kubelet/realkube.py); stopped at the
    end of the session, leaving nothing."""
    from tests.kubelet.realkube import ControlPlane

    plane = ControlPlane(controlplane_binary, tmp_path_factory.mktemp("control-plane")).start()
    yield plane
    left = plane.stop()
    assert left == [], f"control-plane processes left running: {left}"


@pytest.fixture
def kube(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Kube]:
    """One test's view of the session's control plane (its own namespaces and node)."""
    from tests.kubelet.realkube import Kube

    view = Kube(control_plane, tmp_path)
    yield view
    view.close()
