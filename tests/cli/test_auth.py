"""`flyk auth`: the token is stored 0600, printed only by `auth token`, never in --verbose."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx

from tests.cli.helpers import Flyk, Result, json_response

TOKEN = "fm2_abcdefghijklmnop"
CURRENT = {
    "tokens": [{"token_id": "t1", "org_slug": "acme", "user": "ada@example.com", "apps": []}]
}


def _config_file(home: Path) -> Path:
    return home / ".config" / "flyk" / "config.yml"


def test_login_from_stdin_stores_0600_and_never_echoes(flyk: Flyk, isolated_env: Path) -> None:
    path = _config_file(isolated_env)
    result = flyk("auth", "login", input=TOKEN + "\n")
    assert result == Result(0, "", f"Token stored in {path}. Check it with: flyk auth whoami\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == f"access_token: {TOKEN}\n"


def test_login_and_logout_leave_nothing_beside_the_config(flyk: Flyk, isolated_env: Path) -> None:
    path = _config_file(isolated_env)
    assert flyk("auth", "login", input=TOKEN + "\n").exit_code == 0
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.yml"]
    assert flyk("auth", "logout").exit_code == 0
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.yml"]


def test_token_prints_only_when_asked(flyk: Flyk) -> None:
    assert flyk("auth", "token") == Result(
        4,
        "",
        "Error: no Fly.io token found\n"
        "       Run `flyk auth login`, set FLY_API_TOKEN, or pass --access-token.\n",
    )
    flyk("auth", "login", input=TOKEN)
    assert flyk("auth", "token") == Result(0, TOKEN + "\n", "")
    document = json.loads(flyk("auth", "token", "--json").stdout)
    assert document == {"token": TOKEN, "source": document["source"]}
    assert document["source"].startswith("flyk config file (")


def test_whoami_json_names_the_target_the_table_shows(flyk: Flyk) -> None:
    transport = httpx.MockTransport(lambda request: json_response(200, CURRENT))
    table = flyk("auth", "whoami", "-t", TOKEN, transport=transport)
    target_line = next(line for line in table.stdout.splitlines() if line.startswith("Target"))
    document = json.loads(flyk("auth", "whoami", "-j", "-t", TOKEN, transport=transport).stdout)
    assert target_line.split(None, 1)[1] == document["target"]


def test_logout_forgets_the_stored_token(flyk: Flyk, isolated_env: Path) -> None:
    flyk("auth", "login", input=TOKEN)
    path = _config_file(isolated_env)
    assert flyk("auth", "logout") == Result(0, "", f"Removed the token from {path}\n")
    assert flyk("auth", "logout") == Result(0, "", "No token was stored by flyk.\n")
    assert TOKEN not in path.read_text()


def test_whoami_asks_the_api_and_says_where_the_token_came_from(flyk: Flyk) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path} {request.headers.get('authorization')}")
        return json_response(200, CURRENT)

    result = flyk("auth", "whoami", "--json", "-t", TOKEN, transport=httpx.MockTransport(handler))
    assert result.exit_code == 0, result.stderr
    assert seen == [f"GET /v1/tokens/current FlyV1 {TOKEN}"]
    assert json.loads(result.stdout) == {
        "target": "https://api.machines.dev",
        "source": "--access-token",
        "orgs": ["acme"],
        "tokens": [
            {
                "token_id": "t1",
                "org": "acme",
                "user": "ada@example.com",
                "apps": [],
                "restricted_to_machine": None,
            }
        ],
    }
    table = flyk("auth", "whoami", "-t", TOKEN, transport=httpx.MockTransport(handler))
    assert table.stdout == (
        "Target      https://api.machines.dev\n"
        "Token from  --access-token\n"
        "Orgs        acme\n"
        "User        ada@example.com\n"
    )


def test_refused_token_is_an_auth_error(flyk: Flyk) -> None:
    transport = httpx.MockTransport(lambda r: json_response(401, {"error": "token invalid"}))
    result = flyk("auth", "whoami", "-t", TOKEN, transport=transport)
    assert result.exit_code == 4
    assert result.stderr.startswith("Error: ")
    assert TOKEN not in result.stderr


def test_stored_token_selects_fly_io_and_verbose_redacts_it(flyk: Flyk) -> None:
    flyk("auth", "login", input=TOKEN)
    transport = httpx.MockTransport(lambda r: json_response(200, CURRENT))
    result = flyk("--verbose", "auth", "whoami", transport=transport)
    assert result.exit_code == 0
    assert "> GET https://api.machines.dev/v1/tokens/current" in result.stderr
    assert TOKEN not in result.stderr
    assert "Token from  flyk config file (" in result.stdout


def test_login_with_malformed_config_leaves_it_alone(flyk: Flyk, isolated_env: Path) -> None:
    path = _config_file(isolated_env)
    path.parent.mkdir(parents=True)
    path.write_text("access_token: [broken\n")
    result = flyk("auth", "login", input=TOKEN)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {path} is not valid YAML")
    assert path.read_text() == "access_token: [broken\n"
