"""The whole flow on the embedded default with the real control plane: `flyk ext k8s create`
runs the flyk-controlplane binary (upstream Kubernetes and kine) and the virtual kubelet as
local processes, and the real kubectl drives the cluster. Pod machines stay simulated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.procs import alive


@dataclass
class Cluster:
    env: dict[str, str]
    tmp: Path

    def flyk(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        ran = subprocess.run(
            [sys.executable, "-m", "flyk", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert ran.returncode == 0, f"flyk {' '.join(args)}: {ran.stderr}"
        return ran

    def json(self, *args: str) -> Any:
        return json.loads(self.flyk(*args, "--json").stdout)

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        ran = subprocess.run(
            ["kubectl", *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if check:
            assert ran.returncode == 0, f"kubectl {' '.join(args)}: {ran.stderr}"
        return ran

    def machines(self, app: str) -> list[dict[str, Any]]:
        return list(self.json("machine", "list", "-a", app))

    def processes(self) -> list[dict[str, Any]]:
        return list(self.json("local", "status")["processes"])


def eventually(check: Callable[[], object], timeout: float = 90.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.5)


@pytest.fixture
def cluster(controlplane_binary: Path, tmp_path: Path, isolated_env: Path) -> Iterator[Cluster]:
    env = dict(os.environ)
    env.update(
        FLYK_CONTROLPLANE_BIN=str(controlplane_binary),
        FLYK_LOCAL_DB=str(tmp_path / "local.db"),
        KUBECONFIG=str(tmp_path / "kubeconfig"),
    )
    made = Cluster(env, tmp_path)
    try:
        yield made
    finally:
        pids = [p["pid"] for p in made.processes() if p["pid"]]
        made.flyk("local", "reset", "--yes")
        assert not [pid for pid in pids if alive(pid)], "processes left running"


def pods_running(cluster: Cluster, selector: str) -> list[dict[str, Any]]:
    listed = json.loads(cluster.kubectl("get", "pods", "-l", selector, "-o", "json").stdout)
    return [p for p in listed["items"] if p["status"].get("phase") == "Running"]


def node_ready(cluster: Cluster) -> bool:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for node in nodes
        for c in node["status"].get("conditions", [])
    )


def namespace_app(cluster: Cluster, namespace: str) -> str:
    apps = cluster.json("apps", "list")
    (app,) = [a["name"] for a in apps if f"-{namespace}-" in a["name"]]
    return str(app)


def test_create_runs_a_real_cluster_that_kubectl_drives_end_to_end(cluster: Cluster) -> None:
    created = cluster.flyk("ext", "k8s", "create", "demo")
    assert "is ready" in created.stderr and "API server answering" in created.stderr
    eventually(lambda: node_ready(cluster), what="the flyk node Ready")
    status = cluster.json("ext", "k8s", "status", "demo")
    assert status["api_server"]["reachable"] is True
    assert status["api_server"]["version"] == "v1.37.2"

    cluster.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=3")
    eventually(lambda: len(pods_running(cluster, "app=web")) == 3, what="3 pods Running")
    app = namespace_app(cluster, "default")
    eventually(lambda: len(cluster.machines(app)) == 3, what="3 machines")

    lost = cluster.machines(app)[0]["id"]
    cluster.flyk("machine", "destroy", lost, "-a", app, "--force", "--yes")

    def replaced() -> bool:
        ids = {m["id"] for m in cluster.machines(app)}
        return len(ids) == 3 and lost not in ids and len(pods_running(cluster, "app=web")) == 3

    eventually(replaced, what="a new machine for the lost one")

    cluster.kubectl("scale", "deployment", "web", "--replicas=0")
    eventually(lambda: cluster.machines(app) == [], what="no machines after scaling to 0")

    (process,) = cluster.processes()
    assert process["running"]
    cluster.flyk("ext", "k8s", "delete", "demo", "--yes")
    assert not alive(process["pid"])
    assert cluster.processes() == [] and cluster.json("apps", "list") == []
    assert list((cluster.tmp / "local.machines").rglob("*")) in (
        [],
        [cluster.tmp / "local.machines" / "volumes"],
    )
    view = cluster.kubectl("config", "view", "-o", "json")
    assert json.loads(view.stdout).get("contexts") in (None, [])


def test_stopping_and_starting_the_control_plane_keeps_the_clusters_objects(
    cluster: Cluster,
) -> None:
    cluster.flyk("ext", "k8s", "create", "keep")
    cluster.kubectl("create", "configmap", "kept", "--from-literal=answer=42")
    (process,) = cluster.processes()
    app, machine = process["app"], process["machine_id"]

    cluster.flyk("machine", "stop", machine, "-a", app)
    assert not alive(process["pid"])
    assert cluster.kubectl("get", "configmap", "kept", check=False).returncode != 0
    cluster.flyk("machine", "start", machine, "-a", app)
    got = eventually(
        lambda: cluster.kubectl("get", "configmap", "kept", "-o", "json", check=False).stdout,
        what="the API server back",
    )
    assert json.loads(got)["data"] == {"answer": "42"}  # kine's SQLite is on the volume


def test_a_killed_control_plane_is_an_exit_and_comes_back(cluster: Cluster) -> None:
    cluster.flyk("ext", "k8s", "create", "crash")
    (process,) = cluster.processes()
    os.killpg(process["pid"], 9)
    eventually(lambda: not alive(process["pid"]), what="the kill")
    (again,) = cluster.processes()  # this command's backend notices, and restarts it
    assert again["running"] and again["pid"] != process["pid"]
    events = cluster.json("machine", "status", process["machine_id"], "-a", process["app"])
    exits = [e for e in events.get("events", []) if e.get("type") == "exit"]
    assert exits, "the crash is recorded as the machine's exit"
    eventually(lambda: node_ready(cluster), what="the node Ready again")


# -- Kubernetes controllers through flyk ---------------------------------------------------------


def apply(cluster: Cluster, manifest: str) -> None:
    path = cluster.tmp / "manifest.yaml"
    path.write_text(manifest)
    cluster.kubectl("apply", "-f", str(path))


def test_a_rolling_update_replaces_the_machines_and_rollout_status_completes(
    cluster: Cluster,
) -> None:
    cluster.flyk("ext", "k8s", "create", "roll")
    cluster.kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=3")
    eventually(lambda: len(pods_running(cluster, "app=web")) == 3, what="3 pods Running")
    app = namespace_app(cluster, "default")
    before = {m["id"] for m in cluster.machines(app)}
    cluster.kubectl("set", "image", "deployment/web", "nginx=nginx:1.26")
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=120s")

    def replaced() -> bool:
        machines = cluster.machines(app)
        return len(machines) == 3 and all(m["image"] == "nginx:1.26" for m in machines)

    eventually(replaced, timeout=120, what="three machines of the new image, none of the old")
    assert not before & {m["id"] for m in cluster.machines(app)}


def test_a_job_of_three_completions_runs_three_machines_once_each(cluster: Cluster) -> None:
    cluster.flyk("ext", "k8s", "create", "jobs")
    apply(
        cluster,
        """
apiVersion: batch/v1
kind: Job
metadata: {name: three}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox
        env: [{name: FLYK_SIM_RUN_SECONDS, value: "1"}]  # the simulated workload ends, exit 0
""",
    )
    cluster.kubectl("wait", "--for=condition=complete", "job/three", "--timeout=120s")
    listed = json.loads(cluster.kubectl("get", "pods", "-l", "job-name=three", "-o", "json").stdout)
    assert sorted(p["status"]["phase"] for p in listed["items"]) == ["Succeeded"] * 3
    app = namespace_app(cluster, "default")
    machines = cluster.json("machine", "list", "-a", app, "--state", "stopped")
    assert len(machines) == 3  # one machine per completion, each ran once


def test_a_statefulset_gets_its_pods_in_order_with_stable_names(cluster: Cluster) -> None:
    cluster.flyk("ext", "k8s", "create", "sts")
    apply(
        cluster,
        """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: redis}]
""",
    )
    cluster.kubectl("rollout", "status", "statefulset/db", "--timeout=120s")
    listed = json.loads(cluster.kubectl("get", "pods", "-l", "app=db", "-o", "json").stdout)
    pods = sorted(listed["items"], key=lambda p: p["metadata"]["creationTimestamp"])
    assert [p["metadata"]["name"] for p in pods] == ["db-0", "db-1", "db-2"]
    app = namespace_app(cluster, "default")
    assert len(cluster.machines(app)) == 3


# -- kubectl logs and exec through the kubelet's API ---------------------------------------------


def test_kubectl_logs_and_exec_reach_the_pods_machine(cluster: Cluster) -> None:
    """The supervisor signs the kubelet's serving certificate and gives it a loopback port; the
    API server dials it with its kubelet-client certificate (issue 13's whole path)."""
    cluster.flyk("ext", "k8s", "create", "talk")
    apply(
        cluster,
        """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx
        env: [{name: FLYK_SIM_LOG, value: "listening on :80"}]
""",
    )
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=120s")
    logs = eventually(
        lambda: cluster.kubectl("logs", "deploy/web", check=False).stdout, what="the logs"
    )
    assert logs == "listening on :80\n"
    app = namespace_app(cluster, "default")
    (machine,) = cluster.machines(app)
    hostname = cluster.kubectl("exec", "deploy/web", "--", "hostname")
    assert hostname.stdout == f"{machine['id']}\n"
    failed = cluster.kubectl("exec", "deploy/web", "--", "false", check=False)
    assert failed.returncode == 1
