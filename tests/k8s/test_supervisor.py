"""The supervisor with small stand-in processes: order, readiness, restarts, reverse stop."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from flyk.k8s.supervisor import Process, Supervisor

# A stand-in component: records its start, becomes ready by writing a file after `delay`,
# records SIGTERM and exits 0 on it, or exits by itself with `code` after `life` seconds.
STANDIN = r"""
import pathlib, signal, sys, time
name, record, delay, life, code = sys.argv[1], pathlib.Path(sys.argv[2]), *map(float, sys.argv[3:6])
def log(what):
    with record.open("a") as f:
        f.write(f"{what} {name}\n")
def stop(*_):
    log("stop")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
log("start")
time.sleep(delay)
(record.parent / f"{name}.ready").touch()
time.sleep(life)
sys.exit(int(code))
"""


def standin(
    tmp: Path,
    name: str,
    *,
    delay: float = 0.0,
    life: float = 3600,
    code: int = 0,
    stage: int = 0,
) -> Process:
    record = tmp / "record"
    argv = [sys.executable, "-c", STANDIN, name, str(record), str(delay), str(life), str(code)]
    return Process(name, lambda: argv, ready=(tmp / f"{name}.ready").exists, stage=stage)


def events(tmp: Path) -> list[str]:
    path = tmp / "record"
    return path.read_text().splitlines() if path.exists() else []


def run_in_thread(supervisor: Supervisor) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(supervisor.run()), daemon=True)
    thread.start()
    return thread, result


def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_starts_each_stage_once_the_one_before_is_ready_and_stops_in_reverse(
    tmp_path: Path,
) -> None:
    supervisor = Supervisor(
        [standin(tmp_path, "kine", delay=0.3), standin(tmp_path, "api", delay=0.3, stage=1),
         standin(tmp_path, "kcm", stage=2)]
    )  # fmt: skip
    thread, result = run_in_thread(supervisor)
    wait_for(lambda: (tmp_path / "kcm.ready").exists())
    supervisor.request_stop()
    thread.join(30)
    assert result == [0]
    assert events(tmp_path) == [
        "start kine", "start api", "start kcm", "stop kcm", "stop api", "stop kine"
    ]  # fmt: skip


def test_a_process_that_dies_is_restarted_with_backoff(tmp_path: Path) -> None:
    supervisor = Supervisor(
        [standin(tmp_path, "kine"), standin(tmp_path, "flaky", life=0.2, stage=1)]
    )
    thread, result = run_in_thread(supervisor)
    wait_for(lambda: events(tmp_path).count("start flaky") >= 3)
    supervisor.request_stop()
    thread.join(30)
    assert result == [0]  # a death or two is not the end
    starts = events(tmp_path)
    assert starts[0] == "start kine" and "stop kine" in starts  # the others stayed up


def test_one_that_cannot_be_kept_up_stops_everything_and_exits_1(tmp_path: Path) -> None:
    supervisor = Supervisor(
        [standin(tmp_path, "kine"), standin(tmp_path, "broken", life=0.5, code=3, stage=1)],
        max_restarts=2,
        max_backoff=0.1,
    )
    thread, result = run_in_thread(supervisor)
    thread.join(60)
    assert result == [1]
    assert events(tmp_path).count("start broken") == 3  # first start and two restarts
    assert events(tmp_path)[-1] == "stop kine"


def test_exiting_before_ready_is_a_failure_not_a_hang(tmp_path: Path) -> None:
    early = standin(tmp_path, "early", delay=10, life=0, code=1, stage=1)
    early.argv = lambda: [sys.executable, "-c", "import sys; sys.exit(4)"]
    thread, result = run_in_thread(Supervisor([standin(tmp_path, "kine"), early]))
    thread.join(30)
    assert result == [1] and events(tmp_path)[-1] == "stop kine"


def test_a_stop_during_start_up_starts_nothing_more(tmp_path: Path) -> None:
    supervisor = Supervisor(
        [standin(tmp_path, "slow", delay=60), standin(tmp_path, "after", stage=1)]
    )
    thread, result = run_in_thread(supervisor)
    wait_for(lambda: "start slow" in events(tmp_path))
    supervisor.request_stop()
    thread.join(30)
    assert result == [0] and events(tmp_path) == ["start slow", "stop slow"]


def test_a_stage_starts_together_and_stops_last_started_first(tmp_path: Path) -> None:
    supervisor = Supervisor(
        [standin(tmp_path, "api"), standin(tmp_path, "kcm", delay=0.5, stage=1),
         standin(tmp_path, "kubelet", stage=1)]
    )  # fmt: skip
    thread, result = run_in_thread(supervisor)
    wait_for(lambda: (tmp_path / "kcm.ready").exists() and (tmp_path / "kubelet.ready").exists())
    supervisor.request_stop()
    thread.join(30)
    seen = events(tmp_path)
    assert result == [0] and seen[0] == "start api"
    assert set(seen[1:3]) == {"start kcm", "start kubelet"}  # neither waited for the other
    assert seen[3:] == ["stop kubelet", "stop kcm", "stop api"]


def test_the_kubelet_is_given_its_api_address_and_a_serving_certificate_for_it(
    tmp_path: Path, monkeypatch: object
) -> None:
    from cryptography import x509

    from flyk.k8s import supervisor
    from flyk.k8s.components import Layout
    from flyk.k8s.pki import ClusterPKI

    pki = ClusterPKI.generate("kubelet-address")
    for bind, expect_ip in (("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "fdaa:0:1::5")):
        layout = Layout(root=tmp_path / bind, api_port=6443, bind_address=bind)
        layout.pki.mkdir(parents=True)
        for name, pem in pki.tls_files().items():
            (layout.pki / name).write_bytes(pem)
        monkeypatch.setenv("FLY_PRIVATE_IP", "fdaa:0:1::5")  # type: ignore[attr-defined]
        processes = supervisor.control_plane(Path("/bin/true"), layout, ["127.0.0.1"])
        (kubelet,) = [p for p in processes if p.name == "kubelet"]
        assert kubelet.env is not None
        env = kubelet.env
        assert env["FLYK_KUBELET_NODE_IP"] == expect_ip
        port = int(env["FLYK_KUBELET_PORT"])
        # loopback (the local backend): a free port of its own; on Fly, the kubelet's port
        assert port != 10250 if bind == "127.0.0.1" else port == 10250
        cert = x509.load_pem_x509_certificate(Path(env["FLYK_KUBELET_TLS_CERT_FILE"]).read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        addresses = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
        assert expect_ip in addresses and "flyk" in sans.get_values_for_type(x509.DNSName)
        # signed by the server CA, which the API server verifies kubelets with
        server_ca = x509.load_pem_x509_certificate(layout.ca("server-ca.crt").read_bytes())
        cert.verify_directly_issued_by(server_ca)
        assert env["FLYK_KUBELET_CLIENT_CA_FILE"] == str(layout.ca("client-ca.crt"))
        assert oct(Path(env["FLYK_KUBELET_TLS_PRIVATE_KEY_FILE"]).stat().st_mode & 0o777) == "0o600"
