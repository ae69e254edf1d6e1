"""`client.secrets`: list, set (bulk), delete. Writes return the secrets version.

Pass that version as `min_secrets_version` to the next machine create or update, so the new
machine is guaranteed to see the secrets just written (reference §3, flyctl `minvers.go`).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping

from flyk.api._http import Call, path
from flyk.api._resource import Resource, as_list, secrets_version
from flyk.api.models import Secret


class SecretsResource(Resource):
    def list(self, app: str) -> builtins.list[Secret]:
        data = self._core.json(
            Call("GET", path("apps", app, "secrets"), idempotent=True, limit=("secret_list", app))
        )
        return [Secret.from_api(item) for item in as_list(data, "secrets")]

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
