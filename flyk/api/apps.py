"""`client.apps`: list, get, create, delete."""

from __future__ import annotations

import builtins

from flyk.api._http import Call, path
from flyk.api._resource import Resource, as_list, as_mapping, pause
from flyk.api.models import App
from flyk.errors import AlreadyExistsError, NetworkError, NotFoundError, ServerError

# POST /apps answers before the app is readable everywhere (fly-go WaitForApp).
_APP_VISIBLE_WITHIN = 30.0


class AppsResource(Resource):
    def list(self, org_slug: str) -> builtins.list[App]:
        data = self._core.json(
            Call(
                "GET",
                path("apps"),
                params={"org_slug": org_slug},
                idempotent=True,
                limit=("app_list", org_slug),
            )
        )
        return [App.from_api(item) for item in as_list(data, "apps")]

    def get(self, name: str) -> App:
        data = self._core.json(
            Call("GET", path("apps", name), idempotent=True, limit=("app_get", name))
        )
        return App.from_api(as_mapping(data))

    def create(
        self,
        name: str,
        org_slug: str,
        *,
        network: str | None = None,
        wait_visible: bool = True,
    ) -> App:
        """Create an app and return it once it is readable.

        Create is not idempotent, but an app name is unique: after an ambiguous failure
        (5xx, dropped connection) flyk looks the name up, and an "already taken" answer to the
        retry counts as success when the app is there in the same org.

        `wait_visible=False` skips the read-back (one round trip): for callers whose next
        calls on the app retry a 404 themselves. The App returned then holds only the name.
        """
        body = {"name": name, "org_slug": org_slug}
        if network:
            body["network"] = network
        call = Call("POST", path("apps"), json=body, limit=("app_create", org_slug))
        try:
            self._core.send(call)
        except (ServerError, NetworkError) as exc:
            existing = self._find(name, org_slug)
            if existing is not None:
                return existing
            try:
                self._core.send(call)
            except AlreadyExistsError:
                existing = self._find(name, org_slug)
                if existing is None:
                    raise
                return existing
            except (ServerError, NetworkError):
                raise exc from None
        if not wait_visible:
            return App(name=name)
        return self._wait_visible(name)

    def delete(self, name: str) -> None:
        self._core.send(
            Call("DELETE", path("apps", name), idempotent=True, limit=("app_delete", "*"))
        )

    def _find(self, name: str, org_slug: str) -> App | None:
        try:
            app = self.get(name)
        except NotFoundError:
            return None
        return app if app.org_slug in (None, org_slug) else None

    def _wait_visible(self, name: str) -> App:
        """GET the new app, retrying 404 for a short while (eventual consistency)."""
        core = self._core
        deadline = core.retry.clock() + _APP_VISIBLE_WITHIN
        attempt = 0
        while True:
            attempt += 1
            response = core.send(
                Call(
                    "GET",
                    path("apps", name),
                    idempotent=True,
                    limit=("app_get", name),
                    accept=frozenset({404}),
                )
            )
            if response.status_code != 404:
                return App.from_api(as_mapping(response.json()))
            if not pause(core, attempt, deadline):
                raise NotFoundError(f"app {name} was created but is not visible yet")
