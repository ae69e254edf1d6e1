"""The kubelet API's routes, bound to the kubelet's pods and its Machines client: which pod,
which machine, which app, and what to say when there is none."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from flyk.api import ExecResult, FlyClient
from flyk.errors import FlykError, NotFoundError, PreconditionFailedError
from flyk.kubelet import exec as pod_exec
from flyk.kubelet import logs
from flyk.kubelet.server import Exchange, KubeletServer, Route, route
from flyk.kubelet.tails import AppTails

log = logging.getLogger("flyk.kubelet.endpoints")
JSON = dict[str, Any]


class PodLookup(Protocol):
    def locate(self, namespace: str, name: str) -> tuple[JSON, str, str | None] | None:
        """The pod, its namespace's app and its machine's id (None before it has one)."""


def _containers(pod: JSON) -> list[str]:
    spec = pod.get("spec") or {}
    return [c["name"] for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])]


class Endpoints:
    def __init__(
        self, pods: PodLookup, fly: FlyClient, server: Callable[[], KubeletServer]
    ) -> None:
        self._pods = pods
        self._fly = fly
        self._server = server
        self._tails: AppTails | None = None  # made on the server's loop, at the first follow

    @property
    def tails(self) -> AppTails:
        if self._tails is None:
            self._tails = AppTails(self._fly, self._server().call)
        return self._tails

    def routes(self) -> list[Route]:
        return [
            route("GET", "/containerLogs/{namespace}/{pod}/{container}", self.container_logs),
            route("GET,POST", "/exec/{namespace}/{pod}/{container}", self.exec),
            route("GET,POST", "/attach/{namespace}/{pod}/{container}", self.attach),
            route("GET,POST", "/portForward/{namespace}/{pod}", self.port_forward),
        ]

    def _target(self, params: dict[str, str]) -> tuple[JSON, str, str] | str:
        """(pod, app, machine) or the message saying why there is nothing to reach."""
        namespace, name = params["namespace"], params["pod"]
        found = self._pods.locate(namespace, name)
        if found is None:
            return f'pod "{name}" in namespace "{namespace}" is not on this node'
        pod, app, machine = found
        container = params.get("container")
        if container is not None and container not in _containers(pod):
            return f'container "{container}" is not in pod "{name}"'
        if machine is None:
            what = f'container "{container}" in pod "{name}"' if container else f'pod "{name}"'
            return f"{what} is waiting to start: ContainerCreating (no machine yet)"
        return pod, app, machine

    async def container_logs(self, exchange: Exchange, params: dict[str, str]) -> None:
        target = self._target(params)
        if isinstance(target, str):
            await exchange.respond(400, target + "\n")
            return
        _pod, app, machine = target
        assert machine is not None
        try:
            options = logs.LogOptions.parse(exchange.request, logs.now_utc())
        except logs.BadLogRequest as error:
            await exchange.respond(400, f"{error}\n")
            return
        if options.previous:
            await exchange.respond(
                400,
                "flyk: previous container logs are not kept apart on Fly: a restarted "
                "container's earlier lines are in the same stream (kubectl logs --since)\n",
            )
            return
        stream = logs.LogStream(
            self._fly, app, machine, options, call=self._server().call, tails=self.tails
        )
        try:
            await stream.serve(exchange)
        except FlykError as error:
            if exchange.answered:
                raise
            await exchange.respond(502, f"flyk: the logs of machine {machine}: {error}\n")

    async def exec(self, exchange: Exchange, params: dict[str, str]) -> None:
        target = self._target(params)
        if isinstance(target, str):
            await pod_exec.serve_exec(exchange, _never, problem=target)
            return
        pod, app, machine = target
        several = len(_containers(pod)) > 1
        container = params["container"] if several else None

        async def run(command: list[str], stdin: str | None) -> ExecResult:
            return await self._server().call(self._run, app, machine, container, command, stdin)

        await pod_exec.serve_exec(exchange, run)

    def _run(
        self, app: str, machine: str, container: str | None, command: list[str], stdin: str | None
    ) -> ExecResult:
        try:
            return self._fly.machines.exec(
                app,
                machine,
                command,
                timeout=pod_exec.EXEC_TIMEOUT,
                stdin=stdin,
                container=container,
            )
        except NotFoundError as error:
            raise pod_exec.ExecRefused(
                f"flyk: the pod's machine {machine} is gone ({app}); the kubelet replaces it "
                "or marks the pod Failed"
            ) from error
        except PreconditionFailedError as error:
            raise pod_exec.ExecRefused(
                f"flyk: machine {machine} cannot run commands now: {error.message}"
            ) from error
        except FlykError as error:
            raise pod_exec.ExecRefused(
                f"flyk: exec in machine {machine} failed: {error}"
            ) from error

    async def attach(self, exchange: Exchange, _params: dict[str, str]) -> None:
        await pod_exec.refuse_stream(exchange, pod_exec.NO_ATTACH)

    async def port_forward(self, exchange: Exchange, _params: dict[str, str]) -> None:
        # The tunnel would carry SPDY frames inside the WebSocket, with no status channel to
        # speak on: refused before the upgrade. The body is a Status: client-go's SPDY dialer
        # (kubectl falls back to it) reads its message, and would take plain text for YAML.
        await exchange.respond(
            400, pod_exec.status_body(pod_exec.NO_PORT_FORWARD, 400), "application/json"
        )


async def _never(_command: list[str], _stdin: str | None) -> ExecResult:  # pragma: no cover
    raise pod_exec.ExecRefused("unreachable")
