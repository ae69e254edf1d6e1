"""Image references as the Machines API takes them: `[registry/]path[:tag][@digest]`.

Checked before any call, so that a reference no registry could resolve (`NGINX:::`, four
thousand characters, `bad tag!`) is a usage error naming what is wrong, not a machine
created and then failing to pull. The grammar is the OCI distribution one, written here from
its description: a path of lower-case components separated by `.`, `_`, `__` or dashes; an
optional registry host (a name with dots, `localhost`, an IP, an optional port) in front; a
tag of at most 128 word characters, dots and dashes; a digest `algorithm:hex`. The name
(registry and path) is at most 255 characters.
"""

from __future__ import annotations

import re

from flyk.errors import UsageError

MAX_NAME_LENGTH = 255
MAX_TAG_LENGTH = 128

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_LABEL = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_HOST = rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_DIGEST = r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]{32,}"
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?"
)
_TAG_ONLY = re.compile(_TAG)
HINT = "An image is [registry/]name[:tag][@digest], e.g. nginx:1.27 or registry.fly.io/app:v1."


def validate_image(reference: str, *, flag: str = "image") -> str:
    """`reference` when it is an image reference, else a UsageError saying what is wrong."""
    problem = _image_problem(reference)
    if problem is None:
        return reference
    raise UsageError(f"invalid {flag}: {problem}", hint=HINT)


def _image_problem(reference: str) -> str | None:
    if not reference.strip():
        return "it is empty"
    if any(character.isspace() for character in reference):  # a command pasted after it
        return f"{_shown(reference)} has spaces (an image reference has none)"
    match = _REFERENCE.fullmatch(reference)
    if match is None:
        lower_case = _REFERENCE.fullmatch(reference.lower()) is not None
        why = " (repository names are lower-case)" if lower_case else ""
        return f"{_shown(reference)} is not an image reference{why}"
    if len(match["name"]) > MAX_NAME_LENGTH:
        return f"the image name is {len(match['name'])} characters long (at most {MAX_NAME_LENGTH})"
    tag = match["tag"]
    if tag is not None and len(tag) > MAX_TAG_LENGTH:
        return f"the tag is {len(tag)} characters long (at most {MAX_TAG_LENGTH})"
    digest = match["digest"]
    if digest is not None and digest.startswith("sha256:") and len(digest) != len("sha256:") + 64:
        return f"{_shown(reference)} has a sha256 digest that is not 64 hex digits"
    return None


def _shown(text: str, limit: int = 80) -> str:
    """`text` quoted for a one-line message, cut short when long."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text)} characters)"


def validate_tag(tag: str, *, flag: str, also: str = "") -> str:
    """`tag` when it can be an image tag (word characters, dots, dashes; at most 128).
    `also`: characters the caller replaces by a dash before it makes the tag."""
    if not tag:
        raise UsageError(f"{flag} is empty", hint="Leave it out for the default.")
    if _TAG_ONLY.fullmatch("".join("-" if c in also else c for c in tag)) is None:
        raise UsageError(
            f"{flag} {tag!r} cannot be an image tag: it takes letters, digits, '_', '.' and "
            "'-' (not first)",
            hint="e.g. v1.37.2",
        )
    if len(tag) > MAX_TAG_LENGTH:
        raise UsageError(f"{flag} is {len(tag)} characters long (an image tag has at most 128)")
    return tag
