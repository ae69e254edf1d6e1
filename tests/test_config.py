"""flyk.config: token and target resolution, the config file, names and KEY=VALUE parsing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from flyk import config
from flyk.config import TargetKind, TokenSource
from flyk.errors import AuthError, ConfigError, UsageError


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _flyctl_config(home: Path, token: str) -> Path:
    return _write(home / ".fly" / "config.yml", f"access_token: {token}\n")


# -- token resolution order ---------------------------------------------------------------------


def test_no_token_anywhere(isolated_env: Path) -> None:
    assert config.resolve_token() is None


def test_token_order_flag_then_env_then_flyk_file_then_flyctl_file(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _flyctl_config(isolated_env, "from-flyctl")
    assert config.resolve_token() == config.Token(
        "from-flyctl", TokenSource.FLYCTL_CONFIG, isolated_env / ".fly" / "config.yml"
    )

    config.store_token("from-flyk\n")
    found = config.resolve_token()
    assert found is not None
    assert (found.value, found.source) == ("from-flyk", TokenSource.FLYK_CONFIG)

    monkeypatch.setenv("FLY_API_TOKEN", "from-api-env")
    found = config.resolve_token()
    assert found is not None
    assert (found.value, found.source) == ("from-api-env", TokenSource.API_TOKEN_ENV)

    monkeypatch.setenv("FLY_ACCESS_TOKEN", "from-access-env")  # flyctl: this one wins
    found = config.resolve_token()
    assert found is not None
    assert (found.value, found.source) == ("from-access-env", TokenSource.ACCESS_TOKEN_ENV)

    found = config.resolve_token("from-flag")
    assert found is not None
    assert (found.value, found.source) == ("from-flag", TokenSource.FLAG)


def test_empty_values_are_not_tokens(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLY_API_TOKEN", "  ")
    assert config.resolve_token("") is None


def test_fly_config_dir_replaces_dot_fly(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(isolated_env / "elsewhere" / "config.yml", "access_token: moved\n")
    monkeypatch.setenv("FLY_CONFIG_DIR", str(isolated_env / "elsewhere"))
    found = config.resolve_token()
    assert found is not None and found.value == "moved"


def test_token_repr_never_shows_the_value() -> None:
    token = config.Token("fm2_secret", TokenSource.FLAG)
    assert "fm2_secret" not in repr(token)
    assert "fm2_secret" not in repr(config.Target(TargetKind.FLY, "https://x", token))


# -- the config file ----------------------------------------------------------------------------


def test_store_token_writes_0600_yaml_and_keeps_other_keys(isolated_env: Path) -> None:
    path = config.flyk_config_file()
    _write(path, "color: never\n")
    assert config.store_token("tok") == path
    assert path == isolated_env / ".config" / "flyk" / "config.yml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.read_config_file(path) == {"access_token": "tok", "color": "never"}
    assert not list(path.parent.glob("*.tmp"))


def test_concurrent_writers_each_keep_their_key_and_leave_no_lock_file(
    isolated_env: Path,
) -> None:
    import threading

    path = config.flyk_config_file()
    threads = [
        threading.Thread(target=config.update_config_file, args=(path, {f"key{i}": str(i)}))
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert config.read_config_file(path) == {f"key{i}": str(i) for i in range(8)}
    assert [p.name for p in path.parent.iterdir()] == ["config.yml"]


def test_forget_token_removes_only_the_token(isolated_env: Path) -> None:
    path = config.flyk_config_file()
    _write(path, "access_token: tok\ncolor: never\n")
    assert config.forget_token() == path
    assert config.read_config_file(path) == {"color": "never"}
    assert config.forget_token() is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("access_token: [unclosed\n", r"is not valid YAML \(line 2\)"),
        ("- a list\n", "is not a YAML mapping"),
    ],
)
def test_malformed_config_is_an_error_and_never_overwritten(
    isolated_env: Path, text: str, message: str
) -> None:
    path = _write(config.flyk_config_file(), text)
    with pytest.raises(ConfigError, match=message) as caught:
        config.store_token("tok")
    assert caught.value.exit_code == 2
    assert path.read_text() == text
    with pytest.raises(ConfigError):
        config.resolve_token()


@pytest.mark.parametrize("pasted", ["\n", "Bearer \n", "FlyV1", "bearer FlyV1  "])
def test_store_empty_token_is_refused(isolated_env: Path, pasted: str) -> None:
    """A scheme with no token after it was stored, and then sent as no credentials."""
    with pytest.raises(UsageError, match="the token is empty"):
        config.store_token(pasted)
    assert config.resolve_token() is None
    config.store_token("FlyV1 fm2_x")  # a scheme in front of a token is kept, as flyctl prints
    stored = config.resolve_token()
    assert stored is not None and stored.value == "FlyV1 fm2_x"


# -- targets ------------------------------------------------------------------------------------


def test_no_token_means_the_local_backend(isolated_env: Path) -> None:
    target = config.resolve_target()
    assert target.kind is TargetKind.LOCAL and target.implicit
    assert target.local_db == isolated_env / ".local" / "share" / "flyk" / "local.db"


def test_flyk_local_db_overrides_the_data_dir(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYK_LOCAL_DB", str(isolated_env / "x.db"))
    assert config.resolve_target().local_db == isolated_env / "x.db"


def test_a_token_means_fly_io(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLY_API_TOKEN", "tok")
    target = config.resolve_target()
    assert (target.kind, target.base_url) == (TargetKind.FLY, "https://api.machines.dev")
    monkeypatch.setenv("FLY_FLAPS_BASE_URL", "https://flaps.example")
    assert config.resolve_target().base_url == "https://flaps.example"


def test_fly_api_hostname_is_read_after_flaps_base_url(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLY_API_HOSTNAME", "_api.internal:4280")
    monkeypatch.setenv("FLY_API_TOKEN", "tok")
    assert config.resolve_target().base_url == "https://_api.internal:4280"


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("FLY_FLAPS_BASE_URL", "http://[bad", "Invalid IPv6 URL"),
        ("FLY_FLAPS_BASE_URL", "ftp://flaps.example", "scheme must be http or https"),
        ("FLY_FLAPS_BASE_URL", "http://", "names no host"),
        ("FLY_FLAPS_BASE_URL", "http://h:abc", "Port"),
        ("FLY_API_HOSTNAME", "h:99999", "Port"),
    ],
)
def test_a_malformed_base_url_is_a_config_error_naming_its_variable(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"invalid {variable} .*{problem}") as caught:
        config.resolve_target()  # with no token too: the URL decides what is meant
    assert caught.value.exit_code == 2


def test_local_flag_wins_over_a_token(isolated_env: Path) -> None:
    target = config.resolve_target(access_token="tok", force_local=True)
    assert target.kind is TargetKind.LOCAL and not target.implicit and target.token is None


def test_loopback_url_without_token_is_served_local_backend(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLY_FLAPS_BASE_URL", "http://127.0.0.1:4280")
    target = config.resolve_target()
    assert (target.kind, target.base_url, target.token) == (
        TargetKind.FLY,
        "http://127.0.0.1:4280",
        None,
    )
    assert target.require_token() is None


def test_remote_url_without_token_is_an_auth_error(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLY_FLAPS_BASE_URL", "https://flaps.example")
    target = config.resolve_target()
    with pytest.raises(AuthError, match=r"no Fly\.io token for https://flaps\.example") as caught:
        target.require_token()
    assert caught.value.exit_code == 4


# -- names and values ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "my-app-1", "0day", "x" * 63])
def test_valid_app_names(name: str) -> None:
    assert config.validate_app_name(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "is empty"),
        ("My-App", "has upper-case letters"),
        ("-app", "starts or ends with a dash"),
        ("app-", "starts or ends with a dash"),
        ("my_app", "has characters other than a-z, 0-9 and dashes"),
        ("x" * 64, "is 64 characters long (at most 63)"),
    ],
)
def test_invalid_app_names(name: str, problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        config.validate_app_name(name)
    assert caught.value.message == f"invalid app name {name!r}: it {problem}"


@pytest.mark.parametrize("machine_id", ["148E21EA7D5789", "148e21ea7d578", "g48e21ea7d5789"])
def test_invalid_machine_ids(machine_id: str) -> None:
    with pytest.raises(UsageError, match="expected 14 hex digits"):
        config.validate_machine_id(machine_id)


def test_parse_env_and_metadata() -> None:
    assert config.parse_env(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    assert config.parse_metadata(["fly.io/role=web"]) == {"fly.io/role": "web"}


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["NOEQUALS"], "--env 'NOEQUALS' is not KEY=VALUE"),
        (["=x"], "--env '=x' is not KEY=VALUE"),
        (["1A=x"], "--env '1A=x': '1A' is not a valid key"),
    ],
)
def test_malformed_env(items: list[str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        config.parse_env(items)
    assert caught.value.message == message


def test_loopback_detection() -> None:
    assert config.is_loopback_url("http://127.0.0.1:1234")
    assert config.is_loopback_url("http://localhost:1234")
    assert config.is_loopback_url("http://[::1]:1234")
    assert not config.is_loopback_url("https://api.machines.dev")


@pytest.mark.parametrize(
    "name", ["a", "0day", "my-app-1", "-app", "app-", "My-App", "my_app", "x" * 64]
)
def test_the_cli_and_the_local_backend_agree_on_app_names(name: str) -> None:
    from flyk.local.errors import ApiError
    from flyk.local.validate import check_app_name

    try:
        check_app_name(name)
        backend_accepts = True
    except ApiError:
        backend_accepts = False
    try:
        config.validate_app_name(name)
        cli_accepts = True
    except UsageError:
        cli_accepts = False
    assert cli_accepts == backend_accepts


@pytest.mark.parametrize("which", ["flyk", "flyctl"])
def test_a_config_file_that_is_not_utf8_is_a_config_error_naming_it(
    isolated_env: Path, which: str
) -> None:
    path = config.flyk_config_file() if which == "flyk" else isolated_env / ".fly" / "config.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"access_token: \xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        config.resolve_token()
    assert caught.value.exit_code == 2
    assert caught.value.message == f"{path} is not UTF-8 text (byte 0xff at position 14)"
    assert path.read_bytes() == b"access_token: \xff\xfe\n"
