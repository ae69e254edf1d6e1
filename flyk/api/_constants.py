"""Names and numbers of the Machines API that more than one module needs."""

from __future__ import annotations

DEFAULT_BASE_URL = "https://api.machines.dev"
API_PREFIX = "/v1"

BASE_URL_ENV_VARS = ("FLY_FLAPS_BASE_URL", "FLY_API_HOSTNAME")

# Macaroon tokens go out as `FlyV1 <token>`; everything else as `Bearer <token>` (reference §2).
MACAROON_PREFIXES = ("fm1r_", "fm1a_", "fm2_")

LEASE_NONCE_HEADER = "fly-machine-lease-nonce"
REQUEST_ID_HEADER = "fly-request-id"

# flyk's own idempotency tag for machine creates (reference §6); never a `fly_` key.
LAUNCH_ID_KEY = "flyk_launch_id"

# The API's /wait endpoint accepts at most 60 s per call (reference §4).
MAX_WAIT_SECONDS = 60

# Connect fast, but let long-polls and execs take their time; calls that need more say so.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
