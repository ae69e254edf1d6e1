# ruff: noqa: E501  (the tables read best one case per line)
"""Pod → Machine translation and Machine → PodStatus mapping: pure, table-driven."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from flyk.kubelet import status as st
from flyk.kubelet import translate as tr
from flyk.kubelet.config import namespace_app_name

NODE = tr.NodeFacts(cluster="demo", node_name="flyk", node_ip="fdaa::2", region="iad")
UID = "0b7e3c1a-1111-2222-3333-444455556666"


def pod(*containers: dict[str, Any], annotations: dict[str, str] | None = None, **spec: Any):
    meta: dict[str, Any] = {"name": "web", "namespace": "shop", "uid": UID}
    if annotations:
        meta["annotations"] = annotations
    body_spec = {"containers": list(containers) or [{"name": "app", "image": "nginx"}], **spec}
    return {"metadata": meta, "spec": body_spec}


def app(**fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": "nginx:1.27", **fields}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def resources(limits: dict[str, str] | None = None, requests: dict[str, str] | None = None):
    out: dict[str, Any] = {}
    if limits:
        out["limits"] = limits
    if requests:
        out["requests"] = requests
    return {"resources": out}


# --------------------------------------------------------------------------- sizes

SIZES = [
    # (containers' resources, annotations, expected label)
    ([{}], {}, "shared-cpu-1x:256MB"),
    ([resources({"memory": "100Mi"})], {}, "shared-cpu-1x:256MB"),
    ([resources({"memory": "257Mi"})], {}, "shared-cpu-1x:512MB"),
    ([resources(requests={"memory": "1Gi", "cpu": "500m"})], {}, "shared-cpu-1x:1024MB"),
    ([resources({"memory": "512Mi"}, {"memory": "4Gi"})], {}, "shared-cpu-1x:512MB"),  # limits win
    ([resources({"cpu": "3"})], {}, "shared-cpu-4x:1024MB"),  # 3 → 4 CPUs; 256 MB per CPU
    ([resources({"memory": "3Gi"})], {}, "shared-cpu-2x:3072MB"),  # ≤ 2048 MB per shared CPU
    ([resources({"cpu": "1", "memory": "1G"})], {}, "shared-cpu-1x:1024MB"),  # 953.7 MiB → 1024
    ([resources({"cpu": "1"}), resources({"cpu": "1"})], {}, "shared-cpu-2x:512MB"),  # summed
    ([resources({"memory": "20Gi"})], {}, "performance-4x:20480MB"),  # past 8 shared CPUs
    ([resources({"cpu": "12"})], {}, "performance-12x:24576MB"),
    ([{}], {"fly.io/size": "performance-2x"}, "performance-2x:4096MB"),
    ([resources({"memory": "2Gi"})], {"fly.io/size": "shared-cpu-2x"}, "shared-cpu-2x:2048MB"),
]


@pytest.mark.parametrize(("extra", "annotations", "label"), SIZES)
def test_guest_size_rule(extra: list[dict[str, Any]], annotations: dict[str, str], label: str):
    containers = [app(name=f"c{i}", **fields) for i, fields in enumerate(extra)]
    assert tr.choose_guest({"containers": containers}, annotations).label == label


def test_init_containers_count_when_larger_than_the_app_containers():
    spec = {
        "containers": [app(**resources({"memory": "256Mi"}))],
        "initContainers": [app(name="migrate", **resources({"memory": "1Gi"}))],
    }
    assert tr.choose_guest(spec, {}).label == "shared-cpu-1x:1024MB"


@pytest.mark.parametrize(
    ("spec", "annotations", "reason"),
    [
        ({"containers": [app(**resources({"cpu": "17"}))]}, {}, "OutOfResources"),
        ({"containers": [app()]}, {"fly.io/size": "huge"}, "InvalidSize"),
        ({"containers": [app(**resources({"memory": "3Gi"}))]}, {"fly.io/size": "shared-cpu-1x"}, "InvalidSize"),
        ({"containers": [app(**resources({"memory": "12XB"}))]}, {}, "CreateContainerConfigError"),
    ],
)  # fmt: skip
def test_impossible_sizes_are_errors(spec: dict[str, Any], annotations: dict[str, str], reason):
    with pytest.raises(tr.TranslationError) as caught:
        tr.choose_guest(spec, annotations)
    assert caught.value.reason == reason


# --------------------------------------------------------------------------- the config


def test_single_container_maps_image_command_args_env_restart_grace_metadata():
    plan = tr.build_plan(
        pod(
            app(command=["/bin/server"], args=["--port", "$(PORT)"], env=[{"name": "PORT", "value": "8080"}]),
            restartPolicy="OnFailure",
            terminationGracePeriodSeconds=45,
        ),
        tr.Sources(),
        NODE,
    )  # fmt: skip
    config = plan.config
    assert config["image"] == "nginx:1.27"
    assert config["init"] == {"entrypoint": ["/bin/server"], "cmd": ["--port", "8080"]}
    assert config["env"] == {"PORT": "8080"}
    assert config["restart"] == {"policy": "on-failure"}
    assert config["stop_config"] == {"signal": "SIGTERM", "timeout": "45s"}
    assert config["guest"] == {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}
    assert config["metadata"] == {
        "flyk_cluster": "demo",
        "flyk_namespace": "shop",
        "flyk_pod": "web",
        "flyk_pod_uid": UID,
        "flyk_spec_hash": plan.spec_hash,
    }
    assert plan.region == "iad"
    assert plan.name == "web-0b7e3c1a"
    assert plan.warnings == ()


@pytest.mark.parametrize(
    ("policy", "expected"), [("Always", "always"), ("OnFailure", "on-failure"), ("Never", "no")]
)
def test_restart_policies(policy: str, expected: str):
    plan = tr.build_plan(pod(app(), restartPolicy=policy), tr.Sources(), NODE)
    assert plan.config["restart"]["policy"] == expected


@pytest.mark.parametrize(
    ("annotations", "region"),
    [({}, "iad"), ({"fly.io/region": "lhr"}, "lhr"), ({"fly.io/region": "lhr, ams"}, "lhr,ams")],
)
def test_region_is_the_clusters_or_the_annotation(annotations: dict[str, str], region: str):
    assert tr.build_plan(pod(app(), annotations=annotations), tr.Sources(), NODE).region == region


def test_env_resolves_secrets_config_maps_field_refs_and_env_from():
    sources = tr.Sources(
        secrets={"db": {"data": {"password": b64("s3cret"), "user": b64("admin")}}},
        config_maps={"settings": {"data": {"mode": "prod", "level": "debug"}}},
    )
    container = app(
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        env=[
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "URL", "value": "http://$(POD_NAME):80/$$(NOT)"},
            {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}}},
        ],
    )  # fmt: skip
    config = tr.build_plan(pod(container), sources, NODE).config
    assert config["env"] == {
        "CFG_level": "debug",
        "CFG_mode": "prod",
        "PASSWORD": "s3cret",
        "MODE": "prod",
        "POD_NAME": "web",
        "NS": "shop",
        "NODE": "flyk",
        "HOST_IP": "fdaa::2",
        "URL": "http://web:80/$(NOT)",
    }
    # the pod's IP is known only to the machine: the Machines API fills it in
    assert config["processes"] == [{"env_from": [{"env_var": "POD_IP", "field_ref": "private_ip"}]}]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k"}}}], "Secret 'missing' not found"),
        ([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": "nokey"}}}], "key 'nokey' of Secret 'db' not found"),
        ([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}], "ConfigMap 'cm' not found"),
    ],
)  # fmt: skip
def test_missing_references_are_errors(env: list[dict[str, Any]], message: str):
    sources = tr.Sources(secrets={"db": {"data": {"password": b64("x")}}})
    with pytest.raises(tr.TranslationError, match=message) as caught:
        tr.build_plan(pod(app(env=env)), sources, NODE)
    assert caught.value.reason == "CreateContainerConfigError"


def test_config_map_and_secret_volumes_become_files():
    sources = tr.Sources(
        secrets={"tls": {"data": {"tls.crt": b64("CERT"), "tls.key": b64("KEY")}}},
        config_maps={"web": {"data": {"nginx.conf": "server {}", "extra": "x"}}},
    )
    container = app(
        volumeMounts=[
            {"name": "conf", "mountPath": "/etc/nginx/conf.d/"},
            {"name": "certs", "mountPath": "/etc/tls", "readOnly": True},
            {"name": "conf", "mountPath": "/etc/one.conf", "subPath": "nginx.conf"},
        ]
    )
    volumes = [
        {"name": "conf", "configMap": {"name": "web"}},
        {"name": "certs", "secret": {"secretName": "tls", "defaultMode": 0o400, "items": [{"key": "tls.key", "path": "private/key.pem"}]}},
    ]  # fmt: skip
    files = tr.build_plan(pod(container, volumes=volumes), sources, NODE).config["files"]
    assert files == [
        {"guest_path": "/etc/nginx/conf.d/extra", "raw_value": b64("x")},
        {"guest_path": "/etc/nginx/conf.d/nginx.conf", "raw_value": b64("server {}")},
        {"guest_path": "/etc/tls/private/key.pem", "raw_value": b64("KEY"), "mode": 0o400},
        {"guest_path": "/etc/one.conf", "raw_value": b64("server {}")},
    ]


PROBES = [
    (
        {"readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5}},
        {"readiness-app": {"type": "http", "port": 8080, "path": "/healthz", "method": "GET", "protocol": "http", "interval": "5s", "timeout": "1s", "grace_period": "0s", "kind": "readiness"}},
    ),
    (
        {"ports": [{"name": "db", "containerPort": 5432}], "livenessProbe": {"tcpSocket": {"port": "db"}, "initialDelaySeconds": 10, "timeoutSeconds": 3}},
        {"liveness-app": {"type": "tcp", "port": 5432, "interval": "10s", "timeout": "3s", "grace_period": "10s", "kind": "informational"}},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "checks"), PROBES)
def test_probes_become_checks(fields: dict[str, Any], checks: dict[str, Any]):
    assert tr.build_plan(pod(app(**fields)), tr.Sources(), NODE).config["checks"] == checks


def test_exec_probe_is_reported_not_dropped():
    plan = tr.build_plan(
        pod(app(livenessProbe={"exec": {"command": ["true"]}})), tr.Sources(), NODE
    )
    assert "checks" not in plan.config
    assert plan.warnings == (
        "spec.containers[0].livenessProbe.exec is not supported yet (only httpGet and tcpSocket "
        "probes)",
    )


def test_several_containers_and_init_containers_become_containers_with_depends_on():
    spec_pod = pod(
        app(name="web", args=["serve"], readinessProbe={"tcpSocket": {"port": 80}}),
        app(name="sidecar", image="envoy:1"),
        initContainers=[app(name="migrate", image="tool:1"), app(name="seed", image="tool:1")],
    )
    config = tr.build_plan(spec_pod, tr.Sources(), NODE).config
    names = [(c["name"], c.get("depends_on")) for c in config["containers"]]
    assert names == [
        ("migrate", None),
        ("seed", [{"name": "migrate", "condition": "exited_successfully"}]),
        ("web", [{"name": "seed", "condition": "exited_successfully"}]),
        ("sidecar", [{"name": "seed", "condition": "exited_successfully"}]),
    ]
    assert config["containers"][0]["restart"] == {"policy": "no"}
    assert config["containers"][2]["cmd"] == ["serve"]
    assert config["containers"][2]["healthchecks"] == [
        {"name": "readiness-web", "kind": "readiness", "tcp": {"port": 80}, "interval": 10, "timeout": 1, "grace_period": 0, "success_threshold": 1, "failure_threshold": 3}
    ]  # fmt: skip
    assert "init" not in config


UNSUPPORTED = [
    (app(securityContext={"runAsUser": 1000}), {}, ["spec.containers[0].securityContext is not supported yet"]),
    (app(securityContext={}), {}, []),
    (app(workingDir="/srv", stdin=True), {}, ["spec.containers[0].workingDir is not supported yet", "spec.containers[0].stdin is not supported yet"]),
    (app(), {"hostNetwork": True}, ["spec.hostNetwork is not supported yet"]),
    (app(), {"affinity": {"nodeAffinity": {}}}, ["spec.affinity is not supported yet"]),
    (app(), {"dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler", "tolerations": []}, []),
    (app(), {"nodeSelector": {"kubernetes.io/os": "linux"}, "os": {"name": "linux"}}, []),
    (app(), {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}}, []),
    (app(), {"volumes": [{"name": "scratch", "emptyDir": {}}]}, ["spec.volumes[0].emptyDir (scratch) is not supported yet"]),
    (app(), {"volumes": [{"name": "kube-api-access-x1", "projected": {}}]}, ["spec.volumes[0] (kube-api-access-x1, the service account token) is not supported yet"]),
    (app(**resources({"nvidia.com/gpu": "1"})), {}, ["spec.containers[0].resources.limits.nvidia.com/gpu is not supported yet"]),
    (app(startupProbe={"tcpSocket": {"port": 1}}), {}, ["spec.containers[0].startupProbe is not supported yet"]),
    (app(volumeMounts=[{"name": "c", "mountPath": "/c", "readOnly": True, "mountPropagation": "None"}]), {}, []),
    (app(volumeMounts=[{"name": "c", "mountPath": "/c", "subPathExpr": "$(POD)"}]), {}, ["spec.containers[0].volumeMounts[0].subPathExpr is not supported yet"]),
    (app(volumeMounts=[{"name": "c", "mountPath": "/c", "mountPropagation": "HostToContainer"}]), {}, ["spec.containers[0].volumeMounts[0].mountPropagation is not supported yet"]),
    (app(livenessProbe={"httpGet": {"host": "example.com", "port": 80}, "terminationGracePeriodSeconds": 5}), {}, ["spec.containers[0].livenessProbe.httpGet.host is not supported yet", "spec.containers[0].livenessProbe.terminationGracePeriodSeconds is not supported yet"]),
    (app(resources={"claims": [{"name": "gpu"}], "limits": {"cpu": "1"}}), {}, ["spec.containers[0].resources.claims is not supported yet"]),
    (app(), {"imagePullSecrets": [{"name": "regcred"}], "shareProcessNamespace": True}, ["spec.imagePullSecrets is not supported yet", "spec.shareProcessNamespace is not supported yet"]),
]  # fmt: skip


@pytest.mark.parametrize(("container", "spec", "warnings"), UNSUPPORTED)
def test_unsupported_fields_are_named(container, spec: dict[str, Any], warnings: list[str]):
    assert tr.unsupported_fields(pod(container, **spec)) == warnings


def test_a_mounted_unsupported_volume_is_reported_once():
    container = app(volumeMounts=[{"name": "kube-api-access-x1", "mountPath": "/var/run/secrets"}])
    plan = tr.build_plan(
        pod(container, volumes=[{"name": "kube-api-access-x1", "projected": {}}]),
        tr.Sources(),
        NODE,
    )
    assert plan.warnings == (
        "spec.volumes[0] (kube-api-access-x1, the service account token) is not supported yet",
    )


def test_spec_hash_changes_with_the_spec_only():
    one = tr.build_plan(pod(app()), tr.Sources(), NODE)
    same = tr.build_plan(pod(app()), tr.Sources(), NODE)
    other = tr.build_plan(pod(app(image="nginx:1.28")), tr.Sources(), NODE)
    assert one.spec_hash == same.spec_hash != other.spec_hash


def test_referenced_objects_are_listed():
    spec_pod = pod(
        app(
            env=[{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}}],
            envFrom=[{"configMapRef": {"name": "c1"}}],
        ),
        volumes=[{"name": "v", "secret": {"secretName": "s2"}}, {"name": "w", "configMap": {"name": "c2"}}],
    )  # fmt: skip
    assert sorted(tr.iter_referenced(spec_pod)) == [
        ("ConfigMap", "c1"),
        ("ConfigMap", "c2"),
        ("Secret", "s1"),
        ("Secret", "s2"),
    ]


@pytest.mark.parametrize(
    ("cluster", "namespace", "org"),
    [("demo", "default", "personal"), ("a" * 60, "b" * 60, "acme"), ("Demo_1", "kube-system", "x")],
)
def test_namespace_app_names_fit_and_differ(cluster: str, namespace: str, org: str):
    name = namespace_app_name(cluster, namespace, org)
    assert len(name) <= 63 and name == name.lower() and name.startswith("flyk-")
    assert name != namespace_app_name(cluster, namespace, org + "2")
    assert name != namespace_app_name(cluster, namespace + "x", org)


# --------------------------------------------------------------------------- status


def machine(state: str, *events: dict[str, Any], checks=(), private_ip="fdaa::9"):
    return {
        "id": "m1",
        "state": state,
        "private_ip": private_ip,
        "created_at": "2026-11-25T10:00:00Z",
        "events": list(events),
        "checks": list(checks),
    }


def exit_event(code: int, *, oom: bool = False, restarting: bool = False, at: int = 2000):
    request = {"exit_event": {"exit_code": code, "oom_killed": oom, "restarting": restarting}}
    return {"type": "exit", "status": "stopped", "timestamp": at, "request": request}


START = {"type": "start", "status": "started", "timestamp": 1000}
STATUS_TABLE = [
    # machine, expected phase, expected container state key, reason, exit code, ready
    (machine("created"), "Pending", "waiting", "ContainerCreating", None, False),
    (machine("starting"), "Pending", "waiting", "ContainerCreating", None, False),
    (machine("started", START), "Running", "running", None, None, True),
    (machine("started", START, checks=[{"name": "readiness-app", "status": "critical"}]), "Running", "running", None, None, False),
    (machine("started", START, checks=[{"name": "readiness-app", "status": "passing"}]), "Running", "running", None, None, True),
    (machine("stopped", START, exit_event(0)), "Succeeded", "terminated", "Completed", 0, False),
    (machine("stopped", START, exit_event(3)), "Failed", "terminated", "Error", 3, False),
    (machine("stopped", START, exit_event(137, oom=True)), "Failed", "terminated", "OOMKilled", 137, False),
    (machine("failed", exit_event(1)), "Failed", "terminated", "Error", 1, False),
    (machine("launch_failed"), "Failed", "terminated", "StartError", 128, False),
    (None, "Failed", "terminated", "NotFound", -137, False),
    (machine("destroyed"), "Failed", "terminated", "NotFound", -137, False),
]  # fmt: skip


@pytest.mark.parametrize(("m", "phase", "state", "reason", "code", "ready"), STATUS_TABLE)
def test_machine_to_pod_status(m, phase: str, state: str, reason, code, ready: bool):
    # The rows with a readiness check are for a container whose probe made it.
    probe = {"readinessProbe": {"tcpSocket": {"port": 80}}} if m and m.get("checks") else {}
    status = st.pod_status(pod(app(**probe), restartPolicy="Never"), m, host_ip="fdaa::2")
    assert status["phase"] == phase
    (container,) = status["containerStatuses"]
    assert list(container["state"]) == [state]
    assert container["state"][state].get("reason") == reason
    assert container["state"][state].get("exitCode") == code
    assert container["ready"] is ready
    ready_condition = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready_condition["status"] == ("True" if ready else "False")
    if m is not None and m["state"] != "destroyed":
        assert status["podIP"] == "fdaa::9" and status["podIPs"] == [{"ip": "fdaa::9"}]
        assert status["startTime"] == "2026-11-25T10:00:00Z"


def test_restarts_are_counted_and_the_last_exit_is_kept():
    m = machine(
        "started", START, exit_event(2, restarting=True, at=1500), {**START, "timestamp": 1600}
    )
    (container,) = st.pod_status(pod(app()), m, host_ip="h")["containerStatuses"]
    assert container["restartCount"] == 1
    assert container["lastState"]["terminated"]["exitCode"] == 2


def test_unchanged_status_is_not_rewritten():
    first = st.with_transition_times(
        st.pod_status(pod(app()), machine("started", START), host_ip="h"), None, "T1"
    )
    again = st.with_transition_times(
        st.pod_status(pod(app()), machine("started", START), host_ip="h"), first, "T2"
    )
    assert not st.status_differs(again, first)
    stopped = st.with_transition_times(
        st.pod_status(pod(app()), machine("stopped", exit_event(0)), host_ip="h"), first, "T3"
    )
    assert st.status_differs(stopped, first)
    ready = {c["type"]: c["lastTransitionTime"] for c in stopped["conditions"]}
    assert ready["PodScheduled"] == "T1" and ready["Ready"] == "T3"


# --------------------------------------------------------------------------- the spec hash


def hashed(p: dict[str, Any], sources: tr.Sources | None = None) -> str:
    return tr.build_plan(p, sources or tr.Sources(), NODE).spec_hash


SECRET = {"s": {"data": {"k": b64("v1"), "unused": b64("x")}}}
WITH_SECRET = pod(
    app(env=[{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}])
)


def test_the_spec_hash_is_pinned() -> None:
    """The hash of a pod must not move when only flyk changes: a new value here means every
    machine is restarted by the upgrade. Change it only together with SPEC_HASH_SCHEME, when a
    change of the translation must reach running machines."""
    probe = {"httpGet": {"path": "/", "port": 80}}
    rich = pod(
        app(livenessProbe=probe, volumeMounts=[{"name": "c", "mountPath": "/etc/c"}], **resources({"memory": "1Gi"})),
        volumes=[{"name": "c", "configMap": {"name": "c"}}],
        restartPolicy="OnFailure",
    )  # fmt: skip
    sources = tr.Sources(config_maps={"c": {"data": {"f": "x"}}})
    assert tr.SPEC_HASH_SCHEME == 1
    assert hashed(rich, sources) == "9a4b169818e863cd"
    assert hashed(pod(app())) == "0adfabac2b6a0d96"


@pytest.mark.parametrize(
    ("changed", "restarts"),
    [
        (pod(app(image="nginx:1.28")), True),
        (pod(app(), annotations={"fly.io/size": "performance-1x"}), True),
        (pod(app(), terminationGracePeriodSeconds=5), True),
        # the scheduler's keys and the region change nothing on the machine
        (pod(app(), tolerations=[{"key": "k", "operator": "Exists"}], nodeName="n2", priority=5), False),
        (pod(app(), annotations={"fly.io/region": "lhr", "fly.io/machine-size": "x"}), False),
    ],
)  # fmt: skip
def test_what_moves_the_spec_hash(changed: dict[str, Any], restarts: bool) -> None:
    assert (hashed(changed) != hashed(pod(app()))) is restarts


def test_the_spec_hash_follows_the_content_the_pod_uses() -> None:
    before = hashed(WITH_SECRET, tr.Sources(secrets=SECRET))
    used = {"s": {"data": {"k": b64("v2"), "unused": b64("x")}}}
    unused = {"s": {"data": {"k": b64("v1"), "unused": b64("y")}}}
    assert hashed(WITH_SECRET, tr.Sources(secrets=used)) != before
    assert hashed(WITH_SECRET, tr.Sources(secrets=unused)) == before
