"""`client.secrets`: list, get, set (bulk), delete. Writes return the secrets version.

Pass that version as `min_secrets_version` to the next machine create or update, so the new
machine is guaranteed to see the secrets just written (reference §3, flyctl `minvers.go`);
pass it as `min_version` to a read, so the read sees them too.

Values come back only when asked for (`show_secrets=True`); they reach the caller and never
the `on_exchange` hook, which gets responses with every secret value redacted (`_redact`).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from flyk.api._http import Call, path
from flyk.api._resource import Resource, as_list, as_mapping, secrets_version
from flyk.api.models import Secret


def _read_params(show_secrets: bool, min_version: int | str | None) -> dict[str, Any]:
    # min_version is a string in the spec; the versions writes return are integers
    return {
        "show_secrets": True if show_secrets else None,
        "min_version": None if min_version is None else str(min_version),
    }


class SecretsResource(Resource):
    def list(
        self, app: str, *, show_secrets: bool = False, min_version: int | str | None = None
    ) -> builtins.list[Secret]:
        """The app's secrets; `value` is None unless `show_secrets` (then the API sends it).

        `min_version`: a secrets version from a write; the API answers with at least it.
        """
        data = self._core.json(
            Call(
                "GET",
                path("apps", app, "secrets"),
                params=_read_params(show_secrets, min_version),
                idempotent=True,
                limit=("secret_list", app),
            )
        )
        return [Secret.from_api(item) for item in as_list(data, "secrets")]

    def get(
        self,
        app: str,
        name: str,
        *,
        show_secrets: bool = False,
        min_version: int | str | None = None,
    ) -> Secret:
        """One secret (NotFoundError if the app has none by that name); value as for `list`."""
        data = self._core.json(
            Call(
                "GET",
                path("apps", app, "secrets", name),
                params=_read_params(show_secrets, min_version),
                idempotent=True,
                limit=("secret_get", app),
            )
        )
        return Secret.from_api(as_mapping(data))

    def set(self, app: str, values: Mapping[str, str | None]) -> int:
        """Set several secrets at once (None deletes that name); returns the secrets version."""
        data = self._core.json(
            Call(
                "POST",
                path("apps", app, "secrets"),
                json={"values": dict(values)},
                # writing the same values again leaves the same secrets: safe to repeat
                idempotent=True,
                limit=("secret_set", app),
            )
        )
        return secrets_version(data)

    def delete(self, app: str, name: str) -> int:
        data = self._core.json(
            Call(
                "DELETE",
                path("apps", app, "secrets", name),
                idempotent=True,
                limit=("secret_delete", app),
            )
        )
        return secrets_version(data)
