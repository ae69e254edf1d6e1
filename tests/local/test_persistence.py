"""SQLite state: private files, survives restarts, shared by backends and processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest

from flyk.local import DB_ENV_VAR, LocalBackend, LocalDatabaseError, Timing, default_path
from tests.local.conftest import FakeClock, checked_client, make_app, make_machine

REPO = Path(__file__).resolve().parents[2]


def test_files_are_private(db_path: Path, client: httpx.Client) -> None:
    make_app(client)
    for path in [db_path, *db_path.parent.glob(db_path.name + "-*")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_default_path_and_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_path().name == "local.db"
    assert default_path().parent.name == "flyk"
    assert str(default_path()).startswith(os.environ["XDG_DATA_HOME"])
    monkeypatch.setenv(DB_ENV_VAR, str(tmp_path / "elsewhere.db"))
    assert default_path() == tmp_path / "elsewhere.db"
    assert LocalBackend().path == tmp_path / "elsewhere.db"


def test_state_survives_a_restart(db_path: Path) -> None:
    with checked_client(LocalBackend(db_path).transport()) as first:
        make_app(first)
        machine = make_machine(first)
        first.post("/apps/demo/secrets", json={"values": {"A": "1"}})
    with checked_client(LocalBackend(db_path).transport()) as second:
        assert second.get(f"/apps/demo/machines/{machine['id']}").json()["state"] == "started"
        assert second.get("/apps/demo/secrets").json()["secrets"][0]["name"] == "A"


def test_transitions_progress_between_runs(db_path: Path) -> None:
    """A machine booting when one run ends is started when the next run looks: no daemon."""
    clock = FakeClock()
    booting = LocalBackend(db_path, Timing.realistic(), clock=clock)
    with checked_client(booting.transport()) as first:
        make_app(first)
        machine = make_machine(first)
        assert machine["state"] == "starting"
    clock.advance(5)
    later = LocalBackend(db_path, Timing.instant(), clock=clock)
    with checked_client(later.transport()) as second:
        assert second.get(f"/apps/demo/machines/{machine['id']}").json()["state"] == "started"


def test_two_backends_on_one_file(db_path: Path) -> None:
    one, two = LocalBackend(db_path), LocalBackend(db_path)
    with checked_client(one.transport()) as a, checked_client(two.transport()) as b:
        make_app(a)
        errors: list[BaseException] = []

        def create(client: httpx.Client) -> None:
            try:
                for _ in range(10):
                    make_machine(client)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=create, args=(c,)) for c in (a, b, a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(b.get("/apps/demo/machines").json()) == 40


WORKER = textwrap.dedent(
    """
    import sys, httpx
    from flyk.local import LocalBackend
    backend = LocalBackend(sys.argv[1])
    with httpx.Client(transport=backend.transport(), base_url="http://local/v1") as client:
        for i in range(15):
            r = client.post("/apps/demo/machines", json={"config": {"image": "x"}})
            assert r.status_code == 200, r.text
            m = r.json()["id"]
            assert client.post(f"/apps/demo/machines/{m}/stop").status_code == 200
            r = client.post("/apps/demo/secrets", json={"values": {f"S{sys.argv[2]}_{i}": "v"}})
            assert r.status_code == 200, r.text
    """
)


def test_two_processes_on_one_file(db_path: Path, client: httpx.Client) -> None:
    make_app(client)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(db_path), str(n)],
            env=env,
            stderr=subprocess.PIPE,
        )
        for n in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr.decode()
    machines = client.get("/apps/demo/machines").json()
    assert len(machines) == 30 and {m["state"] for m in machines} == {"stopped"}
    secrets = client.get("/apps/demo/secrets").json()["secrets"]
    assert len(secrets) == 30


def test_reset_clears_state_and_knobs(backend: LocalBackend, client: httpx.Client) -> None:
    make_app(client)
    backend.capacity.set("iad", 0)
    backend.rate_limits.enable()
    backend.reset()
    assert client.get("/apps", params={"org_slug": "personal"}).json()["apps"] == []
    assert backend.capacity.limit("iad") > 0 and not backend.rate_limits.enabled
    make_app(client)


STOPPER = textwrap.dedent(
    """
    import sys, time, httpx
    from flyk.local import LocalBackend
    time.sleep(0.3)
    backend = LocalBackend(sys.argv[1])
    with httpx.Client(transport=backend.transport(), base_url="http://local/v1") as client:
        assert client.post(f"/apps/demo/machines/{sys.argv[2]}/stop").status_code == 200
    """
)


def test_wait_sees_a_write_by_another_process(db_path: Path, client: httpx.Client) -> None:
    make_app(client)
    machine = make_machine(client)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    stopper = subprocess.Popen(
        [sys.executable, "-c", STOPPER, str(db_path), machine["id"]],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        response = client.get(
            f"/apps/demo/machines/{machine['id']}/wait", params={"state": "stopped", "timeout": 30}
        )
    finally:
        _, stderr = stopper.communicate(timeout=60)
    assert stopper.returncode == 0, stderr.decode()
    assert response.status_code == 200 and response.json()["state"] == "stopped"


def test_many_threads_over_http(backend: LocalBackend) -> None:
    with backend.serve() as served:
        with checked_client(httpx.HTTPTransport(), served.url) as setup:
            make_app(setup)
        errors: list[BaseException] = []

        def churn() -> None:
            try:
                with checked_client(httpx.HTTPTransport(), served.url) as client:
                    for _ in range(5):
                        machine = make_machine(client)["id"]
                        base = f"/apps/demo/machines/{machine}"
                        assert client.post(f"{base}/stop").status_code == 200
                        waited = client.get(f"{base}/wait", params={"state": "stopped"})
                        assert waited.status_code == 200
                        assert client.delete(base).status_code == 200
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=churn) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with checked_client(httpx.HTTPTransport(), served.url) as check:
            listed = check.get("/apps/demo/machines", params={"include_deleted": "true"}).json()
            assert len(listed) == 40 and {m["state"] for m in listed} == {"destroyed"}


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n")
    path.chmod(0o644)
    with pytest.raises(LocalDatabaseError, match=f"cannot use {path} .*FLYK_LOCAL_DB") as caught:
        LocalBackend(path)
    assert caught.value.path == path
    assert "not a database" in caught.value.reason
    assert path.read_text() == "not a database\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # a file we did not create keeps its mode


@pytest.mark.parametrize("where", ["a-directory", "under-a-file"])
def test_a_path_that_cannot_hold_a_database_is_refused(tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path if where == "a-directory" else tmp_path / "file" / "local.db"
    with pytest.raises(LocalDatabaseError, match=f"cannot use {path} as the local backend"):
        LocalBackend(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes any file")
def test_a_database_once_read_only_is_writable_again_once_its_mode_is(db_path: Path) -> None:
    """SQLite made the -wal and -shm files 0400 beside a 0400 database, and they kept the
    database read-only after its mode was restored."""
    LocalBackend(path=db_path)
    os.chmod(db_path, 0o400)
    with pytest.raises(LocalDatabaseError, match="readonly"):
        LocalBackend(path=db_path)
    os.chmod(db_path, 0o600)
    backend = LocalBackend(path=db_path)
    with checked_client(backend.transport()) as client:
        make_app(client, "web")
    for sidecar in db_path.parent.glob(db_path.name + "-*"):
        assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
