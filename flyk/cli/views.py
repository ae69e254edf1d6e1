"""How each kind of object looks on stdout: its table columns and its ``--json`` keys.

One ``View`` per kind keeps the two in step, and ``docs/cli.md`` lists the JSON keys from
here, so the documented keys are the printed keys. JSON keys are a contract with scripts:
add keys freely, never rename or remove one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from flyk.api.models import (
        App,
        GuestConfig,
        Lease,
        Machine,
        MachineEvent,
        Region,
        TokenInfo,
        Volume,
    )
    from flyk.cli.output import Output

T = TypeVar("T")


@dataclass(frozen=True)
class Field(Generic[T]):
    key: str  # the JSON key
    get: Callable[[T], object]
    header: str | None = None  # the table column; None: JSON only
    doc: str = ""
    # what the table shows when it is not the JSON value (people need not see bookkeeping)
    shown: Callable[[T], object] | None = None

    def cell(self, item: T) -> object:
        return (self.shown or self.get)(item)


@dataclass(frozen=True)
class View(Generic[T]):
    name: str
    fields: tuple[Field[T], ...]

    @property
    def columns(self) -> list[str]:
        return [f.header for f in self.fields if f.header]

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.fields]

    def row(self, item: T) -> list[object]:
        return [f.cell(item) for f in self.fields if f.header]

    def document(self, item: T) -> dict[str, object]:
        return {f.key: f.get(item) for f in self.fields}

    def show_list(self, out: Output, items: Iterable[T], *, empty: str) -> None:
        items = list(items)
        out.emit(
            [self.document(i) for i in items],
            lambda: out.data_table([self.row(i) for i in items], self.columns, empty=empty),
        )

    def show_one(self, out: Output, item: T) -> None:
        out.emit(
            self.document(item),
            lambda: out.detail([(f.header, f.cell(item)) for f in self.fields if f.header]),
        )


def size_name(guest: GuestConfig | None) -> str | None:
    """flyctl's spelling of a size: ``shared-cpu-1x:256MB``."""
    if guest is None or guest.cpus is None:
        return None
    prefix = "shared-cpu" if (guest.cpu_kind or "shared") == "shared" else "performance"
    return f"{prefix}-{guest.cpus}x:{guest.memory_mb}MB"


def _guest(machine: Machine) -> GuestConfig | None:
    return machine.config.guest if machine.config else None


def _guest_document(machine: Machine) -> dict[str, Any] | None:
    guest = _guest(machine)
    if guest is None:
        return None
    return {"cpu_kind": guest.cpu_kind, "cpus": guest.cpus, "memory_mb": guest.memory_mb}


def _image(machine: Machine) -> str | None:
    return machine.config.image if machine.config else None


def _command(machine: Machine) -> list[str]:
    init = machine.config.init if machine.config else None
    return [*init.entrypoint, *init.cmd] if init else []


def _restart(machine: Machine) -> str | None:
    restart = machine.config.restart if machine.config else None
    return restart.policy if restart else None


def _metadata(machine: Machine) -> dict[str, str]:
    return dict(machine.metadata)


def _command_line(machine: Machine) -> str:
    """The command as a shell would take it back: `echo 'hi there'`, not `echo,hi there`."""
    import shlex

    return shlex.join(_command(machine))


def _env(machine: Machine) -> dict[str, str]:
    return dict(machine.config.env) if machine.config else {}


def _checks(machine: Machine) -> str | None:
    if not machine.checks:
        return None
    passing = sum(1 for c in machine.checks if c.status == "passing")
    return f"{passing}/{len(machine.checks)}"


def _iso_from_ms(milliseconds: int | None) -> str | None:
    """Epoch milliseconds as the API's other times are written: ``2026-01-02T03:04:05Z``."""
    if milliseconds is None:
        return None
    import datetime

    moment = datetime.datetime.fromtimestamp(milliseconds / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _lease_expiry(lease: Lease) -> str | None:
    return _iso_from_ms(lease.expires_at * 1000) if lease.expires_at is not None else None


APP: View[App] = View(
    "app",
    (
        Field("name", lambda a: a.name, "NAME", "app name"),
        Field("org", lambda a: a.org_slug, "ORG", "organization slug"),
        Field("status", lambda a: a.status, "STATUS", "app status"),
        Field("network", lambda a: a.network, "NETWORK", "private network name"),
        Field("machine_count", lambda a: a.machine_count, "MACHINES", "number of machines"),
        Field("volume_count", lambda a: a.volume_count, "VOLUMES", "number of volumes"),
        Field("id", lambda a: a.id, None, "API id of the app"),
    ),
)

MACHINE: View[Machine] = View(
    "machine",
    (
        Field("id", lambda m: m.id, "ID", "machine id"),
        Field("name", lambda m: m.name, "NAME", "machine name"),
        Field("state", lambda m: m.state, "STATE", "created, started, stopped, …"),
        Field("region", lambda m: m.region, "REGION", "region code"),
        Field("image", _image, "IMAGE", "image reference"),
        Field("size", lambda m: size_name(_guest(m)), "SIZE", "e.g. shared-cpu-1x:256MB"),
        Field("private_ip", lambda m: m.private_ip, "PRIVATE IP", "6PN address"),
        Field("checks", _checks, "CHECKS", "passing/total health checks (1/1), null when none"),
        Field("guest", _guest_document, None, "{cpu_kind, cpus, memory_mb}"),
        Field("command", _command, None, "entrypoint and cmd"),
        Field("restart", _restart, None, "restart policy"),
        Field("env", _env, None, "environment"),
        Field("metadata", _metadata, None, "machine metadata"),
        Field("version", lambda m: m.version, None, "current version (instance id)"),
        Field("created_at", lambda m: m.created_at, "CREATED", "creation time"),
        Field("updated_at", lambda m: m.updated_at, None, "last update time"),
    ),
)

MACHINE_DETAIL: View[Machine] = View(
    "machine (status)",
    (
        *MACHINE.fields[:5],
        Field("size", lambda m: size_name(_guest(m)), "SIZE"),
        Field("private_ip", lambda m: m.private_ip, "PRIVATE IP"),
        Field("checks", _checks, "CHECKS"),
        Field("guest", _guest_document),
        Field("command", _command, "COMMAND", shown=_command_line),
        Field("restart", _restart, "RESTART"),
        Field("env", _env, None),
        # all of it, flyk's own keys too, as --json and flyctl's `machine status` show it
        Field("metadata", _metadata, "METADATA"),
        Field("version", lambda m: m.version, "VERSION"),
        Field("created_at", lambda m: m.created_at, "CREATED"),
        Field("updated_at", lambda m: m.updated_at, "UPDATED"),
    ),
)

EVENT: View[MachineEvent] = View(
    "machine event",
    (
        Field("type", lambda e: e.type, "TYPE"),
        Field("status", lambda e: e.status, "STATUS"),
        Field("source", lambda e: e.source, "SOURCE"),
        Field("time", lambda e: _iso_from_ms(e.timestamp), "TIME", "ISO 8601 time, UTC"),
        Field("timestamp", lambda e: e.timestamp, None, "milliseconds since the epoch"),
    ),
)

VOLUME: View[Volume] = View(
    "volume",
    (
        Field("id", lambda v: v.id, "ID", "volume id"),
        Field("name", lambda v: v.name, "NAME", "volume name"),
        Field("state", lambda v: v.state, "STATE", "created, …"),
        Field("size_gb", lambda v: v.size_gb, "SIZE GB", "size in GB"),
        Field("region", lambda v: v.region, "REGION", "region code"),
        Field("zone", lambda v: v.zone, "ZONE", "hardware zone"),
        Field("encrypted", lambda v: v.encrypted, "ENCRYPTED", "true when encrypted"),
        Field("attached_machine_id", lambda v: v.attached_machine_id, "ATTACHED TO", "machine"),
        Field("created_at", lambda v: v.created_at, "CREATED", "creation time"),
    ),
)

REGION: View[Region] = View(
    "region",
    (
        Field("code", lambda r: r.code, "CODE", "region code"),
        Field("name", lambda r: r.name, "NAME", "city"),
        Field("gateway_available", lambda r: r.gateway_available, "GATEWAY", "WireGuard gateway"),
        Field("requires_paid_plan", lambda r: r.requires_paid_plan, "PAID ONLY", "paid plans only"),
        Field(
            "capacity",
            lambda r: r.capacity,
            "CAPACITY",
            "how many more shared-cpu-1x machines fit now; null when not reported",
        ),
        Field("deprecated", lambda r: r.deprecated, None, "being retired"),
    ),
)

LEASE: View[Lease] = View(
    "lease",
    (
        Field("owner", lambda lease: lease.owner, "OWNER", "who holds it"),
        Field("description", lambda lease: lease.description, "DESCRIPTION", "why"),
        Field("expires_at", lambda lease: lease.expires_at, None, "Unix seconds"),
        Field("expires", _lease_expiry, "EXPIRES", "ISO 8601 time, UTC"),
        Field("version", lambda lease: lease.version, "VERSION", "machine version at acquire"),
    ),
)


def token_document(info: TokenInfo, *, source: str | None, target: str) -> dict[str, Any]:
    return {
        "target": target,
        "source": source,
        "orgs": info.org_slugs,
        "tokens": [
            {
                "token_id": t.token_id,
                "org": t.org_slug,
                "user": t.user,
                "apps": list(t.apps),
                "restricted_to_machine": t.restricted_to_machine,
            }
            for t in info.tokens
        ],
    }


# docs/cli.md: every JSON shape a command prints, by view name
ALL_VIEWS: Sequence[View[Any]] = (APP, MACHINE, VOLUME, REGION, LEASE, EVENT)
EXTRA_SHAPES: Mapping[str, Sequence[tuple[str, str]]] = {
    "token (auth whoami)": (
        ("target", "the API flyk talks to, as the table's Target line says"),
        ("source", "where the token came from (never the token)"),
        ("orgs", "organization slugs the token grants"),
        ("tokens", "[{token_id, org, user, apps, restricted_to_machine}]"),
    ),
    "machine run": (
        ("id", "machine id"),
        ("name", "machine name"),
        (
            "state",
            "state after the wait (started); with --detach, the state when the API answered "
            "(created, starting, …)",
        ),
        ("region", "region code"),
        ("private_ip", "6PN address"),
        ("…", "every key of the machine shape"),
    ),
    "exec (machine exec)": (
        ("stdout", "captured output"),
        ("stderr", "captured errors"),
        ("exit_code", "the command's exit code"),
    ),
    "machine status": (
        ("…", "every key of the machine shape"),
        ("events", "[machine event], newest first"),
        ("config", "with -d/--display-config: the machine's config as the API returns it"),
    ),
    "machine start, stop, restart, suspend, cordon, uncordon, destroy": (
        ("[].id", "machine id, one object per machine given"),
        ("[].action", "the command: start, stop, …, destroy"),
        ("[].app", "app name"),
        (
            "[].error",
            "null when done, else the error document; with several ids a failure does not "
            "stop the rest, and the exit code is the first failure's",
        ),
    ),
    "machine wait": (
        ("id", "machine id"),
        ("state", "the state reached"),
    ),
    "machine leases view": (
        ("id", "machine id"),
        ("leased", "true when someone holds the lease"),
        ("…", "every key of the lease shape (null when not leased)"),
    ),
    "machine leases clear": (
        ("id", "machine id"),
        ("cleared", "false when there was no lease to clear"),
    ),
    "apps destroy": (
        ("name", "app name"),
        ("destroyed", "true"),
    ),
    "volumes extend": (
        ("…", "every key of the volume shape, after the extend"),
        ("needs_restart", "true when the attached machine must restart to use the new size"),
    ),
    "volumes destroy": (
        ("id", "volume id"),
        ("destroyed", "true"),
    ),
    "auth login": (("stored_in", "the config file the token was stored in"),),
    "auth logout": (("removed_from", "the config file the token was removed from, or null"),),
    "auth token": (
        ("token", "the token (a secret)"),
        ("source", "where it came from"),
    ),
    "local serve": (
        ("url", "the base URL to put in FLY_FLAPS_BASE_URL"),
        ("data", "the database file"),
    ),
    "local status": (
        ("data", "the database file"),
        ("exists", "false until something was stored"),
        ("size_bytes", "its size"),
        ("apps", "number of apps in the personal org"),
        (
            "processes",
            "machines run for real (control planes): machine_id, app, pid, running, log, ports",
        ),
    ),
    "local reset": (
        ("data", "the database file"),
        ("reset", "true"),
    ),
    "version": (("version", "flyk's version"),),
    "error (any command with --json that fails)": (
        ("error.type", "exception class, e.g. NotFoundError"),
        ("error.message", "one-line message, as stderr shows it (no API code prefix)"),
        ("error.hint", "what to do next, or null"),
        ("error.exit_code", "the process exit code"),
        ("error.request_id", "the API's request id, or null"),
        ("error.status", "HTTP status, or null"),
        (
            "error.code",
            "the API's own code (e.g. insufficient_capacity, or not_found from a message's "
            "prefix), or null",
        ),
    ),
}
