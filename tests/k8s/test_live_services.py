"""Services on Fly.io: what only the real platform can answer (docs/kubernetes.md, "Services",
open questions). FLYK_TEST_LIVE=1, a token (FLY_API_TOKEN) and FLYK_TEST_LIVE_ORG (billed).

It creates a cluster, runs two Deployments serving different text on port 8080, exposes both
on port 80 of one namespace, and then a Job whose pod fetches each Service by its Flycast
cluster IP (from the Service link variables) and succeeds only if each answers its own text:

1. the org's Flycast addresses sit in the /64 flyk derives from the machine's 6PN address
   (else the API server refuses the Services at `kubectl expose`);
2. an address with `service_name` routes only to the machines that joined it (two Services on
   port 80 route apart), and Flycast carries the traffic pod to pod;
3. whether the machine update that adds `services` restarts a running machine (reported).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

_LIVE = os.environ.get("FLYK_TEST_LIVE") == "1"
_TOKEN = os.environ.get("FLY_API_TOKEN") or os.environ.get("FLY_ACCESS_TOKEN")
_ORG = os.environ.get("FLYK_TEST_LIVE_ORG", "personal")
_REGION = os.environ.get("FLYK_TEST_LIVE_REGION", "iad")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not (_LIVE and _TOKEN), reason="needs FLYK_TEST_LIVE=1 and a token"),
]

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: NAME}
spec:
  replicas: 2
  selector: {matchLabels: {app: NAME}}
  template:
    metadata: {labels: {app: NAME}}
    spec:
      containers:
      - name: echo
        image: hashicorp/http-echo:1.0
        args: ["-listen=:8080", "-text=NAME"]
"""

PROBE = """
apiVersion: batch/v1
kind: Job
metadata: {name: probe}
spec:
  backoffLimit: 20
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: probe
        image: busybox:1.36
        command: ["sh", "-c"]
        args:
        - >-
          test "$(wget -qO- http://[$WEB_SERVICE_HOST]:80)" = web &&
          test "$(wget -qO- http://[$API_SERVICE_HOST]:80)" = api
"""


def test_two_services_on_port_80_route_apart_over_flycast(tmp_path: Path) -> None:
    env = {**os.environ, "FLY_API_TOKEN": _TOKEN or "", "KUBECONFIG": str(tmp_path / "kube")}
    name = f"live-svc-{uuid.uuid4().hex[:6]}"

    def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, env=env, capture_output=True, text=True, input=stdin)

    def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run("kubectl", *args, stdin=stdin)

    def wait(check: Callable[[], bool], what: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, what
            time.sleep(10)

    flyk = (sys.executable, "-m", "flyk")
    created = run(
        *flyk, "ext", "k8s", "create", name, "-o", _ORG, "-r", _REGION, "--timeout", "15m"
    )
    try:
        assert created.returncode == 0, created.stderr
        wait(lambda: " Ready" in kubectl("get", "nodes").stdout, "the node never became Ready")
        for app in ("web", "api"):
            assert kubectl("apply", "-f", "-", stdin=MANIFEST.replace("NAME", app)).returncode == 0
            exposed = kubectl("expose", "deployment", app, "--port", "80", "--target-port", "8080")
            assert exposed.returncode == 0, exposed.stderr  # open question 1
        services = json.loads(kubectl("get", "svc", "-o", "json").stdout)["items"]
        addresses = {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in services}
        assert addresses["web"].startswith("fdaa:") and addresses["api"].startswith("fdaa:")

        def running() -> bool:
            pods = json.loads(kubectl("get", "pods", "-o", "json").stdout)["items"]
            return sum(p["status"].get("phase") == "Running" for p in pods) == 4

        wait(running, "the four echo pods never ran")
        assert kubectl("apply", "-f", "-", stdin=PROBE).returncode == 0  # open question 2

        def probed() -> bool:
            job = json.loads(kubectl("get", "job", "probe", "-o", "json").stdout)
            return bool(job.get("status", {}).get("succeeded"))

        wait(probed, "the probe never reached each Service's own pods")
        pods = json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
        restarts = [p["status"]["containerStatuses"][0]["restartCount"] for p in pods]
        print(f"restarts of the web pods after joining a Service: {restarts}")  # question 3
    finally:
        deleted = run(*flyk, "ext", "k8s", "delete", name, "-o", _ORG, "--yes")
    assert deleted.returncode == 0, deleted.stderr
