"""Machine → PodStatus: pure functions (DESIGN.md "Machine | Pod status").

Input is the machine as the Machines API returns it (JSON: `state`, `private_ip`, `events`,
`checks`, `created_at`); output is the pod's `status` as the Kubernetes API spells it.

The Machines API reports state per machine, not per container (`Machine` has no container
states; `events` and exit codes are the machine's), so per-container status is derived:

- app containers share the machine's state, exit code and restart count; each one's `ready`
  is its own readiness check (`readiness-<name>`), required to be reported and passing when
  the pod spec gave the container a readiness probe that became a check;
- init containers ran before the app containers (each `depends_on` the previous one with
  `exited_successfully`), so once the machine has started they are `terminated` Completed
  with exit code 0; before that they are `waiting` PodInitializing; a machine that failed
  without ever starting gives them its failure, as it gives the app containers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]

PENDING_STATES = {"creating", "created", "starting"}
RUNNING_STATES = {"started", "stopping", "restarting", "updating", "replacing", "suspending"}
STOPPED_STATES = {"stopped", "suspended"}
FAILED_STATES = {"failed", "launch_failed"}
GONE_STATES = {"destroyed", "destroying"}

NOT_FOUND_EXIT_CODE = -137  # the virtual-kubelet convention for a vanished backend
CONTAINER_ID_SCHEME = "fly://"  # containerID: fly://<machine id>


@dataclass(frozen=True)
class ExitInfo:
    exit_code: int
    oom_killed: bool
    finished_at: str | None


def iso_from_ms(ms: int | float | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalise_time(value: str | None) -> str | None:
    """Kubernetes wants RFC 3339 seconds with a Z; the Machines API may send fractions."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sorted_events(machine: JSON) -> list[JSON]:
    return sorted(machine.get("events") or [], key=lambda e: e.get("timestamp") or 0)


def last_exit(machine: JSON) -> ExitInfo | None:
    """The newest exit event's code; None when the machine never exited."""
    for event in reversed(_sorted_events(machine)):
        if event.get("type") != "exit":
            continue
        exit_event = (event.get("request") or {}).get("exit_event") or {}
        if "exit_code" not in exit_event and not exit_event.get("oom_killed"):
            continue
        return ExitInfo(
            exit_code=int(exit_event.get("exit_code", 137)),
            oom_killed=bool(exit_event.get("oom_killed")),
            finished_at=iso_from_ms(event.get("timestamp")),
        )
    return None


def restart_count(machine: JSON) -> int:
    """Exits after which the machine ran again: those it restarted itself after (`restarting`)
    and those followed by a start (the kubelet started a stopped machine again). The events
    list may be truncated."""
    count = 0
    exited = False
    for event in _sorted_events(machine):
        kind = event.get("type")
        exit_event = (event.get("request") or {}).get("exit_event") or {}
        if kind == "exit" and exit_event.get("restarting"):
            count, exited = count + 1, False
        elif kind == "exit":
            exited = True
        elif kind == "start" and event.get("status") == "started" and exited:
            count, exited = count + 1, False
    return count


def restart_policy(pod: JSON) -> str:
    return str((pod.get("spec") or {}).get("restartPolicy") or "Always")


def restarts_when_stopped(pod: JSON, machine: JSON) -> bool:
    """Whether Kubernetes would run this stopped machine's containers again: always with
    `restartPolicy: Always`, after a failure (exit ≠ 0, OOM, or no exit known) with
    `OnFailure`. Then the kubelet starts the machine again and the pod stays Running (Fly does
    not restart a machine someone stopped, and gives up on `on-failure` after `max_retries`)."""
    if machine.get("state") not in STOPPED_STATES:
        return False
    policy = restart_policy(pod)
    if policy == "Always":
        return True
    if policy != "OnFailure":
        return False
    info = last_exit(machine)
    return info is None or info.exit_code != 0 or info.oom_killed


def last_start_time(machine: JSON) -> str | None:
    for event in reversed(_sorted_events(machine)):
        if event.get("type") == "start" and event.get("status") in ("started", None):
            return iso_from_ms(event.get("timestamp"))
    return normalise_time(machine.get("updated_at"))


def probe_is_check(probe: JSON | None) -> bool:
    """Whether a probe became a machine check (`httpGet` and `tcpSocket` do; exec and gRPC
    probes are reported unsupported and are not checks)."""
    return bool(probe) and ("httpGet" in (probe or {}) or "tcpSocket" in (probe or {}))


def readiness(machine: JSON, container: JSON) -> bool:
    """True when the container has no readiness probe that became a check, or when its check
    `readiness-<name>` is reported and passing. The expected name comes from the pod spec, not
    from what the machine reports: a check not reported (yet) is not a passing one."""
    if not probe_is_check(container.get("readinessProbe")):
        return True
    wanted = f"readiness-{container['name']}"
    reported = [c.get("status") for c in machine.get("checks") or [] if c.get("name") == wanted]
    return bool(reported) and all(status == "passing" for status in reported)


def _terminated(info: ExitInfo) -> JSON:
    if info.oom_killed:
        reason = "OOMKilled"
    else:
        reason = "Completed" if info.exit_code == 0 else "Error"
    state: JSON = {"exitCode": info.exit_code, "reason": reason}
    if info.finished_at:
        state["finishedAt"] = info.finished_at
    return {"terminated": state}


def _containers(pod: JSON) -> list[JSON]:
    return list((pod.get("spec") or {}).get("containers") or [])


def _init_containers(pod: JSON) -> list[JSON]:
    return list((pod.get("spec") or {}).get("initContainers") or [])


COMPLETED: JSON = {"terminated": {"exitCode": 0, "reason": "Completed"}}


def ever_started(machine: JSON) -> bool:
    """Whether the machine has run (so its init containers have completed): it is running or
    stopped, it exited, or its events show a start."""
    state = machine.get("state")
    if state in RUNNING_STATES or state in STOPPED_STATES or last_exit(machine) is not None:
        return True
    return any(
        e.get("type") == "start" and e.get("status") == "started" for e in _sorted_events(machine)
    )


def _init_status(container: JSON, state: JSON) -> JSON:
    """An init container's status: `ready` once it completed successfully (as Kubernetes
    reports init containers); init containers are never restarted (restart `no`)."""
    terminated = state.get("terminated") or {}
    status = _container_status(container, state, terminated.get("exitCode") == 0, 0, None)
    status["started"] = False
    return status


def _container_status(
    container: JSON, state: JSON, ready: bool, restarts: int, last: JSON | None
) -> JSON:
    status: JSON = {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "restartCount": restarts,
        "started": "running" in state,
        "state": state,
    }
    if last:
        status["lastState"] = last
    return status


def _condition(kind: str, value: bool, reason: str | None = None) -> JSON:
    condition: JSON = {"type": kind, "status": "True" if value else "False"}
    if reason and not value:
        condition["reason"] = reason
    return condition


def pod_status(pod: JSON, machine: JSON | None, *, host_ip: str) -> JSON:
    """The pod's status for its machine (None: the machine is gone)."""
    if machine is None or machine.get("state") in GONE_STATES:
        return _gone(pod, host_ip)
    state = str(machine.get("state", ""))
    info = last_exit(machine)
    restarts = restart_count(machine)
    inits = _init_containers(pod)
    initialized = not inits or ever_started(machine)
    waiting_for = "ContainerCreating" if initialized else "PodInitializing"
    creating: JSON = {"waiting": {"reason": waiting_for}}
    container_state: JSON
    if state in PENDING_STATES:
        # A pod never goes back to Pending: a machine starting again after it ran (a restart)
        # keeps the pod Running, its containers waiting, the last exit as lastState.
        phase = "Running" if ever_started(machine) else "Pending"
        container_state = creating
    elif state in RUNNING_STATES:
        phase = "Running"
        container_state = {"running": {"startedAt": last_start_time(machine)}}
    elif state in FAILED_STATES:
        phase = "Failed"
        container_state = _terminated(info) if info else _launch_failed(machine)
    elif state in STOPPED_STATES and restarts_when_stopped(pod, machine):
        # To be started again by the kubelet: Running, waiting, the exit as lastState.
        phase = "Running"
        container_state = creating
    elif state in STOPPED_STATES:
        if info is None:
            phase = "Failed"
            container_state = {"terminated": {"exitCode": 143, "reason": "Stopped"}}
        else:
            phase = "Succeeded" if info.exit_code == 0 and not info.oom_killed else "Failed"
            container_state = _terminated(info)
    else:
        phase, container_state = "Pending", creating
    last = _terminated(info) if info and phase == "Running" and restarts else None
    if phase == "Running" and state in STOPPED_STATES:
        last = _terminated(info) if info else {"terminated": {"exitCode": 143, "reason": "Stopped"}}
    running = phase == "Running"
    statuses = []
    for container in _containers(pod):
        ready = running and state == "started" and readiness(machine, container)
        statuses.append(_container_status(container, container_state, ready, restarts, last))
    all_ready = bool(statuses) and all(s["ready"] for s in statuses)
    status: JSON = {
        "phase": phase,
        "hostIP": host_ip,
        "conditions": [
            _condition("PodScheduled", True),
            _condition("Initialized", initialized, "ContainersNotInitialized"),
            _condition("ContainersReady", all_ready, "ContainersNotReady"),
            _condition("Ready", all_ready, "ContainersNotReady"),
        ],
        "containerStatuses": statuses,
    }
    if inits:
        if initialized:
            init_state = COMPLETED
        elif phase == "Failed":
            init_state = container_state  # the machine failed before anything ran
        else:
            init_state = {"waiting": {"reason": "PodInitializing"}}
        status["initContainerStatuses"] = [_init_status(c, init_state) for c in inits]
    created = normalise_time(machine.get("created_at"))
    if created:
        status["startTime"] = created
    private_ip = machine.get("private_ip")
    if private_ip:
        status["podIP"] = private_ip
        status["podIPs"] = [{"ip": private_ip}]
    if machine.get("id"):
        # Where the kubelet finds the pod's machine again (a node may write the pod's status,
        # never its metadata: NodeRestriction), as kubelets name a container's runtime id.
        for entry in [*status["containerStatuses"], *status.get("initContainerStatuses", [])]:
            entry["containerID"] = f"{CONTAINER_ID_SCHEME}{machine['id']}"
    return keep_terminated_init_containers(pod, status)


def deleted_status(pod: JSON, machine: JSON | None, *, host_ip: str) -> JSON:
    """The terminal status a deleted pod gets once its machine is stopped, before the
    kubelet's final delete, as kubelets do: the Job controller counts a pod (and, with a
    `podFailurePolicy`, lets its finalizer go) only once it is Succeeded or Failed. Succeeded
    when the machine's last exit was 0, else Failed; containers terminated with that exit
    (137, `Error`, when none is known)."""
    info = last_exit(machine) if machine is not None else None
    if info is not None:
        state = _terminated(info)
        succeeded = info.exit_code == 0 and not info.oom_killed
    else:
        state = {"terminated": {"exitCode": 137, "reason": "Error"}}
        succeeded = False
    phase = "Succeeded" if succeeded else "Failed"
    status = _ended(pod, state, phase, "PodCompleted", host_ip)
    if machine is not None and machine.get("id"):
        for entry in [*status["containerStatuses"], *status.get("initContainerStatuses", [])]:
            entry["containerID"] = f"{CONTAINER_ID_SCHEME}{machine['id']}"
    return status


def machine_id_of(pod: JSON) -> str | None:
    """The machine id the pod's status names (`containerID` `fly://<id>`), if any."""
    status = pod.get("status") or {}
    for entry in [
        *(status.get("containerStatuses") or []),
        *(status.get("initContainerStatuses") or []),
    ]:
        container_id = str(entry.get("containerID") or "")
        if container_id.startswith(CONTAINER_ID_SCHEME):
            return container_id.removeprefix(CONTAINER_ID_SCHEME)
    return None


def keep_terminated_init_containers(pod: JSON, status: JSON) -> JSON:
    """The API server refuses (422) a status in which a terminated container is running or
    waiting again, unless the pod's restartPolicy is Always (`ValidateContainerStateTransition`).
    A replacement machine runs a pod's init containers again, but for any other policy the
    statuses of the init containers that had terminated stay as they were."""
    if restart_policy(pod) == "Always" or "initContainerStatuses" not in status:
        return status
    before = {
        entry.get("name"): entry
        for entry in (pod.get("status") or {}).get("initContainerStatuses") or []
    }
    kept = []
    for entry in status["initContainerStatuses"]:
        previous = before.get(entry["name"])
        was_terminated = "terminated" in ((previous or {}).get("state") or {})
        if previous is not None and was_terminated and "terminated" not in entry["state"]:
            entry = {**entry, "state": previous["state"], "ready": previous.get("ready", False)}
        kept.append(entry)
    return {**status, "initContainerStatuses": kept}


def _launch_failed(machine: JSON) -> JSON:
    return {
        "terminated": {
            "exitCode": 128,
            "reason": "StartError",
            "message": f"the machine is {machine.get('state')}",
        }
    }


def _gone(pod: JSON, host_ip: str) -> JSON:
    state: JSON = {"terminated": {"exitCode": NOT_FOUND_EXIT_CODE, "reason": "NotFound"}}
    status = _ended(pod, state, "Failed", "PodFailed", host_ip)
    return {
        **status,
        "reason": "NotFound",
        "message": "the pod's machine no longer exists",
    }


def _ended(pod: JSON, state: JSON, phase: str, why: str, host_ip: str) -> JSON:
    """A terminal status: every container (init containers too) in `state`, not ready for
    `why` (PodCompleted, PodFailed)."""
    statuses = [_container_status(c, state, False, 0, None) for c in _containers(pod)]
    status: JSON = {
        "phase": phase,
        "hostIP": host_ip,
        "conditions": [
            _condition("PodScheduled", True),
            _condition("Ready", False, why),
            _condition("ContainersReady", False, why),
        ],
        "containerStatuses": statuses,
    }
    inits = _init_containers(pod)
    if inits:
        status["initContainerStatuses"] = _ended_init_statuses(pod, inits, state)
    return status


def _completed(status: JSON | None) -> bool:
    terminated = ((status or {}).get("state") or {}).get("terminated") or {}
    return terminated.get("exitCode") == 0 and terminated.get("reason") == "Completed"


def pending_status(pod: JSON, *, host_ip: str, reason: str, message: str) -> JSON:
    """A pod flyk could not (yet) give a machine: Pending, with the reason on the pod and on
    every container (capacity, a missing Secret, a bad size)."""
    state: JSON = {"waiting": {"reason": reason, "message": message}}
    statuses = [_container_status(c, state, False, 0, None) for c in _containers(pod)]
    status: JSON = {
        "phase": "Pending",
        "reason": reason,
        "message": message,
        "hostIP": host_ip,
        "conditions": [
            _condition("PodScheduled", True),
            _condition("Ready", False, reason),
            _condition("ContainersReady", False, reason),
        ],
        "containerStatuses": statuses,
    }
    inits = _init_containers(pod)
    if inits:
        status["initContainerStatuses"] = [_init_status(c, state) for c in inits]
    return keep_terminated_init_containers(pod, status)


def is_terminal(status: JSON | None) -> bool:
    return bool(status) and (status or {}).get("phase") in ("Succeeded", "Failed")


def any_running(status: JSON | None) -> bool:
    """True while a container may still run (the kubelet must stop it before the pod goes)."""
    for container in (status or {}).get("containerStatuses") or []:
        if "running" in (container.get("state") or {}):
            return True
    return False


def with_transition_times(new: JSON, old: JSON | None, now: str) -> JSON:
    """Carry over each condition's lastTransitionTime when its status did not change, so that
    an unchanged status compares equal and is not written again."""
    previous = {c.get("type"): c for c in (old or {}).get("conditions") or []}
    conditions = []
    for condition in new.get("conditions") or []:
        before = previous.get(condition["type"])
        same = before is not None and before.get("status") == condition["status"]
        stamp = before.get("lastTransitionTime") if same and before else None
        conditions.append({**condition, "lastTransitionTime": stamp or now})
    return {**new, "conditions": conditions}


# Fields a status of ours may drop since the last one: sent as null so that they go.
DROPPABLE = ("reason", "message", "podIP", "podIPs", "startTime")


def status_patch(new: JSON, current: JSON | None) -> JSON:
    """The strategic merge patch that turns `current` into `new` for the fields flyk writes
    (empty: nothing to write). As the kubelet's own patches: `conditions` merge by `type`, so
    only ours that changed are sent, a key one of them lost goes as null, and conditions others
    wrote (readiness gates, DisruptionTarget) are left alone; `podIPs` merge by `ip`, an address
    no longer held is deleted with `$patch: delete`; other lists are replaced whole. Fields
    flyk does not write (qosClass, …) are left as they are."""
    current = current or {}
    patch: JSON = {}
    for key, value in new.items():
        if key in ("conditions", "podIPs"):
            continue
        if key in ("containerStatuses", "initContainerStatuses"):
            if not _same_containers(value, current.get(key)):
                patch[key] = value
        elif current.get(key) != value:
            patch[key] = value
    for key in DROPPABLE:
        if key in current and key not in new:
            patch[key] = None
    conditions = _conditions_patch(new.get("conditions") or [], current.get("conditions") or [])
    if conditions:
        patch["conditions"] = conditions
    if "podIPs" in new and new["podIPs"] != current.get("podIPs"):
        held = {entry.get("ip") for entry in new["podIPs"]}
        gone = [
            {"ip": entry.get("ip"), "$patch": "delete"}
            for entry in current.get("podIPs") or []
            if entry.get("ip") not in held
        ]
        patch["podIPs"] = [*new["podIPs"], *gone]
    return patch


# What the kubelet writes of a container's status; the API server adds more (`volumeMounts`,
# `resources`, `user`, …), which a comparison ignores.
CONTAINER_STATUS_KEYS = (
    "name",
    "image",
    "imageID",
    "ready",
    "restartCount",
    "started",
    "state",
    "lastState",
    "containerID",
)


def _pruned(value: Any) -> Any:
    """As the API server gives a value back: nulls and empty objects left out (a time the
    kubelet did not set comes back null, `lastState` comes back `{}`)."""
    if isinstance(value, dict):
        pruned = {k: _pruned(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in pruned.items() if v != {}}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _same_containers(new: list[JSON] | None, current: list[JSON] | None) -> bool:
    """Whether the container statuses the server holds are those the kubelet would write."""
    new, current = new or [], current or []
    if len(new) != len(current):
        return False
    for ours, theirs in zip(new, current, strict=True):
        for key in CONTAINER_STATUS_KEYS:
            if _pruned({key: ours.get(key)}) != _pruned({key: theirs.get(key)}):
                return False
    return True


def _conditions_patch(new: list[JSON], current: list[JSON]) -> list[JSON]:
    before = {c.get("type"): c for c in current}
    changed = []
    for condition in new:
        old = before.get(condition["type"]) or {}
        if old == condition:
            continue
        dropped = {key: None for key in old if key not in condition}
        changed.append({**dropped, **condition})
    return changed


def status_differs(new: JSON, current: JSON | None) -> bool:
    """Whether writing `new` would change what the API server holds."""
    return bool(status_patch(new, current))


def _ended_init_statuses(pod: JSON, inits: list[JSON], state: JSON) -> list[JSON]:
    """The init containers of a pod whose machine ended: those seen completed stay so (they did
    run), the others ended with the machine (`state`)."""
    before = {
        s.get("name"): s for s in (pod.get("status") or {}).get("initContainerStatuses") or []
    }
    return [
        _init_status(c, COMPLETED if _completed(before.get(c["name"])) else state) for c in inits
    ]
