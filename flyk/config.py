"""Settings: where flyk talks to, with which token, and where it keeps its files.

Token resolution, first found wins (flyctl's sources, with the explicit ones first):

1. ``--access-token`` (``-t``)
2. ``FLY_ACCESS_TOKEN``, then ``FLY_API_TOKEN`` (flyctl's order when both are set)
3. flyk's own config file, written by ``flyk auth login``
   (``<platformdirs config dir>/flyk/config.yml``, key ``access_token``, mode 0600)
4. flyctl's ``~/.fly/config.yml`` (``FLY_CONFIG_DIR`` replaces ``~/.fly``), key ``access_token``

Target resolution:

- ``--local`` → the embedded local backend, whatever else is set.
- a token → the Machines API at ``FLY_FLAPS_BASE_URL``, else ``FLY_API_HOSTNAME``, else
  ``https://api.machines.dev``.
- no token and a loopback base URL (``flyk local serve`` prints one) → that URL, unauthenticated.
- no token and a non-loopback base URL → ``AuthError`` when a call is made: flyk never sends
  a remote API's requests without credentials, and never silently swaps the URL the user gave
  for the local backend.
- no token at all → the embedded local backend (state in ``FLYK_LOCAL_DB``, else
  ``<platformdirs data dir>/flyk/local.db``), announced on stderr by the CLI.

Also here, because both the CLI and scripts need them without Typer: validation of Fly's
names and ids and parsing of ``KEY=VALUE`` arguments.

Heavy modules (yaml, platformdirs, filelock) are imported inside functions: this module is
on the path of every shell TAB completion.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from flyk.errors import AuthError, ConfigError, UsageError

APP_NAME = "flyk"
DEFAULT_API_URL = "https://api.machines.dev"
CONFIG_FILE_NAME = "config.yml"
LOCAL_DB_NAME = "local.db"
TOKEN_KEY = "access_token"


class EnvVar:
    """Every environment variable flyk reads, in one place (docs/cli.md lists them)."""

    ACCESS_TOKEN = "FLY_ACCESS_TOKEN"
    API_TOKEN = "FLY_API_TOKEN"
    FLAPS_BASE_URL = "FLY_FLAPS_BASE_URL"
    API_HOSTNAME = "FLY_API_HOSTNAME"
    FLY_CONFIG_DIR = "FLY_CONFIG_DIR"
    LOCAL_DB = "FLYK_LOCAL_DB"
    LEASE_WAIT = "FLYK_LEASE_WAIT"
    APP = "FLY_APP"
    ORG = "FLY_ORG"
    REGION = "FLY_REGION"
    JSON = "FLY_JSON"
    NO_COLOR = "NO_COLOR"


# ---------------------------------------------------------------------------------------------
# paths


def flyk_config_dir() -> Path:
    from platformdirs import user_config_path

    return user_config_path(APP_NAME, appauthor=False)


def flyk_config_file() -> Path:
    return flyk_config_dir() / CONFIG_FILE_NAME


def flyctl_config_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get(EnvVar.FLY_CONFIG_DIR) or str(Path.home() / ".fly")
    return Path(base).expanduser() / CONFIG_FILE_NAME


def local_db_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the embedded backend keeps its state (``flyk.local`` uses the same default)."""
    env = os.environ if env is None else env
    override = env.get(EnvVar.LOCAL_DB)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False) / LOCAL_DB_NAME


DEFAULT_LEASE_WAIT_SECONDS = 30.0


def lease_wait_seconds(env: Mapping[str, str] | None = None) -> float:
    """How long a command waits for a machine lease someone else holds (FLYK_LEASE_WAIT)."""
    env = os.environ if env is None else env
    text = env.get(EnvVar.LEASE_WAIT, "").strip()
    if not text:
        return DEFAULT_LEASE_WAIT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ConfigError(
            f"{EnvVar.LEASE_WAIT}={text!r} is not a number of seconds",
            hint=f"Set {EnvVar.LEASE_WAIT} to 0 or more (0: fail at once if the lease is held).",
        )
    return seconds


# ---------------------------------------------------------------------------------------------
# config files


def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML mapping, ``{}`` when the file is absent; ``ConfigError`` when it is not readable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
            f"{exc.start})",
            hint="Fix or remove the file; flyk does not overwrite a file it cannot read.",
        ) from exc
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(
            f"{path} is not valid YAML{where}",
            hint="Fix or remove the file; flyk does not overwrite a file it cannot read.",
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} is not a YAML mapping",
            hint="Fix or remove the file; flyk does not overwrite a file it cannot read.",
        )
    return data


def update_config_file(path: Path, changes: Mapping[str, Any | None]) -> None:
    """Read-modify-write under a lock: set keys (``None`` removes one), keep all others.

    The file is replaced atomically and is readable only by its owner (it holds a token).
    A file that cannot be parsed is left alone and reported, never overwritten.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _directory_lock(path.parent):
        data = read_config_file(path)
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        _write_private(path, _dump_yaml(data))


LOCK_TIMEOUT = 10.0  # seconds to wait for another flyk writing the same config


@contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` itself, so that no lock file is left beside
    the config (POSIX ``flock`` on the directory; elsewhere a lock file removed afterwards)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None  # type: ignore[assignment]
    if fcntl is None:
        from filelock import FileLock

        lock_file = directory / ".flyk-config.lock"
        with FileLock(str(lock_file), timeout=LOCK_TIMEOUT):
            yield
        lock_file.unlink(missing_ok=True)
        return
    import time

    fd = os.open(directory, os.O_RDONLY)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"{directory} is locked by another flyk for over {LOCK_TIMEOUT:g} s",
                        hint="Retry once the other flyk command has finished.",
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _dump_yaml(data: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(data), default_flow_style=False, sort_keys=True)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 (the temp file is never wider)."""
    import tempfile

    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# tokens


class TokenSource(StrEnum):
    FLAG = "--access-token"
    ACCESS_TOKEN_ENV = EnvVar.ACCESS_TOKEN
    API_TOKEN_ENV = EnvVar.API_TOKEN
    FLYK_CONFIG = "flyk config file"
    FLYCTL_CONFIG = "flyctl config file"


@dataclass(frozen=True)
class Token:
    """A credential and where it came from. Its repr never shows the value."""

    value: str = field(repr=False)
    source: TokenSource
    path: Path | None = None  # the file it was read from, for config-file sources

    def describe_source(self) -> str:
        return f"{self.source.value} ({self.path})" if self.path else self.source.value


def _clean_token(raw: object) -> str | None:
    if not isinstance(raw, str):
        return None
    token = raw.strip()
    return token or None


def resolve_token(
    flag_token: str | None = None, env: Mapping[str, str] | None = None
) -> Token | None:
    """The first token found in the documented order, or None."""
    env = os.environ if env is None else env
    if value := _clean_token(flag_token):
        return Token(value, TokenSource.FLAG)
    for name, source in (
        (EnvVar.ACCESS_TOKEN, TokenSource.ACCESS_TOKEN_ENV),
        (EnvVar.API_TOKEN, TokenSource.API_TOKEN_ENV),
    ):
        if value := _clean_token(env.get(name)):
            return Token(value, source)
    for path, source in (
        (flyk_config_file(), TokenSource.FLYK_CONFIG),
        (flyctl_config_file(env), TokenSource.FLYCTL_CONFIG),
    ):
        if value := _clean_token(read_config_file(path).get(TOKEN_KEY)):
            return Token(value, source, path)
    return None


# what is left of a pasted "Authorization: Bearer " without its token (the client strips
# these schemes and would send no credentials at all)
_ONLY_SCHEMES = re.compile(r"(?:(?:bearer|flyv1)\s*)+", re.IGNORECASE)


def store_token(token: str) -> Path:
    """Save a token for later runs (``flyk auth login``); returns the file written."""
    value = _clean_token(token)
    if value is None or _ONLY_SCHEMES.fullmatch(value):
        raise UsageError("the token is empty", hint="Paste a token from `fly tokens create`.")
    path = flyk_config_file()
    update_config_file(path, {TOKEN_KEY: value})
    return path


def forget_token() -> Path | None:
    """Remove the stored token (``flyk auth logout``); returns the file changed, if any."""
    path = flyk_config_file()
    if TOKEN_KEY not in read_config_file(path):
        return None
    update_config_file(path, {TOKEN_KEY: None})
    return path


# ---------------------------------------------------------------------------------------------
# targets


class TargetKind(StrEnum):
    FLY = "fly"  # a Machines API over the network (Fly.io or any compatible URL)
    LOCAL = "local"  # the embedded backend, in-process


@dataclass(frozen=True)
class Target:
    """Which Machines API a command talks to."""

    kind: TargetKind
    base_url: str | None = None  # for FLY
    token: Token | None = None  # for FLY; None only for loopback URLs
    local_db: Path | None = None  # for LOCAL
    implicit: bool = False  # LOCAL chosen because no token was found (announced on stderr)

    @property
    def is_local(self) -> bool:
        return self.kind is TargetKind.LOCAL

    def describe(self) -> str:
        if self.is_local:
            return f"the local backend ({self.local_db})"
        return self.base_url or DEFAULT_API_URL

    def require_token(self) -> Token | None:
        """The token to send; ``AuthError`` when a remote, non-loopback target has none."""
        if self.is_local or self.token is not None or is_loopback_url(self.base_url or ""):
            return self.token
        raise AuthError(
            f"no Fly.io token for {self.base_url}",
            hint="Run `flyk auth login`, set FLY_API_TOKEN, or pass --access-token "
            "(or use --local for the embedded backend).",
        )


def is_loopback_url(url: str) -> bool:
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    return host in {"localhost", "::1"} or host.startswith("127.")


def api_base_url(env: Mapping[str, str] | None = None) -> str | None:
    """The base URL the environment asks for, or None for the default."""
    env = os.environ if env is None else env
    for name in (EnvVar.FLAPS_BASE_URL, EnvVar.API_HOSTNAME):
        if value := (env.get(name) or "").strip():
            return _checked_url(name, value if "://" in value else f"https://{value}")
    return None


def _checked_url(name: str, url: str) -> str:
    """The URL when it is http(s)://host[:port][/path]; else ConfigError naming the variable.

    Checked here, before anything parses it: a bracket or a port that is not one would
    otherwise surface as an unexpected ValueError deep inside a command."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (reading the port is the check: it raises when it is not one)
    except ValueError as exc:
        problem = str(exc)
    else:
        if parts.scheme.lower() not in {"http", "https"}:
            problem = f"the scheme must be http or https, not {parts.scheme!r}"
        elif not parts.hostname:
            problem = "it names no host"
        else:
            return url
    raise ConfigError(
        f"invalid {name} {url!r}: {problem}",
        hint="Use a URL such as https://api.machines.dev or http://127.0.0.1:4280.",
    )


def resolve_target(
    *,
    access_token: str | None = None,
    force_local: bool = False,
    env: Mapping[str, str] | None = None,
) -> Target:
    env = os.environ if env is None else env
    if force_local:
        return Target(TargetKind.LOCAL, local_db=local_db_path(env))
    token = resolve_token(access_token, env)
    base_url = api_base_url(env)
    if token is None and base_url is None:
        return Target(TargetKind.LOCAL, local_db=local_db_path(env), implicit=True)
    return Target(TargetKind.FLY, base_url=base_url or DEFAULT_API_URL, token=token)


# ---------------------------------------------------------------------------------------------
# validation of names, ids and KEY=VALUE arguments (shared by the CLI and library callers)

# Fly app names are DNS labels: they become <app>.fly.dev and <app>.internal.
_APP_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Machine ids are 14 lowercase hex digits (e.g. 148e21ea7d5789).
_MACHINE_ID = re.compile(r"^[0-9a-f]{14}$")
_REGION = re.compile(r"^[a-z]{3}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_METADATA_PREFIX = "flyk_"
_METADATA_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$")


def validate_app_name(name: str) -> str:
    if _APP_NAME.match(name):
        return name
    if not name:
        problem = "is empty"
    elif len(name) > 63:
        problem = f"is {len(name)} characters long (at most 63)"
    elif name != name.lower():
        problem = "has upper-case letters"
    elif name.startswith("-") or name.endswith("-"):
        problem = "starts or ends with a dash"
    else:
        problem = "has characters other than a-z, 0-9 and dashes"
    raise UsageError(
        f"invalid app name {name!r}: it {problem}",
        hint="App names use lower-case letters, digits and dashes (at most 63), like my-app-1.",
    )


_NETWORK_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$")


def validate_network_name(name: str) -> str:
    """A private network (6PN) name as apps create's --network takes it: an app name's
    characters (lower-case letters, digits, dashes), underscores too, at most 63."""
    if _NETWORK_NAME.match(name):
        return name
    if not name:
        problem = "is empty"
    elif len(name) > 63:
        problem = f"is {len(name)} characters long (at most 63)"
    elif name != name.lower():
        problem = "has upper-case letters"
    elif not (name[0].isalnum() and name[-1].isalnum()):
        problem = "starts or ends with a dash or an underscore"
    else:
        problem = "has characters other than a-z, 0-9, dashes and underscores"
    raise UsageError(
        f"invalid network name {name!r}: it {problem}",
        hint="Network names use lower-case letters, digits, dashes and underscores, like team-net.",
    )


def validate_machine_id(machine_id: str) -> str:
    if _MACHINE_ID.match(machine_id):
        return machine_id
    raise UsageError(
        f"invalid machine id {machine_id!r}: expected 14 hex digits like 148e21ea7d5789",
        hint="`flyk machine list -a APP` shows the ids.",
    )


def validate_region_code(region: str) -> str:
    if _REGION.match(region):
        return region
    raise UsageError(
        f"invalid region {region!r}: region codes are three lower-case letters like iad",
        hint="`flyk regions list` shows the regions.",
    )


def parse_env(items: Iterable[str]) -> dict[str, str]:
    """``--env`` values: ``["A=1", "B=x=y"]`` → ``{"A": "1", "B": "x=y"}``."""
    return _parse_key_values(items, flag="--env", key_pattern=_ENV_NAME)


def parse_metadata(items: Iterable[str]) -> dict[str, str]:
    """``--metadata`` values, same shape as ``--env``; keys may also hold dots, dashes, slashes."""
    parsed = _parse_key_values(items, flag="--metadata", key_pattern=_METADATA_KEY)
    for key, value in parsed.items():
        if key.lower().startswith(RESERVED_METADATA_PREFIX):
            # flyk's own records (a create's launch id, a cluster's role and owner): one set by
            # hand would make flyk take a machine for one it made, or for a cluster's.
            raise UsageError(
                f"--metadata '{key}={value}': keys starting with {RESERVED_METADATA_PREFIX} "
                "are reserved for flyk's own records",
                hint=f"Choose another key, e.g. {key[len(RESERVED_METADATA_PREFIX) :] or 'name'}.",
            )
    return parsed


def _parse_key_values(
    items: Iterable[str], *, flag: str, key_pattern: re.Pattern[str]
) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(
                f"{flag} {item!r} is not KEY=VALUE", hint=f"Write it as {flag} KEY=value."
            )
        if not key_pattern.match(key):
            raise UsageError(f"{flag} {item!r}: {key!r} is not a valid key")
        result[key] = value
    return result
