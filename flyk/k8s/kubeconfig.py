"""Kubeconfig entries for flyk clusters, merged the way kubectl itself would merge them.

What users of other cluster tools complain about most is what this module refuses to do: it never
rewrites a file it cannot parse, never drops or reorders someone else's entries, never leaves a
world-readable file, and never lets two writers interleave.

Rules (client-go's `clientcmd`, which kubectl follows):

* The chain is `--kubeconfig` if given, else every path in `KUBECONFIG` (duplicates and empty
  items dropped; no `~` expanded in either), else `~/.kube/config`.
* A name is defined by the first file in the chain that has it; an existing cluster, user or
  context is updated in that file.
* A new entry goes to the explicit file; with a one-item `KUBECONFIG` to that file; with several,
  to the first one that exists, or the last one when none exists (`GetDefaultFilename`).
* `current-context` is written to the first file of the chain that exists (the default file).

flyk's entries are a cluster, a user and a context all named `flyk-NAME` (a cluster of the
personal organization, the default) or `flyk-NAME@ORG` (any other), so that clusters of one name
in two organizations never share an entry. An entry of that name is the cluster's only when its
CA is the cluster's: one pointing at another cluster is never replaced or removed (a
ConflictError). Their fields are merged
one by one: the fields flyk owns are set, conflicting credentials on flyk's user are dropped, and
anything else someone added (a namespace, a proxy-url, extensions) is kept. Every write goes to a
temporary file in the target's directory, is flushed and renamed over the target (a symlink
is followed, so the link stays a link), with mode 0600, under client-go's `<file>.lock`, so that
kubectl running at the same moment waits for us and we for it; the lock is removed afterwards.

`--output FILE` is different: a standalone file holding only the cluster, refused when FILE
already holds anything else (it never merges; `--kubeconfig FILE` does).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flyk.errors import ConfigError, ConflictError

CONTEXT_PREFIX = "flyk-"
# The organization whose clusters keep the short name `flyk-NAME` (the CLI's default -o).
PERSONAL_ORG = "personal"
LOCK_TIMEOUT = 30.0
# Before provisioning, a lock held longer than this is taken to be stale (a writer holds it for
# milliseconds); reported then rather than after a cluster was made.
CHECK_LOCK_TIMEOUT = 3.0
_CLIENT_GO_LOCK_POLL = 0.05

Document = dict[str, Any]
_SECTIONS = {"clusters": "cluster", "users": "user", "contexts": "context"}

# Fields on flyk's user that would compete with the client certificate (kubectl refuses some
# combinations outright, and a stale token would silently win over the certificate).
_CONFLICTING_USER_FIELDS = (
    "client-certificate",
    "client-key",
    "token",
    "tokenFile",
    "username",
    "password",
    "exec",
    "auth-provider",
)
_CONFLICTING_CLUSTER_FIELDS = ("certificate-authority", "insecure-skip-tls-verify")


def context_name(cluster: str, org: str = PERSONAL_ORG) -> str:
    """The one name flyk uses for a cluster's kubeconfig cluster, user and context:
    `flyk-NAME` in the personal organization, `flyk-NAME@ORG` elsewhere (cluster names and
    organization slugs hold no `@`, so no two clusters ever map to one name)."""
    if org == PERSONAL_ORG:
        return f"{CONTEXT_PREFIX}{cluster}"
    return f"{CONTEXT_PREFIX}{cluster}@{org}"


@dataclass(frozen=True)
class KubeconfigEntry:
    """Everything kubectl needs to reach one flyk cluster as its admin."""

    cluster: str
    server: str
    ca_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes = field(repr=False)
    org: str = PERSONAL_ORG

    @property
    def name(self) -> str:
        return context_name(self.cluster, self.org)

    def cluster_fields(self) -> dict[str, Any]:
        return {"server": self.server, "certificate-authority-data": _b64(self.ca_pem)}

    def user_fields(self) -> dict[str, Any]:
        return {
            "client-certificate-data": _b64(self.client_cert_pem),
            "client-key-data": _b64(self.client_key_pem),
        }

    def context_fields(self) -> dict[str, Any]:
        return {"cluster": self.name, "user": self.name}

    def standalone(self) -> Document:
        """A complete kubeconfig holding only this cluster, current-context set to it."""
        doc = _empty_document()
        _upsert(doc, "clusters", self.name, self.cluster_fields(), _CONFLICTING_CLUSTER_FIELDS)
        _upsert(doc, "users", self.name, self.user_fields(), _CONFLICTING_USER_FIELDS)
        _upsert(doc, "contexts", self.name, self.context_fields(), ())
        doc["current-context"] = self.name
        return doc

    def render(self) -> str:
        return dump(self.standalone())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------------------------------------
# Where to read and write


def resolve_chain(
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """The kubeconfig files kubectl would load, in precedence order. As kubectl, no `~` is
    expanded in `--kubeconfig` or KUBECONFIG: `'~/x'` is a directory named `~` (the shell
    expands an unquoted one before flyk sees it)."""
    env = os.environ if environ is None else environ
    if explicit:
        return [Path(explicit)]
    chain: list[Path] = []
    for item in env.get("KUBECONFIG", "").split(os.pathsep):
        if item and Path(item) not in chain:
            chain.append(Path(item))
    if chain:
        return chain
    return [Path(env.get("HOME", str(Path.home()))) / ".kube" / "config"]


def default_file(chain: Sequence[Path]) -> Path:
    """Where kubectl puts a new entry (client-go `GetDefaultFilename`)."""
    if len(chain) == 1:
        return chain[0]
    for path in chain:
        if path.exists():
            return path
    return chain[-1]


# ---------------------------------------------------------------------------------------------
# Reading and writing one file


def _empty_document() -> Document:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": "",
    }


def load(path: Path, *, chosen: bool = False) -> Document | None:
    """The parsed file, or None when it does not exist; a ConfigError when it is unusable.

    `chosen`: the user named this file (`--kubeconfig`/`--output`), so the hint does not tell
    them to pass what they already passed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read kubeconfig {path}: {exc}",
            hint=f"fix or move the file, {_elsewhere(chosen)}",
        ) from exc
    return parse(text, path, chosen=chosen)


def _elsewhere(chosen: bool) -> str:
    if chosen:
        return "or choose another file"
    return "or pass --kubeconfig (merge) or --output (a file of its own) to write elsewhere"


class Verbatim(str):
    """A plain scalar YAML 1.1 would read as something other than a string: a timestamp
    (`expiry: 2024-01-01T00:00:00Z`), an octal or other number (`namespace: 0123`), a bool
    (`true`, `yes`). kubectl reads most such fields as the text written (its YAML goes through
    the field's Go type), so flyk keeps the text and its tag and writes it back as it was:
    nobody's entry changes because flyk merged beside it."""

    tag: str

    def __new__(cls, text: str, tag: str) -> Verbatim:
        scalar = super().__new__(cls, text)
        scalar.tag = tag
        return scalar

    def __reduce__(self) -> tuple[type[Verbatim], tuple[str, str]]:
        return (Verbatim, (str(self), self.tag))


class _Loader(yaml.SafeLoader):
    """SafeLoader, with the non-string scalars kept verbatim."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes a verbatim scalar back plain, with the tag it was read with."""


def _construct_verbatim(_loader: yaml.SafeLoader, node: yaml.Node) -> Verbatim:
    return Verbatim(str(node.value), node.tag)


def _represent_verbatim(dumper: yaml.SafeDumper, data: Verbatim) -> yaml.Node:
    return dumper.represent_scalar(data.tag, str(data))


for _tag in ("bool", "int", "float", "timestamp"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _construct_verbatim)
_Dumper.add_representer(Verbatim, _represent_verbatim)


def parse(text: str, path: Path, *, chosen: bool = False) -> Document:
    try:
        doc = yaml.load(text, Loader=_Loader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        raise _malformed(path, f"not valid YAML ({_first_line(exc)})", chosen) from exc
    if doc is None:
        return _empty_document()
    if not isinstance(doc, dict):
        raise _malformed(path, "the top level is not a mapping", chosen)
    for section, item_key in _SECTIONS.items():
        _check_section(doc, section, item_key, path, chosen)
    current = doc.get("current-context")
    if current is not None and not isinstance(current, str):
        raise _malformed(path, "current-context is not a string", chosen)
    return doc


def _check_section(doc: Document, section: str, item_key: str, path: Path, chosen: bool) -> None:
    items = doc.get(section)
    if items is None:
        return
    if not isinstance(items, list):
        raise _malformed(path, f"{section} is not a list", chosen)
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _malformed(path, f"{section}[{index}] has no name", chosen)
        body = item.get(item_key)
        if body is not None and not isinstance(body, dict):
            raise _malformed(path, f"{section}[{index}].{item_key} is not a mapping", chosen)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _malformed(path: Path, why: str, chosen: bool = False) -> ConfigError:
    return ConfigError(
        f"kubeconfig {path} is malformed: {why}; flyk leaves it as it is",
        hint="fix the file (kubectl config view shows what kubectl makes of it), "
        + _elsewhere(chosen),
    )


def dump(doc: Document) -> str:
    return yaml.dump(
        doc, Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True
    )


def write_atomic(path: Path, text: str) -> None:
    """Replace the file's content in one rename; 0600; a symlink stays a symlink."""
    target = Path(os.path.realpath(path))
    make_parent(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    try:
        # mkstemp creates the file 0600 whatever the umask, so the content is never exposed.
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o600)
        os.replace(tmp_name, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise _unwritable(path, exc) from exc
        raise
    _fsync_dir(target.parent)


def make_parent(path: Path) -> None:
    """The directory the (symlink-resolved) file goes in, created 0700 if missing."""
    try:
        Path(os.path.realpath(path)).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise _unwritable(path, exc) from exc


def _unwritable(path: Path, exc: OSError) -> ConfigError:
    why = exc.strerror or type(exc).__name__
    return ConfigError(
        f"cannot write kubeconfig {path}: {why}",
        hint="fix its directory's permissions, or pass --kubeconfig (merge) or --output "
        "(a file of its own) to write elsewhere",
    )


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------------------
# Locks


def lock_files(path: Path) -> list[Path]:
    """The `<file>.lock`s that guard a file: client-go locks the path as kubectl was given it
    (a symlink's own name); flyk also locks the file the link resolves to, so that writers
    reaching it by another name (the target itself, another link) are excluded too."""
    given = Path(os.path.abspath(path))
    real = Path(os.path.realpath(path))
    return sorted({p.with_name(p.name + ".lock") for p in (given, real)})


@contextlib.contextmanager
def _client_go_lock(lock: Path, timeout: float) -> Iterator[None]:
    """client-go's protocol: create `<file>.lock` exclusively, remove it when done.

    A file lock has nothing to wait on but the file itself, so this polls (kubectl gives up
    at once instead); the wait is bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            break
        except FileExistsError:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"{lock} exists: another program is writing the kubeconfig",
                    hint=f"if no kubectl or flyk is running, remove {lock} and retry",
                ) from None
            time.sleep(_CLIENT_GO_LOCK_POLL)
        except OSError as exc:
            raise _unwritable(lock.with_name(lock.name.removesuffix(".lock")), exc) from exc
    os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)


@contextlib.contextmanager
def locked(paths: Sequence[Path], timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the files (whose directories exist), in one global order so that two writers
    never deadlock.

    client-go's `<file>.lock` is the only lock: kubectl honours it, flyk processes and threads
    exclude each other with it too, and it is removed when done, so nothing of flyk's stays in
    the user's kube directory. A lock left by a killed writer is reported after `timeout`
    with its path (kubectl reports it at once), never removed behind the user's back."""
    locks = sorted({lock for p in paths for lock in lock_files(p)})
    with contextlib.ExitStack() as stack:
        for lock in locks:
            stack.enter_context(_client_go_lock(lock, timeout))
        yield


# ---------------------------------------------------------------------------------------------
# Field-level edits


def _find(doc: Document, section: str, name: str) -> dict[str, Any] | None:
    for item in doc.get(section) or []:
        if item.get("name") == name:
            found: dict[str, Any] = item
            return found
    return None


def _upsert(
    doc: Document,
    section: str,
    name: str,
    fields: Mapping[str, Any],
    conflicting: Sequence[str],
) -> bool:
    """Set flyk's fields on the named entry (created if missing); True if anything changed."""
    item_key = _SECTIONS[section]
    item = _find(doc, section, name)
    if item is None:
        if doc.get(section) is None:
            doc[section] = []
        item = {"name": name, item_key: {}}
        doc[section].append(item)
        before: dict[str, Any] | None = None
    else:
        before = copy.deepcopy(item)
    if item.get(item_key) is None:
        item[item_key] = {}
    body = item[item_key]
    for key in conflicting:
        body.pop(key, None)
    body.update(fields)
    return item != before


def _remove(doc: Document, section: str, name: str) -> bool:
    items = doc.get(section) or []
    kept = [item for item in items if item.get("name") != name]
    if len(kept) == len(items):
        return False
    doc[section] = kept
    return True


# ---------------------------------------------------------------------------------------------
# Whose entry it is


def _ca_of(body: Mapping[str, Any]) -> bytes | None:
    data = body.get("certificate-authority-data")
    if not isinstance(data, str):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        return None


def _other_cluster(name: str, path: Path, body: Mapping[str, Any]) -> ConflictError:
    server = body.get("server")
    at = f" (server {server})" if isinstance(server, str) and server else ""
    return ConflictError(
        f"kubeconfig {path} already has an entry {name} for another cluster{at}; "
        "flyk leaves it as it is",
        hint=f"if that cluster is gone, remove its entries (kubectl config delete-context "
        f"{name}; kubectl config delete-cluster {name}; kubectl config delete-user {name}); "
        "or write this one elsewhere with --kubeconfig FILE or --output FILE",
    )


def check_owner(
    name: str,
    ca_pem: bytes | None,
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Refuse (ConflictError) when the chain's cluster entry NAME, as kubectl reads it, is
    another cluster's: its CA is not `ca_pem` (None: a cluster with no CA yet, to which no
    existing entry can belong)."""
    for path in resolve_chain(explicit, environ):
        doc = load(path, chosen=bool(explicit))
        item = _find(doc, "clusters", name) if doc is not None else None
        if item is not None:
            found = item.get("cluster")
            body: Mapping[str, Any] = found if isinstance(found, dict) else {}
            if ca_pem is None or _ca_of(body) != ca_pem:
                raise _other_cluster(name, path, body)
            return


# ---------------------------------------------------------------------------------------------
# The operations


@dataclass(frozen=True)
class MergeResult:
    context: str
    files: tuple[Path, ...]  # the files written
    current_context_file: Path | None  # where current-context now points at the context
    switched: bool
    standalone: bool = False  # a file of its own (`--output`), not a merge


def home_relative(path: Path) -> str:
    """`~/…` for a path under the home directory, as people write it."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def describe_written(merged: MergeResult) -> str:
    """One line for people: which context went where, and whether it is current."""
    current = " (current)" if merged.current_context_file else ""
    if not merged.files:
        return f"context {merged.context} already up to date{current}"
    where = ", ".join(home_relative(p) for p in merged.files)
    if merged.standalone:
        return f"context {merged.context} written to {where} (a file of its own)"
    return f"context {merged.context} merged into {where}{current}"


@dataclass(frozen=True)
class RemoveResult:
    context: str
    files: tuple[Path, ...]
    current_context_cleared: bool
    # The file whose entry of that name is another cluster's (its CA is not this one's), so
    # nothing was removed anywhere.
    other_cluster_in: Path | None = None


class _Chain:
    """The chain's files loaded under the lock; edits are tracked per file."""

    def __init__(self, chain: Sequence[Path], *, chosen: bool = False) -> None:
        self.paths = list(chain)
        self.docs: dict[Path, Document | None] = {p: load(p, chosen=chosen) for p in self.paths}
        self.changed: set[Path] = set()

    def holder(self, section: str, name: str) -> Path | None:
        for path in self.paths:
            doc = self.docs[path]
            if doc is not None and _find(doc, section, name) is not None:
                return path
        return None

    def document(self, path: Path) -> Document:
        doc = self.docs[path]
        if doc is None:
            doc = self.docs[path] = _empty_document()
        return doc

    def current_context_file(self) -> Path | None:
        for path in self.paths:
            doc = self.docs[path]
            if doc is not None and doc.get("current-context"):
                return path
        return None

    def current_context(self) -> str:
        path = self.current_context_file()
        return str(self.document(path).get("current-context")) if path else ""

    def cluster_entry(self, name: str) -> tuple[Path, Mapping[str, Any]] | None:
        """The cluster entry NAME as kubectl reads it (the first file defining it)."""
        path = self.holder("clusters", name)
        if path is None:
            return None
        item = _find(self.document(path), "clusters", name) or {}
        body = item.get("cluster")
        return path, body if isinstance(body, dict) else {}

    def refuse_other_cluster(self, entry: KubeconfigEntry) -> None:
        found = self.cluster_entry(entry.name)
        if found is not None and _ca_of(found[1]) != entry.ca_pem:
            raise _other_cluster(entry.name, *found)

    def save(self) -> tuple[Path, ...]:
        written = tuple(p for p in self.paths if p in self.changed)
        for path in written:
            write_atomic(path, dump(self.document(path)))
        return written


def merge(
    entry: KubeconfigEntry,
    *,
    explicit: str | os.PathLike[str] | None = None,
    switch_context: bool = True,
    environ: Mapping[str, str] | None = None,
) -> MergeResult:
    """Upsert the cluster's entries into the kubeconfig chain (see the module's rules)."""
    chain = resolve_chain(explicit, environ)
    home = default_file(chain)
    make_parent(home)
    # The files that exist, and the one a new entry would create: nothing else is written.
    with locked([*(p for p in chain if p.exists()), home]):
        files = _Chain(chain, chosen=bool(explicit))
        files.refuse_other_cluster(entry)
        new_home = default_file(chain)
        pieces = (
            ("clusters", entry.cluster_fields(), _CONFLICTING_CLUSTER_FIELDS),
            ("users", entry.user_fields(), _CONFLICTING_USER_FIELDS),
            ("contexts", entry.context_fields(), ()),
        )
        for section, fields, conflicting in pieces:
            home = files.holder(section, entry.name) or new_home
            if _upsert(files.document(home), section, entry.name, fields, conflicting):
                files.changed.add(home)
            # A file without these top-level keys is still a valid kubeconfig; kubectl adds them.
            files.document(home).setdefault("apiVersion", "v1")
            files.document(home).setdefault("kind", "Config")
        current_file = files.current_context_file()
        if switch_context:
            # kubectl (`use-context`, client-go's writeCurrentContext) writes it to the first
            # file of the chain that exists, whichever file set it before: that is the
            # default file, which the entries above just created if none existed.
            current_file = new_home
            doc = files.document(current_file)
            if doc.get("current-context") != entry.name:
                doc["current-context"] = entry.name
                files.changed.add(current_file)
        written = files.save()
        points_here = files.current_context() == entry.name
    return MergeResult(
        context=entry.name,
        files=written,
        current_context_file=current_file if points_here else None,
        switched=switch_context,
    )


def remove(
    name: str,
    *,
    ca_pem: bytes | None = None,
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> RemoveResult:
    """Drop the entries NAME from every file of the chain; clear current-context if it
    pointed at them (never switch to some other context: that is how people hit the wrong
    cluster). With `ca_pem`, only when the cluster entry is that CA's: another cluster's
    entries are left, and `other_cluster_in` says where."""
    chain = resolve_chain(explicit, environ)
    with locked([p for p in chain if p.exists()]):
        files = _Chain(chain, chosen=bool(explicit))
        found = files.cluster_entry(name)
        if ca_pem is not None and found is not None and _ca_of(found[1]) != ca_pem:
            return RemoveResult(name, (), False, other_cluster_in=found[0])
        cleared = False
        for path in files.paths:
            doc = files.docs[path]
            if doc is None:
                continue
            for section in _SECTIONS:
                if _remove(doc, section, name):
                    files.changed.add(path)
            if doc.get("current-context") == name:
                doc["current-context"] = ""
                files.changed.add(path)
                cleared = True
        written = files.save()
    return RemoveResult(context=name, files=written, current_context_cleared=cleared)


# ---------------------------------------------------------------------------------------------
# A standalone file (`--output FILE`)

# Top-level keys a standalone file may hold besides flyk's entries (what flyk writes itself).
_STANDALONE_KEYS = frozenset({"apiVersion", "kind", "preferences", "current-context", *_SECTIONS})


def _foreign_content(doc: Document, name: str) -> list[str]:
    """What a file holds besides the cluster's own entries NAME."""
    found = [
        f"{section[:-1]} {item.get('name')}"
        for section in _SECTIONS
        for item in doc.get(section) or []
        if item.get("name") != name
    ]
    current = doc.get("current-context")
    if current and current != name and not found:
        found.append(f"current-context {current}")
    found.extend(k for k, v in doc.items() if k not in _STANDALONE_KEYS and v)
    if doc.get("preferences"):
        found.append("preferences")
    return found


def check_standalone(path: str | os.PathLike[str], name: str) -> Path:
    """Refuse (ConfigError, file untouched) unless FILE is missing, empty, or holds only this
    cluster's own entries: `--output` writes a file of its own, it never merges."""
    target = Path(path).expanduser()
    doc = load(target, chosen=True)
    if doc is None:
        return target
    foreign = _foreign_content(doc, name)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
        raise ConfigError(
            f"--output {target} already holds other kubeconfig entries ({shown}); "
            "flyk writes a file of its own there and leaves this one as it is",
            hint=f"choose another path for --output, or merge into it with --kubeconfig {target}",
        )
    real = Path(os.path.realpath(target))
    if real.exists() and not os.access(real, os.W_OK):
        raise ConfigError(f"kubeconfig {target} is not writable")
    return target


def write_standalone(entry: KubeconfigEntry, path: str | os.PathLike[str]) -> MergeResult:
    """Write a kubeconfig holding only this cluster (current-context set to it), replacing a
    file that held only this cluster's entries before; anything else is refused."""
    target = Path(path).expanduser()
    make_parent(target)
    with locked([target]):
        check_standalone(target, entry.name)  # again, under the lock
        _Chain([target], chosen=True).refuse_other_cluster(entry)
        write_atomic(target, dump(entry.standalone()))
    return MergeResult(
        context=entry.name,
        files=(target,),
        current_context_file=target,
        switched=True,
        standalone=True,
    )


def check_writable(
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """Fail before provisioning when the chain cannot be merged into: a file malformed or
    unreadable, one a merge may write (every existing file, and the one a new entry goes to)
    not writable, or its lock held for longer than a writer holds it."""
    chain = resolve_chain(explicit, environ)
    for path in chain:
        load(path, chosen=bool(explicit))
    for path in [*(p for p in chain if p.exists()), default_file(chain)]:
        check_file_writable(path)
    return chain


def check_file_writable(path: Path) -> None:
    """Whether flyk could write PATH now, found out without changing anything that stays: the
    lock is taken and released (proving the directory writable and the lock free), or, for a
    directory still to be made, its nearest existing parent is tried with an unnamed file."""
    real = Path(os.path.realpath(path))
    if real.exists() and not os.access(real, os.W_OK):
        raise ConfigError(f"kubeconfig {path} is not writable")
    if real.parent.is_dir():
        with locked([path], timeout=CHECK_LOCK_TIMEOUT):
            return
    parent = real.parent
    while not parent.exists():
        parent = parent.parent
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise _unwritable(path, exc) from exc


def check_removable(
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """Fail before delete destroys anything when its last step, removing the entries, could
    not be done: a file of the chain malformed or unreadable, or an existing one not writable."""
    chain = resolve_chain(explicit, environ)
    try:
        for path in chain:
            load(path, chosen=bool(explicit))
        for path in chain:
            if path.exists():
                check_file_writable(path)
    except ConfigError as exc:
        # delete has --kubeconfig but no --output: its hint names only what it has
        if exc.hint:
            exc.hint = exc.hint.replace(_elsewhere(False), _REMOVE_ELSEWHERE)
        raise
    return chain


_REMOVE_ELSEWHERE = "or pass --kubeconfig with the file that holds the cluster's entries"


def cluster_fields(
    name: str,
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Mapping[str, Any] | None:
    """The fields of the cluster entry NAME as kubectl would read them (the first file of the
    chain defining it), or None when there is none."""
    for path in resolve_chain(explicit, environ):
        doc = load(path, chosen=bool(explicit))
        item = _find(doc, "clusters", name) if doc is not None else None
        if item is not None:
            body = item.get("cluster")
            return body if isinstance(body, dict) else {}
    return None


def entry_file(
    name: str,
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The file a merge would put the context NAME in: the file of the chain already holding
    it, else where kubectl puts a new entry (what `create --dry-run` names)."""
    chain = resolve_chain(explicit, environ)
    for path in chain:
        doc = load(path, chosen=bool(explicit))
        if doc is not None and _find(doc, "contexts", name) is not None:
            return path
    return default_file(chain)


def holders(
    name: str,
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """The files of the chain holding any of the entries NAME (or pointing current-context
    at them)."""
    found = []
    for path in resolve_chain(explicit, environ):
        doc = load(path, chosen=bool(explicit))
        if doc is None:
            continue
        if doc.get("current-context") == name or any(
            _find(doc, section, name) is not None for section in _SECTIONS
        ):
            found.append(path)
    return found
