"""`FlyClient`: one object for the whole Machines API, built on one `httpx.Client`."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING

from flyk.api._http import ExchangeHook, HttpCore, RetryHook
from flyk.api._retry import RetryPolicy

if TYPE_CHECKING:
    import httpx

    from flyk.api._ratelimit import RateLimiter
    from flyk.api.apps import AppsResource
    from flyk.api.ips import IPsResource
    from flyk.api.logs import LogsResource
    from flyk.api.machines import MachinesResource
    from flyk.api.platform import PlatformResource, TokensResource
    from flyk.api.secrets import SecretsResource
    from flyk.api.volumes import VolumesResource


class FlyClient:
    """Synchronous and thread-safe. The transport is the test seam.

    Each resource (`apps`, `machines`, …) is imported when first used, so that a command
    that only lists apps does not pay for the machine models.

    - `base_url`: None reads FLY_FLAPS_BASE_URL, then FLY_API_HOSTNAME, then uses
      https://api.machines.dev; `/v1` is added once.
    - `token`: `FlyV1` for macaroons (fm1r_, fm1a_, fm2_), `Bearer` otherwise; a pasted
      scheme is stripped. None sends no Authorization header (the local backend).
    - `transport`: any httpx transport (`LocalBackend().transport()`, `MockTransport`, …).
    - `retry`: deadline and backoff for idempotent calls; clock and sleep injectable.
    - `rate_limiter`: None shares the process-wide limiter (Fly's documented limits).
    - `on_exchange(request, response)`: called after every HTTP exchange, for `--verbose`
      (`response` is None when no answer came: refused, dropped, timed out), with copies that
      carry no credential: the token, cookies, secret values (requests and
      responses), file contents of machine configs and issued tokens read `<redacted>`
      (`_redact` lists them; lease nonces are shown).
    - `env`: where to read the base URL variables (default `os.environ`).
    - `on_retry(attempt, reason, delay)`: called before each retry's sleep (attempt 2, 3, …;
      reason such as "connection refused" or "HTTP 503"), so a CLI can say it is retrying.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        on_exchange: ExchangeHook | None = None,
        env: Mapping[str, str] | None = None,
        on_retry: RetryHook | None = None,
    ) -> None:
        self._core = HttpCore(
            base_url=base_url,
            token=token,
            transport=transport,
            retry=retry if retry is not None else RetryPolicy(),
            rate_limiter=rate_limiter,
            on_exchange=on_exchange,
            env=env,
            on_retry=on_retry,
        )

    @property
    def base_url(self) -> str:
        return self._core.base_url

    @property
    def server_kind(self) -> str | None:
        """What answers: the product of the latest response's `server` header, without its
        version or comments (`flyk-local` for `flyk local serve`); None before the first
        response, or when the API sends no such header."""
        header = self._core.server
        return header.split()[0].split("/")[0] if header else None

    @property
    def retry(self) -> RetryPolicy:
        return self._core.retry

    @property
    def rate_limiter(self) -> RateLimiter:
        return self._core.rate_limiter

    @cached_property
    def apps(self) -> AppsResource:
        from flyk.api.apps import AppsResource

        return AppsResource(self._core)

    @cached_property
    def machines(self) -> MachinesResource:
        from flyk.api.machines import MachinesResource

        return MachinesResource(self._core)

    @cached_property
    def volumes(self) -> VolumesResource:
        from flyk.api.volumes import VolumesResource

        return VolumesResource(self._core)

    @cached_property
    def secrets(self) -> SecretsResource:
        from flyk.api.secrets import SecretsResource

        return SecretsResource(self._core)

    @cached_property
    def ips(self) -> IPsResource:
        from flyk.api.ips import IPsResource

        return IPsResource(self._core)

    @cached_property
    def logs(self) -> LogsResource:
        """Fly's logs API (on api.fly.io, not the Machines API's host: see `flyk.api.logs`)."""
        from flyk.api.logs import LogsResource

        return LogsResource(self._core)

    @cached_property
    def platform(self) -> PlatformResource:
        from flyk.api.platform import PlatformResource

        return PlatformResource(self._core)

    @cached_property
    def tokens(self) -> TokensResource:
        from flyk.api.platform import TokensResource

        return TokensResource(self._core)

    def close(self) -> None:
        self._core.close()

    def __enter__(self) -> FlyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
