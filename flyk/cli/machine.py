"""``flyk machine``: run and manage Machines (aliases ``machines``, ``m``).

Mutations of an existing machine (start, stop, restart, suspend, cordon, uncordon, update,
destroy) hold the machine's lease for their duration and send its nonce, as flyctl does, so
two people (or a person and the kubelet) never change one machine at once. The client
releases the lease on the way out, Ctrl-C included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Annotated

import typer

from flyk import config
from flyk.cli import completion, views
from flyk.cli.context import AppContext, app_context
from flyk.cli.lazy import aliased
from flyk.cli.options import (
    MAX_SECONDS,
    AppOption,
    JsonOption,
    MachineIdArgument,
    MachineIdsArgument,
    QuietOption,
    RegionOption,
    YesOption,
    quiet_or_json,
)
from flyk.errors import (
    AuthError,
    CapacityError,
    ConfigError,
    ConflictError,
    FlykError,
    Interrupted,
    InvalidRequestError,
    LeaseHeldError,
    MachineStateError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    UsageError,
    WaitTimeoutError,
)

if TYPE_CHECKING:
    from flyk.api import FlyClient, GuestConfig, Lease, Machine, MachineConfig
    from flyk.cli.output import Output, Step

app = typer.Typer(
    name="machine",
    help="Run and manage Fly Machines.",
    no_args_is_help=True,
    cls=aliased({"ls": "list", "rm": "destroy", "remove": "destroy", "lease": "leases"}),
)
leases = typer.Typer(name="leases", help="See and clear machine leases.", no_args_is_help=True)
app.add_typer(leases, name="leases")

LEASE_TTL = 120
DEFAULT_WAIT_TIMEOUT = 300.0


class RestartPolicy(StrEnum):
    no = "no"
    always = "always"
    on_failure = "on-failure"


# ---------------------------------------------------------------------------------------------
# options shared by run and update

EnvOption = Annotated[
    list[str] | None,
    typer.Option("-e", "--env", metavar="KEY=VALUE", help="Environment variable (repeatable)."),
]
MetadataOption = Annotated[
    list[str] | None,
    typer.Option(
        "-m",
        "--metadata",
        metavar="KEY=VALUE",
        help="Metadata (repeatable); keys starting with flyk_ are flyk's own.",
    ),
]
SizeOption = Annotated[
    str | None,
    typer.Option(
        "--vm-size",
        "--size",
        metavar="SIZE",
        help="Size preset, e.g. shared-cpu-1x, performance-2x.",
        autocompletion=completion.complete_sizes,
    ),
]
CpusOption = Annotated[
    int | None,
    typer.Option("--vm-cpus", "--cpus", metavar="N", help="Number of CPUs.", show_default=False),
]
MemoryOption = Annotated[
    str | None,
    typer.Option(
        "--vm-memory", "--memory", metavar="MEMORY", help="Memory: megabytes (512) or a size (1gb)."
    ),
]
CpuKindOption = Annotated[
    str | None,
    typer.Option(
        "--vm-cpu-kind",
        metavar="KIND",
        help="shared or performance.",
        show_default=False,
        autocompletion=completion.complete_cpu_kinds,
    ),
]
RestartOption = Annotated[
    RestartPolicy | None,
    typer.Option(
        "--restart",
        metavar="POLICY",
        help="Restart policy: no, always, on-failure.",
        show_default=False,
    ),
]
WaitTimeoutOption = Annotated[
    float,
    typer.Option(
        "-w",
        "--wait-timeout",
        min=0,
        max=MAX_SECONDS,
        metavar="SECONDS",
        help="Seconds to wait for the machine's state.",
    ),
]
DetachOption = Annotated[
    bool, typer.Option("--detach", help="Return once the machine is created; do not wait.")
]


def require_app(name: str | None) -> str:
    if not name:
        raise UsageError(
            "no app given: specify one with -a/--app or FLY_APP",
            hint="`flyk apps list` shows your apps.",
        )
    return config.validate_app_name(name)


def parse_states(text: str, allowed: tuple[str, ...], *, what: str) -> list[str]:
    """A comma-separated --state value, checked before any call: an empty one would ask for
    nothing (a wait then ran out its clock), a misspelt one is named with the choices."""
    states = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [state for state in states if state not in allowed]
    if not states or unknown:
        problem = f"unknown state {', '.join(map(repr, unknown))}" if unknown else "no state"
        raise UsageError(
            f"--state {text!r}: {problem}; {what} one or more of {', '.join(allowed)}",
            hint="Separate several with commas, e.g. --state started,stopped.",
        )
    return states


def build_guest(
    base: GuestConfig | None,
    *,
    size: str | None,
    cpus: int | None,
    memory: str | None,
    cpu_kind: str | None,
) -> GuestConfig | None:
    """The guest asked for: a preset (or the current guest), then explicit overrides.

    Returns None when nothing was asked and there is no base: the API's default applies.
    """
    from flyk.api import GuestConfig
    from flyk.api import machine_sizes as sizes

    if base is None and size is None and cpus is None and memory is None and cpu_kind is None:
        return None
    # `is not None`: an empty --vm-size or --vm-cpu-kind is refused, not taken as "not given"
    guest = sizes.preset(size) if size is not None else (base or sizes.preset(sizes.DEFAULT_SIZE))
    kind_name = cpu_kind if cpu_kind is not None else (guest.cpu_kind or "shared")
    kind = sizes.CPU_KINDS.get(kind_name)
    if kind is None:
        raise UsageError(f"unknown CPU kind {kind_name!r}; use 'shared' or 'performance'")
    if size is not None and cpu_kind is not None and guest.cpu_kind != kind.name:
        # a preset names its kind: another one would silently turn it into another size
        count = cpus if cpus is not None else (guest.cpus or 1)
        wanted = "shared-cpu" if kind.name == "shared" else "performance"
        raise UsageError(
            f"--vm-size {size} has {guest.cpu_kind} CPUs; --vm-cpu-kind {cpu_kind} contradicts it",
            hint=f"Give one of them, e.g. --vm-size {wanted}-{count}x.",
        )
    count = cpus if cpus is not None else (guest.cpus or 1)
    if memory is not None:
        memory_mb = sizes.parse_memory_mb(memory)
    elif cpus is not None or cpu_kind is not None:
        # CPUs or kind changed and memory not given: the kind's default for that many CPUs
        # (the old memory would often be out of the new kind's bounds)
        memory_mb = count * kind.default_mb_per_cpu
    else:
        memory_mb = guest.memory_mb or count * kind.default_mb_per_cpu
    result = GuestConfig(cpu_kind=kind.name, cpus=count, memory_mb=memory_mb)
    sizes.validate_guest(result)
    return result


def require_image(image: str) -> str:
    """The image, checked as a reference before any call (see flyk.api.images)."""
    from flyk.api.images import validate_image

    return validate_image(image)


def build_config(
    image: str,
    command: list[str],
    *,
    env: list[str] | None,
    metadata: list[str] | None,
    guest: GuestConfig | None,
    restart: RestartPolicy | None,
    auto_destroy: bool,
    entrypoint: str | None = None,
) -> MachineConfig:
    from flyk.api import InitConfig, MachineConfig, RestartConfig

    policy = restart or (RestartPolicy.no if auto_destroy else RestartPolicy.always)
    if entrypoint is not None and not entrypoint.strip():
        raise UsageError("--entrypoint is empty", hint="Name a command, e.g. --entrypoint sh.")
    init = None
    if command or entrypoint:
        init = InitConfig(cmd=tuple(command), entrypoint=(entrypoint,) if entrypoint else ())
    return MachineConfig(
        image=require_image(image),
        env=config.parse_env(env or []),
        metadata=config.parse_metadata(metadata or []),
        guest=guest,
        init=init,
        restart=RestartConfig(policy=policy.value),
        auto_destroy=True if auto_destroy else None,
    )


@contextmanager
def leased(
    client: FlyClient,
    app_name: str,
    machine_id: str,
    why: str,
    on_wait: Callable[[Lease | None], None] | None = None,
) -> Iterator[str]:
    """Hold the machine's lease; yields the nonce to send with each mutation.

    A lease someone else holds is waited for (FLYK_LEASE_WAIT seconds, as flyctl waits),
    and `on_wait` is told whose it is."""
    with ExitStack() as stack:
        try:
            lease = stack.enter_context(
                client.machines.lease(
                    app_name,
                    machine_id,
                    ttl=LEASE_TTL,
                    description=f"flyk {why}",
                    wait=config.lease_wait_seconds(),
                    on_wait=on_wait,
                )
            )
        except LeaseHeldError as error:
            if error.hint is None:
                where = f"{machine_id} -a {app_name}"
                error.hint = (
                    f"See who holds it: flyk machine leases view {where}; "
                    f"release it: flyk machine leases clear {where}"
                )
            raise
        yield lease.nonce


def _waiting_for_lease(out: Output, step: Step, machine_id: str, holder: Lease | None) -> None:
    """Say why the command is not moving: someone else's lease (a deploy, another flyk)."""
    who = (holder.description or holder.owner) if holder else None
    message = f"Waiting for the lease on machine {machine_id}" + (f" ({who})" if who else "")
    step.update(message)
    if not out.progress:  # no spinner to show the step: one line instead
        out.notice(message)


@contextmanager
def wait_hint(app_name: str, machine_id: str) -> Iterator[None]:
    """Name the command that shows why a wait for ``machine_id`` ended without its state."""
    try:
        yield
    except WaitTimeoutError as error:
        error.hint = (
            f"Check `flyk machine status {machine_id} -a {app_name}`, "
            "or wait longer with -w/--wait-timeout."
        )
        raise
    except MachineStateError as error:
        error.hint = error.hint or (
            f"Its events say why: flyk machine status {machine_id} -a {app_name}"
        )
        raise
    except NotFoundError as error:
        error.hint = error.hint or f"`flyk machine list -a {app_name}` shows its machines."
        raise


@contextmanager
def capacity_alternatives(
    client: FlyClient,
    app_name: str,
    *,
    compute: GuestConfig | None = None,
    volume_size_gb: int | None = None,
) -> Iterator[None]:
    """A region out of room: name regions that have some (flyk never moves anything itself)."""
    try:
        yield
    except CapacityError as error:
        alternatives = client.platform.regions_with_room(
            app_name=app_name,
            compute=compute,
            volume_size_gb=volume_size_gb,
            exclude=() if error.region is None else (error.region,),
        )
        error.alternatives = tuple(alternatives or ())
        if alternatives:  # else (not known) the client's hint stays
            error.hint = (
                f"Regions with room now: {', '.join(alternatives)}. Retry with "
                f"-r {alternatives[0]}; flyk never moves work to another region itself."
            )
        elif alternatives is not None:
            error.hint = "No region reported room now; try again later."
        raise


def _context(ctx: typer.Context, json: bool) -> AppContext:
    context = app_context(ctx)
    context.use_json(json)
    return context


# ---------------------------------------------------------------------------------------------
# run


@app.command("run")
def run(
    ctx: typer.Context,
    image: Annotated[
        str,
        typer.Argument(
            metavar="IMAGE",
            help="Image to run, e.g. nginx or registry/app:tag.",
            show_default=False,
        ),
    ],
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="COMMAND", help="Command and arguments, after `--`.", show_default=False
        ),
    ] = None,
    app_name: AppOption = None,
    region: RegionOption = None,
    name: Annotated[
        str | None, typer.Option("-n", "--name", metavar="NAME", help="Machine name.")
    ] = None,
    env: EnvOption = None,
    metadata: MetadataOption = None,
    vm_size: SizeOption = None,
    vm_cpus: CpusOption = None,
    vm_memory: MemoryOption = None,
    vm_cpu_kind: CpuKindOption = None,
    entrypoint: Annotated[
        str | None,
        typer.Option("--entrypoint", metavar="COMMAND", help="Override the image's entrypoint."),
    ] = None,
    restart: RestartOption = None,
    rm: Annotated[
        bool, typer.Option("--rm", help="Destroy the machine when it exits (auto_destroy).")
    ] = False,
    detach: DetachOption = False,
    wait_timeout: WaitTimeoutOption = DEFAULT_WAIT_TIMEOUT,
    json: JsonOption = False,
) -> None:
    """Launch a machine from an image and wait until it has started.

    A one-shot run (--rm, --restart no) whose workload exits 0 before the wait sees it
    started is a success: flyk says it ran and exited 0 and shows the machine (stopped, or
    destroyed with --rm). Any other exit is an error (exit 10) naming the exit code.
    The image must be an image reference ([registry/]name[:tag][@digest]).

    Example: flyk machine run nginx -a web -r iad --vm-size shared-cpu-2x -e MODE=demo
    """
    context = _context(ctx, json)
    out = context.output
    target_app = require_app(app_name)
    machine_config = build_config(
        image,
        command or [],
        env=env,
        metadata=metadata,
        guest=build_guest(None, size=vm_size, cpus=vm_cpus, memory=vm_memory, cpu_kind=vm_cpu_kind),
        restart=restart,
        auto_destroy=rm,
        entrypoint=entrypoint,
    )
    region_code = config.validate_region_code(region) if region else None
    client = context.client
    with out.step(f"Launching a machine in app {target_app}") as step:
        try:
            with capacity_alternatives(client, target_app, compute=machine_config.guest):
                machine = client.machines.create(
                    target_app, machine_config, name=name, region=region_code
                )
        except NotFoundError as error:  # flyctl offers to create the app; we say how
            raise NotFoundError(
                error.message,
                hint=f"Create the app first: flyk apps create {target_app}",
                details=error.details,
            ) from error
        except InvalidRequestError as error:
            if region_code is None or "region" not in error.message.lower():
                raise
            raise InvalidRequestError(
                error.message, hint="`flyk regions list` shows the regions.", details=error.details
            ) from error
        step.update(f"Launched machine {machine.id} in {machine.region}")
    ran = ""
    if not detach:
        with left_behind_on_interrupt(target_app, machine.id):
            with out.step(f"Waiting for machine {machine.id} to start") as step:
                with wait_hint(target_app, machine.id):
                    ended = _wait_started(client, target_app, machine.id, wait_timeout)
                if ended is None:
                    step.update(f"Machine {machine.id} started")
                else:  # a one-shot run (--rm, --restart no) that did its job
                    end = "was destroyed (--rm)" if ended == "destroyed" else f"is {ended}"
                    ran = f"Machine {machine.id} ran and exited with code 0; it {end}"
                    step.update(ran)
            machine = _machine_after_run(client, target_app, machine, ended)
    _show_launched(context, machine)
    if ran and not out.progress:  # the step said it at a terminal
        out.notice(ran)


def _wait_started(client: FlyClient, app_name: str, machine_id: str, timeout: float) -> str | None:
    """Wait until the machine has started. A workload that started, exited 0 and is not to be
    restarted (--rm, --restart no) did what it was run for: its state (stopped, destroyed)
    is returned instead of the error the wait raises for "will not reach started"."""
    try:
        client.machines.wait(app_name, machine_id, "started", timeout=timeout)
    except MachineStateError as error:
        if error.state in ("stopped", "destroyed") and error.machine_exit_code == 0:
            return error.state
        raise
    return None


def _machine_after_run(
    client: FlyClient, app_name: str, machine: Machine, ended: str | None
) -> Machine:
    """The machine as it is now; one destroyed already (--rm) may be gone from the API."""
    from dataclasses import replace

    try:
        return client.machines.get(app_name, machine.id)
    except NotFoundError:
        if ended != "destroyed":
            raise
        return replace(machine, state="destroyed")


@contextmanager
def left_behind_on_interrupt(app_name: str, machine_id: str) -> Iterator[None]:
    """A Ctrl-C after the create leaves a machine behind: say which, and how to remove it.

    Destroying it here would be a guess (the user may want it); naming it is not.
    """
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted (Ctrl-C); machine {machine_id} was created in app {app_name} "
            "and may still be starting",
            hint=f"Remove it with `flyk machine destroy {machine_id} -a {app_name} --force`.",
        ) from None


def _show_launched(context: AppContext, machine: Machine) -> None:
    out = context.output
    fields = [
        ("ID", machine.id),
        ("NAME", machine.name),
        ("STATE", machine.state),
        ("REGION", machine.region),
        ("SIZE", views.size_name(machine.config.guest if machine.config else None)),
        ("PRIVATE IP", machine.private_ip),
    ]
    out.emit(views.MACHINE.document(machine), lambda: out.detail(fields))


# ---------------------------------------------------------------------------------------------
# reading


# flyctl's `machine list` has no region filter read from the environment: a FLY_REGION set
# for `machine run` must not hide machines here
RegionFilterOption = Annotated[
    str | None,
    typer.Option(
        "-r",
        "--region",
        metavar="REGION",
        help="Only machines in this region.",
        autocompletion=completion.complete_regions,
    ),
]


@app.command("list")
def list_machines(
    ctx: typer.Context,
    app_name: AppOption = None,
    region: RegionFilterOption = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            metavar="STATES",
            help="Only these states, comma-separated: created, started, stopped, suspended, "
            "failed.",
            autocompletion=completion.complete_list_states,
        ),
    ] = None,
    quiet: QuietOption = False,
    json: JsonOption = False,
) -> None:
    """List an app's machines.

    --state takes failed too (flyk filters what the API's filter does not take). A region
    that matches nothing is checked: one that does not exist is an error, not "no machines".
    -q prints ids, one a line; with --json it is a usage error (a -q beats FLY_JSON)."""
    json = quiet_or_json(ctx, quiet=quiet, json=json)
    context = _context(ctx, json)
    out = context.output
    target_app = require_app(app_name)
    region_code = config.validate_region_code(region) if region else None
    states = parse_states(state, completion.LIST_STATES, what="list") if state else None
    client = context.client
    machines = client.machines.list(target_app, region=region_code, state=states)
    if not machines and region_code is not None:
        _require_known_region(client, region_code)
    if quiet:
        for machine in machines:
            out.line(machine.id)
        return
    where = f" in region {region_code}" if region_code else ""
    views.MACHINE.show_list(out, machines, empty=f"No machines in app {target_app}{where}.")


def _require_known_region(client: FlyClient, region: str) -> None:
    """A region filter that matched nothing: a region that does not exist is a usage error
    (the API filters by any string), not "no machines". Asked only then: one call less in
    the common case. A region list that cannot be read leaves the answer as it was."""
    try:
        known = {listed.code for listed in client.platform.regions().regions}
    except FlykError:
        return
    if known and region not in known:
        raise UsageError(
            f"unknown region {region!r}", hint="`flyk regions list` shows the regions."
        )


@app.command("status")
def status(
    ctx: typer.Context,
    machine_id: MachineIdArgument,
    app_name: AppOption = None,
    display_config: Annotated[
        bool, typer.Option("-d", "--display-config", help="Also print the machine's config.")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Show a machine, its recent events and (with -d) its config.

    COMMAND is shell-quoted, as you would type it; METADATA is all of it, flyk's own keys
    (flyk_launch_id, …) included, as --json and flyctl show it."""
    context = _context(ctx, json)
    out = context.output
    target_app = require_app(app_name)
    config.validate_machine_id(machine_id)
    machine = context.client.machines.get(target_app, machine_id)
    events = list(machine.events)
    if json:
        document = views.MACHINE_DETAIL.document(machine)
        document["events"] = [views.EVENT.document(e) for e in events]
        if display_config:
            document["config"] = machine.config.to_api() if machine.config else None
        out.json(document)
        return
    views.MACHINE_DETAIL.show_one(out, machine)
    if events:
        out.line("")
        out.data_table([views.EVENT.row(e) for e in events], views.EVENT.columns)
    if display_config and machine.config is not None:
        out.line("")
        out.json(machine.config.to_api())


# ---------------------------------------------------------------------------------------------
# lifecycle


def _each_leased(
    context: AppContext,
    app_name: str,
    machine_ids: list[str],
    verb: str,
    act: Callable[[FlyClient, str, str], None],
    *,
    done_text: str | None = None,
    refused: dict[str, FlykError] | None = None,
) -> None:
    """Apply ``act(client, machine_id, nonce)`` to each machine under its lease; report on stderr.

    ``refused`` holds machines found unfit before (by id, with their error): each is reported
    as a failure in its turn, never acted on.

    The app and the ids are checked before the client is built: bad input is a usage error
    whatever the target, and never creates the local database.

    With several ids, a machine that fails does not stop the others (as ``kubectl delete a b``
    goes on): each failure is reported when it happens, ``--json`` lists every id with its
    ``error`` (null when done), and the exit code is the first failure's. An error that
    would fail every machine the same way (credentials, network) is not retried on the
    rest: they get it as their error. A single id fails as any command does.

    ``done_text`` says what was done ("Stopped"), when it is not simply the verb's past tense.
    """
    target_app = require_app(app_name)
    # an id given twice is acted on once: its second turn (a destroy's 404) would overwrite
    # the first's outcome and report a machine destroyed as not destroyed
    ids = list(dict.fromkeys(config.validate_machine_id(m) for m in machine_ids))
    client = context.client
    out = context.output
    done_text = done_text or _past(verb).capitalize()
    outcomes: dict[str, FlykError | None] = {}
    for machine_id in ids:
        if (stopper := _stops_everything(outcomes)) is not None:
            outcomes[machine_id] = stopper
            continue
        if refused and machine_id in refused:
            if len(ids) == 1:
                raise refused[machine_id]
            _report_one(context, machine_id, refused[machine_id])
            outcomes[machine_id] = refused[machine_id]
            continue
        try:
            with out.step(f"{verb.capitalize()} machine {machine_id}") as step:
                waiting = partial(_waiting_for_lease, out, step, machine_id)
                with leased(client, target_app, machine_id, f"machine {verb}", waiting) as nonce:
                    act(client, machine_id, nonce)
                step.update(f"{done_text} machine {machine_id}")
        except Interrupted:
            raise
        except FlykError as error:
            if len(ids) == 1:
                raise
            _report_one(context, machine_id, error)
            outcomes[machine_id] = error
            continue
        if not out.progress:
            out.notice(f"{done_text} machine {machine_id}")
        outcomes[machine_id] = None
    _report_all(context, target_app, verb, outcomes)


# errors about the caller or the connection, not the machine: the next machine would get
# the same after its own retries
_EVERY_MACHINE_ERRORS = (AuthError, NetworkError, RateLimitedError, ConfigError)


def _stops_everything(outcomes: dict[str, FlykError | None]) -> FlykError | None:
    return next((e for e in outcomes.values() if isinstance(e, _EVERY_MACHINE_ERRORS)), None)


def _report_one(context: AppContext, machine_id: str, error: FlykError) -> None:
    from flyk.cli.main import display_message

    context.output.error(
        f"machine {machine_id}: {display_message(error)}",
        hint=error.hint,
        request_id=error.request_id,
    )


def _report_all(
    context: AppContext, app_name: str, verb: str, outcomes: dict[str, FlykError | None]
) -> None:
    """The ``--json`` list, then (when some machine failed) a summary and the first failure's
    exit code; each failure was reported on stderr already."""
    from flyk.cli.main import error_document

    out = context.output
    if out.json_mode:
        out.json(
            [
                {
                    "id": machine_id,
                    "action": verb,
                    "app": app_name,
                    "error": None if error is None else error_document(error),
                }
                for machine_id, error in outcomes.items()
            ]
        )
    failed = [machine_id for machine_id, error in outcomes.items() if error is not None]
    if not failed:
        return
    stopper = _stops_everything(outcomes)
    untried = f" ({stopper.message})" if stopper is not None else ""
    out.error(
        f"{len(outcomes) - len(failed)} of {len(outcomes)} machines {_past(verb)}; "
        f"not {_past(verb)}: {', '.join(failed)}{untried}"
    )
    first = next(error for error in outcomes.values() if error is not None)
    raise typer.Exit(first.exit_code)


def _past(verb: str) -> str:
    irregular = {"stop": "stopped", "start": "started", "cordon": "cordoned"}
    return irregular.get(verb, verb + "ed" if not verb.endswith("e") else verb + "d")


@app.command("start")
def start(
    ctx: typer.Context,
    machine_ids: MachineIdsArgument,
    app_name: AppOption = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Return once the start is asked for; do not wait.")
    ] = False,
    wait_timeout: WaitTimeoutOption = DEFAULT_WAIT_TIMEOUT,
    json: JsonOption = False,
) -> None:
    """Start stopped machines and wait until they have started (unless --detach)."""
    context = _context(ctx, json)
    target = require_app(app_name)

    def start_one(client: FlyClient, machine_id: str, nonce: str) -> None:
        client.machines.start(target, machine_id, nonce=nonce)
        if not detach:
            with wait_hint(target, machine_id):
                client.machines.wait(target, machine_id, "started", timeout=wait_timeout)

    _each_leased(
        context,
        target,
        machine_ids,
        "start",
        start_one,
        done_text="Asked to start" if detach else None,
    )


@app.command("stop")
def stop(
    ctx: typer.Context,
    machine_ids: MachineIdsArgument,
    app_name: AppOption = None,
    signal: Annotated[
        str | None,
        typer.Option("-s", "--signal", metavar="SIGNAL", help="Signal to send, e.g. SIGINT."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=0,
            max=MAX_SECONDS,
            metavar="SECONDS",
            help="Seconds before the machine is killed.",
            show_default=False,
        ),
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Return once the stop is asked for; do not wait.")
    ] = False,
    wait_timeout: WaitTimeoutOption = DEFAULT_WAIT_TIMEOUT,
    json: JsonOption = False,
) -> None:
    """Stop running machines and wait until they have stopped (unless --detach)."""
    context = _context(ctx, json)
    target = require_app(app_name)

    def stop_one(client: FlyClient, machine_id: str, nonce: str) -> None:
        client.machines.stop(target, machine_id, signal=signal, timeout=timeout, nonce=nonce)
        if not detach:
            try:
                with wait_hint(target, machine_id):
                    client.machines.wait(target, machine_id, "stopped", timeout=wait_timeout)
            except MachineStateError as error:
                if error.state != "failed":  # failed runs nothing either: what stop asked
                    raise

    _each_leased(
        context,
        target,
        machine_ids,
        "stop",
        stop_one,
        done_text="Asked to stop" if detach else None,
    )


@app.command("restart")
def restart(
    ctx: typer.Context,
    machine_ids: MachineIdsArgument,
    app_name: AppOption = None,
    signal: Annotated[
        str | None, typer.Option("-s", "--signal", metavar="SIGNAL", help="Signal to stop with.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Restart machines."""
    context = _context(ctx, json)
    target = require_app(app_name)

    def restart_one(client: FlyClient, machine_id: str, nonce: str) -> None:
        try:
            client.machines.restart(target, machine_id, signal=signal, nonce=nonce)
        except ConflictError as error:  # 412: not running (stopped, suspended, created)
            if error.details is not None and error.details.status == 412 and error.hint is None:
                error.hint = (
                    "Restart needs a running machine; start it with: "
                    f"flyk machine start {machine_id} -a {target}"
                )
            raise

    _each_leased(context, target, machine_ids, "restart", restart_one)


@app.command("suspend")
def suspend(
    ctx: typer.Context,
    machine_ids: MachineIdsArgument,
    app_name: AppOption = None,
    json: JsonOption = False,
) -> None:
    """Suspend machines (memory snapshot; resume with start)."""
    context = _context(ctx, json)
    target = require_app(app_name)
    _each_leased(
        context, target, machine_ids, "suspend",
        lambda client, mid, nonce: client.machines.suspend(target, mid, nonce=nonce),
    )  # fmt: skip


@app.command("cordon")
def cordon(
    ctx: typer.Context,
    machine_ids: MachineIdsArgument,
    app_name: AppOption = None,
    json: JsonOption = False,
) -> None:
    """Take machines out of the proxy's load balancing."""
    context = _context(ctx, json)
    target = require_app(app_name)
    _each_leased(
        context, target, machine_ids, "cordon",
        lambda client, mid, nonce: client.machines.cordon(target, mid, nonce=nonce),
    )  # fmt: skip


@app.command("uncordon")
def uncordon(
    ctx: typer.Context,
    machine_ids: MachineIdsArgument,
    app_name: AppOption = None,
    json: JsonOption = False,
) -> None:
    """Put cordoned machines back into load balancing."""
    context = _context(ctx, json)
    target = require_app(app_name)
    _each_leased(
        context, target, machine_ids, "uncordon",
        lambda client, mid, nonce: client.machines.uncordon(target, mid, nonce=nonce),
    )  # fmt: skip


@app.command("destroy")
def destroy(
    ctx: typer.Context,
    machine_ids: MachineIdsArgument,
    app_name: AppOption = None,
    force: Annotated[
        bool, typer.Option("-f", "--force", help="Destroy even if it is running (kills it).")
    ] = False,
    yes: YesOption = False,
    json: JsonOption = False,
) -> None:
    """Destroy machines. Not reversible.

    Without --force, each machine is checked first: one still running (or missing) fails
    before any question is asked, and the others are destroyed."""
    context = _context(ctx, json)
    target = require_app(app_name)
    ids = list(dict.fromkeys(config.validate_machine_id(m) for m in machine_ids))
    # what the API would refuse is said before the question (a script without --yes was
    # asked for it, then told "not stopped"); the destroy itself still decides
    refused = {} if force else _refusals_to_destroy(context.client, target, ids)
    if len(ids) == 1 and refused:
        raise refused[ids[0]]
    asked = [machine_id for machine_id in ids if machine_id not in refused]
    question = f"Destroy {len(asked)} machine{'s' if len(asked) > 1 else ''} ({', '.join(asked)})?"
    if asked and not context.output.confirm(question, yes=yes):
        context.output.declined("Nothing destroyed.")

    def destroy_one(client: FlyClient, machine_id: str, nonce: str) -> None:
        try:
            client.machines.destroy(target, machine_id, force=force, nonce=nonce)
        except ConflictError as error:
            if force or "stop" not in error.message.lower():
                raise
            error.hint = (
                f"Stop it first (flyk machine stop {machine_id} -a {target}), "
                "or pass --force to kill it."
            )
            raise

    _each_leased(context, target, ids, "destroy", destroy_one, refused=refused)


# states the API destroys a machine in without --force (it kills nothing)
_DESTROYABLE = frozenset({"created", "stopped", "suspended", "failed", "destroying", "destroyed"})


def _refusals_to_destroy(
    client: FlyClient, app_name: str, machine_ids: list[str]
) -> dict[str, FlykError]:
    """The machines a destroy without --force would fail on, by id, with the error it gets:
    one that does not exist, one still running."""
    refused: dict[str, FlykError] = {}
    for machine_id in machine_ids:
        try:
            machine = client.machines.get(app_name, machine_id)
        except NotFoundError as error:
            refused[machine_id] = error
            continue
        if machine.state is not None and machine.state not in _DESTROYABLE:
            refused[machine_id] = ConflictError(
                f"machine {machine_id} is {machine.state}, not stopped: it cannot be destroyed",
                hint=f"Stop it first (flyk machine stop {machine_id} -a {app_name}), "
                "or pass --force to kill it.",
            )
    return refused


# states an update launches the machine from (the API starts it with the new config)
_LAUNCHED_BY_UPDATE = ("started", "stopped")


@app.command("update")
def update(
    ctx: typer.Context,
    machine_id: MachineIdArgument,
    app_name: AppOption = None,
    image: Annotated[
        str | None, typer.Option("--image", metavar="IMAGE", help="New image.")
    ] = None,
    env: EnvOption = None,
    metadata: MetadataOption = None,
    vm_size: SizeOption = None,
    vm_cpus: CpusOption = None,
    vm_memory: MemoryOption = None,
    vm_cpu_kind: CpuKindOption = None,
    restart: RestartOption = None,
    detach: Annotated[
        bool,
        typer.Option("--detach", help="Return once the change is accepted; do not wait."),
    ] = False,
    wait_timeout: WaitTimeoutOption = DEFAULT_WAIT_TIMEOUT,
    json: JsonOption = False,
) -> None:
    """Change a machine's config (image, env, metadata, size, restart policy).

    The machine then starts with the new config, whether it was running or stopped (the
    Machines API launches it), and flyk waits until it has started unless --detach. Other
    settings are kept as they are.
    """
    context = _context(ctx, json)
    out = context.output
    target = require_app(app_name)
    config.validate_machine_id(machine_id)
    asked = (image, env, metadata, vm_size, vm_cpus, vm_memory, vm_cpu_kind, restart)
    if all(value is None or value == [] for value in asked):
        raise UsageError(
            "nothing to change: give at least one of --image, -e/--env, -m/--metadata, "
            "--vm-size, --vm-cpus, --vm-memory, --vm-cpu-kind, --restart",
            hint=f"Example: flyk machine update {machine_id} -a {target} --image nginx:1.27",
        )
    # bad input is a usage error before any API call (and an empty --image, not a no-op)
    if image is not None:
        require_image(image)
    config.parse_env(env or [])
    config.parse_metadata(metadata or [])
    client = context.client
    with (
        out.step(f"Updating machine {machine_id}") as step,
        leased(
            client,
            target,
            machine_id,
            "machine update",
            partial(_waiting_for_lease, out, step, machine_id),
        ) as nonce,
    ):
        current = client.machines.get(target, machine_id)
        new_config = _updated_config(
            current,
            image=image,
            env=env,
            metadata=metadata,
            guest=build_guest(
                current.config.guest if current.config else None,
                size=vm_size,
                cpus=vm_cpus,
                memory=vm_memory,
                cpu_kind=vm_cpu_kind,
            ),
            restart=restart,
        )
        machine = client.machines.update(
            target, machine_id, new_config, nonce=nonce, current_version=current.version
        )
        if not detach and current.state in _LAUNCHED_BY_UPDATE:
            step.update(f"Waiting for machine {machine_id} to start")
            with wait_hint(target, machine_id):
                client.machines.wait(
                    target, machine_id, "started", version=machine.version, timeout=wait_timeout
                )
        step.update(f"Updated machine {machine_id}")
    if not out.progress:  # as the lifecycle commands say what they did
        out.notice(f"Updated machine {machine_id}")
    machine = client.machines.get(target, machine_id)
    views.MACHINE.show_one(out, machine)


def _updated_config(
    current: Machine,
    *,
    image: str | None,
    env: list[str] | None,
    metadata: list[str] | None,
    guest: GuestConfig | None,
    restart: RestartPolicy | None,
) -> MachineConfig:
    """The current config with the asked-for changes; fields flyk does not model survive."""
    from dataclasses import replace

    from flyk.api import MachineConfig, RestartConfig

    base = current.config or MachineConfig()
    changes: dict[str, object] = {}
    if image is not None:
        changes["image"] = image
    if env:
        changes["env"] = {**base.env, **config.parse_env(env)}
    if metadata:
        changes["metadata"] = {**base.metadata, **config.parse_metadata(metadata)}
    if guest is not None:
        changes["guest"] = guest
    if restart is not None:
        changes["restart"] = replace(base.restart or RestartConfig(), policy=restart.value)
    return replace(base, **changes)  # type: ignore[arg-type]


@app.command("wait")
def wait(
    ctx: typer.Context,
    machine_id: MachineIdArgument,
    app_name: AppOption = None,
    state: Annotated[
        str,
        typer.Option(
            "--state",
            metavar="STATES",
            help="State(s) to wait for, comma-separated.",
            autocompletion=completion.complete_wait_states,
        ),
    ] = "started",
    wait_timeout: WaitTimeoutOption = DEFAULT_WAIT_TIMEOUT,
    json: JsonOption = False,
) -> None:
    """Wait until a machine reaches a state (started, stopped, suspended, destroyed, failed,
    or settled: any state it rests in)."""
    context = _context(ctx, json)
    out = context.output
    target = require_app(app_name)
    config.validate_machine_id(machine_id)
    states = parse_states(state, completion.WAIT_STATES, what="wait for")
    with out.step(f"Waiting for machine {machine_id} to reach {' or '.join(states)}") as step:
        with wait_hint(target, machine_id):
            reached = context.client.machines.wait(target, machine_id, states, timeout=wait_timeout)
        step.update(f"Machine {machine_id} is {reached}")
    out.emit({"id": machine_id, "state": reached}, lambda: out.line(reached))


@app.command("exec")
def exec_command(
    ctx: typer.Context,
    machine_id: MachineIdArgument,
    command: Annotated[
        list[str],
        typer.Argument(
            metavar="COMMAND", help="Command and arguments, after `--`.", show_default=False
        ),
    ],
    app_name: AppOption = None,
    timeout: Annotated[
        int | None,
        typer.Option(
            "--timeout",
            min=0,
            max=MAX_SECONDS,
            metavar="SECONDS",
            help="Seconds the command may run.",
        ),
    ] = None,
    no_stdin: Annotated[
        bool,
        typer.Option(
            "-n",
            "--no-stdin",
            help="Do not send stdin to the command (it is sent when not a terminal).",
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Run a command in a machine and print its output; exits with the command's exit code.

    Standard input that is not a terminal (a pipe, a file) is read to its end and given to
    the command, as ssh does: echo hi | flyk machine exec ID -- cat.

    Example: flyk machine exec 148e21ea7d5789 -a web -- hostname
    """
    context = _context(ctx, json)
    out = context.output
    target = require_app(app_name)
    config.validate_machine_id(machine_id)
    stdin = None if no_stdin else _piped_stdin()
    try:
        result = context.client.machines.exec(
            target, machine_id, command, timeout=timeout, stdin=stdin
        )
    except ConflictError as error:  # 412: the machine is not started
        if error.details is not None and error.details.status == 412 and error.hint is None:
            error.hint = f"Start it first: flyk machine start {machine_id} -a {target}"
        raise
    if json:
        out.json({"stdout": result.stdout, "stderr": result.stderr, "exit_code": result.exit_code})
    else:
        if result.stdout:
            out.stdout.write(result.stdout)
        if result.stderr:
            out.stderr.write(result.stderr)
    if result.exit_code:  # with --json too: scripts check $? before they parse
        raise typer.Exit(result.exit_code)


def _piped_stdin() -> str | None:
    """What a pipe or a file on stdin holds (None at a terminal, or when it is empty): the
    Machines API's exec takes the command's input as one string, so it is read whole."""
    import sys

    stream = sys.stdin
    if stream is None or stream.isatty():
        return None
    raw = stream.buffer.read() if hasattr(stream, "buffer") else stream.read().encode()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(
            f"stdin is not UTF-8 text (byte {error.start}): the Machines API's exec takes text",
            hint="Pass -n/--no-stdin to send none.",
        ) from None
    return text or None


# ---------------------------------------------------------------------------------------------
# leases


def _lease_of_existing(client: FlyClient, app_name: str, machine_id: str) -> Lease | None:
    """The machine's lease, or None when it has none; NotFoundError when there is no such
    machine (the lease endpoint answers 404 for both, and "not leased" would be a lie)."""
    lease = client.machines.get_lease(app_name, machine_id)
    if lease is None:
        client.machines.get(app_name, machine_id)
    return lease


@leases.command("view")
def lease_view(
    ctx: typer.Context,
    machine_id: MachineIdArgument,
    app_name: AppOption = None,
    json: JsonOption = False,
) -> None:
    """Show who holds a machine's lease, if anyone."""
    context = _context(ctx, json)
    out = context.output
    target = require_app(app_name)
    config.validate_machine_id(machine_id)
    lease = _lease_of_existing(context.client, target, machine_id)
    if lease is None:
        unleased = {"id": machine_id, "leased": False, **dict.fromkeys(views.LEASE.keys)}
        out.emit(unleased, lambda: out.notice(f"Machine {machine_id} is not leased."))
        return
    document = {"id": machine_id, "leased": True, **views.LEASE.document(lease)}
    out.emit(document, lambda: views.LEASE.show_one(out, lease))


@leases.command("clear")
def lease_clear(
    ctx: typer.Context,
    machine_id: MachineIdArgument,
    app_name: AppOption = None,
    yes: YesOption = False,
    json: JsonOption = False,
) -> None:
    """Release a machine's lease, whoever holds it (it may interrupt their work)."""
    context = _context(ctx, json)
    out = context.output
    target = require_app(app_name)
    config.validate_machine_id(machine_id)
    client = context.client
    lease = _lease_of_existing(client, target, machine_id)
    if lease is None:
        out.emit({"id": machine_id, "cleared": False}, lambda: out.notice("No lease to clear."))
        return
    holder = lease.owner or "someone"
    if not out.confirm(f"Clear the lease {holder} holds on machine {machine_id}?", yes=yes):
        out.declined("Lease left in place.")
    client.machines.release_lease(target, machine_id, lease.nonce)
    out.emit(
        {"id": machine_id, "cleared": True},
        lambda: out.success(f"Cleared the lease on machine {machine_id}"),
    )
