"""Kubernetes' own controllers driving the kubelet, on the real control plane (its
controller-manager and scheduler) with the local backend, as an administrator drives them: the
real kubectl. A CronJob's runs come and go; a namespace deleted takes its pods and machines and
nothing else; `kubectl drain` evicts through the Eviction API and respects a
PodDisruptionBudget, and `kubectl uncordon` brings the pods back."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flyk.local import LocalBackend

from .conftest import eventually
from .harness import Harness
from .realkube import Kube

JSON = dict[str, Any]


@pytest.fixture
def harness(kube: Kube, kubeconfig: str, backend: LocalBackend) -> Iterator[Harness]:
    h = Harness(kube, kubeconfig, backend)
    yield h
    h.close()


def apply(harness: Harness, namespace: str, manifest: JSON) -> None:
    harness.kube.kubectl(
        "apply", "-n", harness.ns(namespace), "-f", "-", stdin=json.dumps(manifest)
    )


def pod_template(harness: Harness, labels: JSON, **spec: Any) -> JSON:
    """A pod template the scheduler binds to this test's node."""
    container = {"name": "app", "image": "nginx:1.27", **spec.pop("container", {})}
    return {
        "metadata": {"labels": labels},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": harness.node},
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
            **spec,
        },
    }


def deployment(harness: Harness, name: str, replicas: int) -> JSON:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(harness, {"app": name}),
        },
    }


def running(harness: Harness, namespace: str, selector: str) -> list[JSON]:
    pods = harness.kube.list("pods", harness.ns(namespace), labelSelector=selector)
    return [
        p
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def machines_match_pods(harness: Harness, namespace: str) -> dict[str, str]:
    """pod uid -> machine id; fails on a machine without a pod or two for one pod."""
    pods = {p["metadata"]["uid"] for p in harness.kube.list("pods", harness.ns(namespace))}
    seen: dict[str, str] = {}
    for machine in harness.machines(namespace):
        uid = machine["config"]["metadata"]["flyk_pod_uid"]
        assert uid not in seen, f"two machines for pod {uid}"
        assert uid in pods, f"machine {machine['id']} has no pod"
        seen[uid] = machine["id"]
    return seen


def test_a_cronjobs_runs_come_and_go(harness: Harness) -> None:
    """A run made by hand (`kubectl create job --from=cronjob/…`) and one the CronJob
    controller makes on its schedule each run a machine once; with a history of one, the
    older run is deleted by the controller, and its pod's machine with it."""
    harness.start()
    namespace = harness.ns("cron")
    env = [{"name": "FLYK_SIM_RUN_SECONDS", "value": "1"}]  # the workload ends, exit 0
    template = pod_template(harness, {"app": "tick"}, restartPolicy="Never", container={"env": env})
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "tick"},
        "spec": {
            "schedule": "* * * * *",
            "successfulJobsHistoryLimit": 1,
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {"spec": {"template": template}},
        },
    }
    apply(harness, "cron", cronjob)
    harness.kube.kubectl("create", "job", "--from=cronjob/tick", "manual", "-n", namespace)
    harness.kube.kubectl(
        "wait", "--for=condition=complete", "job/manual", "-n", namespace, "--timeout=120s"
    )
    (manual_pod,) = harness.kube.list("pods", namespace, labelSelector="job-name=manual")
    assert manual_pod["status"]["phase"] == "Succeeded"
    manual_machine = harness.machine_of(manual_pod["metadata"]["name"], "cron")
    assert manual_machine is not None and manual_machine["state"] == "stopped"

    def scheduled_done() -> list[JSON]:
        jobs = json.loads(harness.kube.kubectl("get", "jobs", "-n", namespace, "-o", "json").stdout)
        return [
            j
            for j in jobs["items"]
            if j["metadata"]["name"] != "manual" and (j["status"].get("succeeded") or 0) >= 1
        ]

    # The controller's next run is at the next minute: at most a minute and its run away.
    (scheduled, *_) = eventually(scheduled_done, timeout=150, what="a scheduled run complete")
    assert scheduled["metadata"]["ownerReferences"][0]["name"] == "tick"

    def manual_gone() -> bool:
        jobs = harness.kube.kubectl("get", "job", "manual", "-n", namespace, check=False)
        pods = harness.kube.list("pods", namespace, labelSelector="job-name=manual")
        return (
            jobs.returncode != 0
            and not pods
            and harness.machine_of(manual_pod["metadata"]["name"], "cron") is None
        )

    eventually(manual_gone, timeout=60, what="the older run, its pod and its machine gone")
    # Each remaining run's pod has its one machine, which ran once and stopped.
    remaining = machines_match_pods(harness, "cron")
    assert remaining and all(m["state"] == "stopped" for m in harness.machines("cron"))
    harness.kube.kubectl("delete", "cronjob", "tick", "-n", namespace)
    eventually(lambda: harness.machines("cron") == [], timeout=60, what="every run's machine gone")


def test_deleting_a_namespace_of_deployments_removes_its_machines_and_nothing_else(
    harness: Harness,
) -> None:
    """`kubectl delete namespace`: the namespace controller deletes the Deployments, their
    pods go gracefully, the kubelet destroys their machines; the other namespace's pods keep
    their machines, untouched, and its objects stay. The doomed namespace's app is kept, empty
    (docs/kubernetes.md "Namespaces are apps")."""
    harness.start()
    apply(harness, "doomed", deployment(harness, "web", 2))
    apply(harness, "kept", deployment(harness, "api", 2))
    harness.kube.kubectl("create", "configmap", "settings", "-n", harness.ns("kept"))
    eventually(lambda: len(running(harness, "doomed", "app=web")) == 2, timeout=60, what="web")
    eventually(lambda: len(running(harness, "kept", "app=api")) == 2, timeout=60, what="api")
    kept_before = machines_match_pods(harness, "kept")
    doomed_app = harness.app("doomed")

    harness.kube.kubectl("delete", "namespace", harness.ns("doomed"), "--timeout=120s")
    harness.kube.forget("doomed")
    assert harness.kube.get("namespaces", "doomed") is None
    assert harness.fly.machines.list(doomed_app) == []
    assert harness.fly.apps.get(doomed_app).name == doomed_app  # kept, empty
    # Nothing else moved: the same machines, never restarted, and the ConfigMap.
    eventually(lambda: len(running(harness, "kept", "app=api")) == 2, what="api still running")
    assert machines_match_pods(harness, "kept") == kept_before
    assert all(m["state"] == "started" for m in harness.machines("kept"))
    assert harness.kube.get("configmaps", "settings", "kept") is not None


class Drain:
    """`kubectl drain` running in the background; its output in a file, read as it comes."""

    def __init__(self, harness: Harness, log: Path, *args: str) -> None:
        self.log = log
        self.out = log.open("w")
        command = ["kubectl", "--kubeconfig", harness.kube.admin_kubeconfig(), "drain", *args]
        self.process = subprocess.Popen(command, stdout=self.out, stderr=subprocess.STDOUT)

    def said(self) -> str:
        return self.log.read_text()

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self.out.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.out.close()


def test_drain_evicts_through_the_eviction_api_and_respects_the_disruption_budget(
    harness: Harness, tmp_path: Path
) -> None:
    """Three replicas under a PodDisruptionBudget of minAvailable 2: `kubectl drain` cordons
    the node and evicts one pod (its machine destroyed), then is refused by the Eviction API
    (429: the budget) and retries, while the replacement stays Pending on the cordoned node.
    Once the budget allows it, the drain completes with no pod and no machine left. The
    cordon survives the kubelet's status writes and a kubelet restart; `kubectl uncordon`
    brings the three pods back, one machine each."""
    harness.start()
    namespace = harness.ns("drained")
    apply(harness, "drained", deployment(harness, "web", 3))
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    }
    apply(harness, "drained", budget)
    eventually(lambda: len(running(harness, "drained", "app=web")) == 3, timeout=60, what="web")

    def budget_allows(count: int) -> bool:
        got = harness.kube.kubectl("get", "pdb", "web", "-n", namespace, "-o", "json")
        return json.loads(got.stdout).get("status", {}).get("disruptionsAllowed") == count

    eventually(lambda: budget_allows(1), timeout=60, what="the budget allowing one disruption")

    drain = Drain(harness, tmp_path / "drain.log", harness.node, "--timeout=180s")
    try:
        eventually(
            lambda: "disruption budget" in drain.said(),
            timeout=90,
            what="the drain refused by the budget",
        )
        assert drain.process.poll() is None, drain.said()  # still trying
        assert "evicting pod" in drain.said()
        eventually(lambda: len(harness.machines("drained")) == 2, what="one machine destroyed")
        assert len(running(harness, "drained", "app=web")) == 2
        pending = [
            p
            for p in harness.kube.list("pods", namespace, labelSelector="app=web")
            if p["status"].get("phase") == "Pending"
        ]
        assert len(pending) == 1 and not pending[0]["spec"].get("nodeName")  # cordoned
        # The cordon is the administrator's: the kubelet's writes and a restart keep it.
        harness.stop()
        harness.start()
        time.sleep(1)  # several node status writes (every 0.2 s here)
        node = harness.kube.get("nodes", harness.node)
        assert node is not None and node["spec"].get("unschedulable") is True
        assert len(running(harness, "drained", "app=web")) == 2
        assert drain.process.poll() is None, drain.said()

        allow = '{"spec": {"minAvailable": 0}}'
        harness.kube.kubectl("patch", "pdb", "web", "-n", namespace, "--type=merge", "-p", allow)
        assert drain.wait(120) == 0, drain.said()
    finally:
        drain.close()
    assert "drained" in drain.said()
    on_node = harness.kube.list("pods", namespace, fieldSelector=f"spec.nodeName={harness.node}")
    assert on_node == []
    assert harness.machines("drained") == []

    harness.kube.kubectl("uncordon", harness.node)
    eventually(lambda: len(running(harness, "drained", "app=web")) == 3, timeout=60, what="back")
    assert len(machines_match_pods(harness, "drained")) == 3
