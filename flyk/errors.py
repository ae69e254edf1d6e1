"""The one exception tree of flyk. Every error knows its exit code; only the CLI turns it into one.

    FlykError ............................ 1  anything flyk did not expect to go wrong
    ├── UsageError ....................... 2  bad input caught by flyk, before or instead of a call
    │   ├── ConfigError .................. 2  an unreadable or malformed config file or kubeconfig
    │   └── InvalidRequestError .......... 2  the API refused the request as invalid (400, 422)
    ├── NotFoundError .................... 3  no such app, machine, volume or cluster (404)
    ├── AuthError ........................ 4  no token for a remote target, or the token was refused
    │   ├── UnauthorizedError ............ 4  401
    │   └── ForbiddenError ............... 4  403
    ├── ConflictError .................... 5  someone else holds it or it moved on (409)
    │   ├── LeaseHeldError ............... 5  the machine is leased by someone else
    │   ├── AlreadyExistsError ........... 5  a create found the thing already there
    │   └── PreconditionFailedError ...... 5  412: a version or volume precondition failed
    ├── WaitTimeoutError ................. 6  a wait (or the API's own 408) outlasted its deadline
    ├── MachineStateError ............... 10  a wait ended: the machine failed or stopped for good
    ├── RateLimitedError ................. 7  still rate limited (429) after the retries
    ├── CapacityError .................... 8  the region cannot take the machine or volume now
    ├── NetworkError ..................... 9  the API could not be reached
    ├── ServerError ...................... 1  5xx after the retries
    └── Interrupted ................... 130  Ctrl-C; whatever was held has been released

Errors raised from an API response carry `ApiDetails` (status, request id, method, URL, the
API's own status code such as `insufficient_capacity`), so that the CLI can print the request
id and scripts can read it from `--json` error output.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ApiDetails:
    """What the Machines API said when it refused a call."""

    status: int
    method: str
    url: str
    request_id: str | None = None
    code: str | None = None  # the body's "status" field, e.g. "insufficient_capacity"
    body: str = ""


class FlykError(Exception):
    """Base of every error flyk raises on purpose."""

    exit_code: int = 1

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        details: ApiDetails | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    @property
    def request_id(self) -> str | None:
        return self.details.request_id if self.details else None


class UsageError(FlykError):
    exit_code = 2


class ConfigError(UsageError):
    """A config file or kubeconfig flyk must read is unreadable or malformed; never rewritten."""


class InvalidRequestError(UsageError):
    pass


class NotFoundError(FlykError):
    exit_code = 3


class AuthError(FlykError):
    exit_code = 4


class UnauthorizedError(AuthError):
    pass


class ForbiddenError(AuthError):
    pass


class ConflictError(FlykError):
    exit_code = 5


class LeaseHeldError(ConflictError):
    pass


class AlreadyExistsError(ConflictError):
    pass


class PreconditionFailedError(ConflictError):
    pass


class WaitTimeoutError(FlykError):
    exit_code = 6


class MachineStateError(FlykError):
    """A wait gave up early: the machine came to rest in a state it does not leave by itself
    (failed, destroyed, or stopped with no restart coming), not in the one waited for."""

    exit_code = 10

    def __init__(
        self,
        message: str,
        *,
        state: str,
        machine_exit_code: int | None = None,
        hint: str | None = None,
        details: ApiDetails | None = None,
    ) -> None:
        super().__init__(message, hint=hint, details=details)
        self.state = state
        self.machine_exit_code = machine_exit_code  # the workload's, from its last exit event


class RateLimitedError(FlykError):
    exit_code = 7


class CapacityError(FlykError):
    """A region has no room. Placement is the user's: flyk says so and names alternatives."""

    exit_code = 8

    def __init__(
        self,
        message: str,
        *,
        region: str | None = None,
        alternatives: tuple[str, ...] = (),
        hint: str | None = None,
        details: ApiDetails | None = None,
    ) -> None:
        super().__init__(message, hint=hint, details=details)
        self.region = region
        self.alternatives = alternatives


class NetworkError(FlykError):
    exit_code = 9


class ServerError(FlykError):
    exit_code = 1


class Interrupted(FlykError):
    exit_code = 130


@dataclass(frozen=True)
class ExitCode:
    code: int
    meaning: str
    errors: tuple[str, ...] = field(default=())


def exit_code_table() -> list[ExitCode]:
    """The documented exit codes, derived from the tree above (docs and tests read this)."""
    rows: dict[int, list[str]] = {}
    stack: list[type[FlykError]] = [FlykError]
    while stack:
        cls = stack.pop()
        rows.setdefault(cls.exit_code, []).append(cls.__name__)
        stack.extend(cls.__subclasses__())
    meanings = {
        1: "unexpected error, or the API failed (5xx) after retries",
        2: "bad input: invalid arguments, names, sizes, config files; the API refused the request",
        3: "not found",
        4: "no token for a remote target, or the token was refused",
        5: "conflict: leased by someone else, version moved on, already exists",
        6: "timed out waiting",
        7: "rate limited after retries",
        8: "no capacity in the requested region",
        9: "the API could not be reached",
        10: "a wait ended early: the machine failed, or stopped and will not restart",
        130: "interrupted (Ctrl-C): held leases released, what was left said on stderr",
    }
    return [
        ExitCode(0, "success"),
        *(
            ExitCode(code, meanings[code], tuple(sorted(names)))
            for code, names in sorted(rows.items())
        ),
    ]
