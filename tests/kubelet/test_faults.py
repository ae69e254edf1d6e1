"""Faults in the middle of a rolling update (`kubectl set image` on a Deployment of three), on
the real control plane with the local backend: the API server killed and started again; the
kubelet killed (SIGKILL, a process of its own) and started again; the Machines API answering
429 and 5xx and dropping connections after it committed; a machine destroyed behind the
kubelet's back. After each, the rollout completes, every pod runs on one machine of the new
image, no pod ever had a second machine (but the one replacing a lost machine), and once the
Deployment is deleted no machine is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flyk.local import LocalBackend

from .conftest import eventually
from .harness import CLUSTER, ORG, Harness
from .realkube import Kube
from .test_controllers import apply, deployment, machines_match_pods, running

JSON = dict[str, Any]
OLD, NEW = "nginx:1.27", "nginx:1.28"


@pytest.fixture
def harness(kube: Kube, kubeconfig: str, backend: LocalBackend) -> Iterator[Harness]:
    h = Harness(kube, kubeconfig, backend)
    yield h
    h.close()


def deploy(harness: Harness) -> None:
    """Three replicas of the old image, Running; then the rollout to the new one begins."""
    apply(harness, "default", deployment(harness, "web", 3))
    eventually(lambda: len(running(harness, "default", "app=web")) == 3, timeout=90, what="web")
    harness.kube.kubectl("set", "image", "deployment/web", f"app={NEW}", "-n", harness.ns())


def mid_rollout(harness: Harness) -> None:
    """Wait until the rollout is under way: a pod of the new image exists."""

    def new_pod() -> bool:
        pods = harness.kube.list("pods", harness.ns(), labelSelector="app=web")
        return any(p["spec"]["containers"][0]["image"] == NEW for p in pods)

    eventually(new_pod, timeout=60, what="the rollout under way")


def converged(harness: Harness, *, lost: int = 0) -> None:
    """The rollout completes; each pod has one machine of the new image; over the whole run
    no pod had more machines than it should (one, plus one for each machine lost behind the
    kubelet's back); deleting the Deployment leaves no machine."""
    harness.kube.kubectl(
        "rollout", "status", "deployment/web", "-n", harness.ns(), "--timeout=180s"
    )
    eventually(
        lambda: (
            len(running(harness, "default", "app=web")) == 3
            and len(harness.machines()) == 3
            and all(m["config"]["image"] == NEW for m in harness.machines())
        ),
        timeout=90,
        what="three pods Running on three machines of the new image",
    )
    assert len(machines_match_pods(harness, "default")) == 3
    ever = harness.fly.machines.list(harness.app(), include_deleted=True)
    per_pod = Counter(m.config.metadata["flyk_pod_uid"] for m in ever)
    extra = sum(count - 1 for count in per_pod.values())
    assert extra == lost, per_pod
    # Every pod bound to the node had its machine (none skipped, none made for nothing).
    bound = {pod["metadata"]["uid"] for _, pod in harness.kube.history}
    assert set(per_pod) <= bound
    harness.kube.kubectl("delete", "deployment", "web", "-n", harness.ns())
    eventually(lambda: harness.kube.list("pods", harness.ns()) == [], timeout=60, what="no pods")
    eventually(lambda: harness.machines() == [], timeout=60, what="no machine left")


def test_the_api_server_killed_mid_rollout(harness: Harness) -> None:
    harness.start()
    deploy(harness)
    mid_rollout(harness)
    harness.kube.plane.restart_apiserver()
    converged(harness)


def test_the_machines_api_failing_mid_rollout(harness: Harness) -> None:
    """429s, 5xx and connections dropped after the backend committed (creates, stops,
    destroys, lists), all while the rollout creates and destroys machines."""
    harness.start()
    deploy(harness)
    faults = harness.backend.faults
    rules = [
        faults.add("rate_limit", path=r"/machines", times=4, retry_after=0),
        faults.add("server_error", method="POST", path=r"/machines$", times=2, status=503),
        faults.add("drop_after_commit", method="POST", path=r"/machines$", times=2),
        faults.add("drop_after_commit", method="POST", path=r"/stop$", times=1),
        faults.add("drop_after_commit", method="DELETE", path=r"/machines/[^/]+$", times=1),
        faults.add("server_error", method="GET", path=r"/machines$", times=2, status=502),
    ]
    converged(harness)
    assert [rule.fired for rule in rules] == [rule.times for rule in rules]  # all injected


def test_a_machine_destroyed_behind_the_kubelets_back_mid_rollout(harness: Harness) -> None:
    """The machine of a pod of the new image (one the rollout keeps) is destroyed by someone
    else while old pods are still being replaced: that pod gets one new machine, no other."""
    harness.start()
    deploy(harness)

    def new_running_machine() -> JSON | None:
        for pod in running(harness, "default", "app=web"):
            if pod["spec"]["containers"][0]["image"] == NEW:
                machine = harness.machine_of(pod["metadata"]["name"])
                if machine is not None and machine["state"] == "started":
                    return machine
        return None

    victim = eventually(new_running_machine, timeout=60, what="a running pod of the new image")
    harness.fly.machines.destroy(harness.app(), victim["id"], force=True)
    converged(harness, lost=1)


def test_the_kubelet_killed_mid_rollout(harness: Harness, tmp_path: Path) -> None:
    """The kubelet as production runs it (`flyk ext k8s kubelet`, its own process, the
    Machines API over HTTP), killed with SIGKILL while the rollout makes machines, then
    started again: it lists pods and machines first and makes no second machine."""
    served = harness.backend.serve()
    log = tmp_path / "kubelet.log"
    command = [
        sys.executable,
        "-m",
        "flyk",
        "ext",
        "k8s",
        "kubelet",
        f"--cluster={CLUSTER}",
        f"--org={ORG}",
        "--region=iad",
        f"--node-name={harness.node}",
        "--node-ip=fdaa::2",
        f"--kubeconfig={harness.config.kubeconfig}",
        f"--api-url={served.url}",
        "--api-token=local",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)

    process = start()
    try:
        deploy(harness)
        mid_rollout(harness)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        process = start()
        converged(harness)
    finally:
        process.terminate()
        try:
            assert process.wait(30) == 0, log.read_text()[-3000:]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            served.close()
