"""flyk.cli.output: tables, JSON, redaction, progress and questions."""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime

import httpx
import pytest

from flyk.cli.output import Output, format_cell, render_table
from flyk.errors import UsageError


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_tables_are_borderless_upper_case_and_unwrapped() -> None:
    rows = [["web", None, 3], ["a-much-longer-name", "iad", 12]]
    assert render_table(rows, ["name", "region", "machines"]) == (
        "NAME                REGION  MACHINES\n"
        "web                         3\n"
        "a-much-longer-name  iad     12\n"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "yes"),
        (False, "no"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05Z"),
        ({"a": "1", "b": "2"}, "a=1,b=2"),
        (["iad", "ams"], "iad,ams"),
    ],
)
def test_cells(value: object, text: str) -> None:
    assert format_cell(value) == text


def test_json_uses_four_spaces(capsys: pytest.CaptureFixture[str]) -> None:
    Output(json=True).emit({"a": [1]}, lambda: None)
    assert capsys.readouterr().out == '{\n    "a": [\n        1\n    ]\n}\n'


def test_empty_table_goes_to_stderr_as_a_notice(capsys: pytest.CaptureFixture[str]) -> None:
    Output().data_table([], ["name"], empty="No apps.")
    assert capsys.readouterr() == ("", "No apps.\n")


def test_secrets_are_redacted_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    out = Output()
    out.add_secret("fm2_topsecret")
    out.error("refused fm2_topsecret", hint="token fm2_topsecret")
    assert "fm2_topsecret" not in capsys.readouterr().err


def test_exchange_log_redacts_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    out = Output(verbose=True)
    request = httpx.Request(
        "POST",
        "https://api.machines.dev/v1/apps/web/machines/x/stop",
        headers={"Authorization": "Bearer abc123", "fly-machine-lease-nonce": "n1"},
        json={"signal": "SIGTERM"},
    )
    response = httpx.Response(200, json={"ok": True}, headers={"fly-request-id": "r1"})
    out.log_exchange(request, response)
    err = capsys.readouterr().err
    assert "> POST https://api.machines.dev/v1/apps/web/machines/x/stop" in err
    assert "> authorization: Bearer <redacted>" in err
    assert "> fly-machine-lease-nonce: <redacted>" in err
    assert '> {"signal":"SIGTERM"}' in err
    assert "< 200 OK" in err and "< fly-request-id: r1" in err
    assert "abc123" not in err


def test_progress_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    with Output().step("Working") as step:
        step.update("Worked")
    assert plain.getvalue() == ""

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with Output().step("Working") as step:
        step.update("Worked")
    last = terminal.getvalue().splitlines()[-1]
    assert last.startswith("✓ Worked  ") and last.endswith("s")


def test_failed_step_is_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with pytest.raises(RuntimeError), Output().step("Working"):
        raise RuntimeError("boom")
    assert terminal.getvalue().splitlines()[-1].startswith("✗ Working  ")


def test_confirm_asks_only_a_person(monkeypatch: pytest.MonkeyPatch) -> None:
    out = Output()
    assert out.confirm("Delete?", yes=True)
    with pytest.raises(UsageError, match="--yes must be given"):
        out.confirm("Delete?", yes=False)

    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    monkeypatch.setattr(sys, "stdout", Terminal())
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert out.confirm("Delete?", yes=False)
    assert sys.stderr.getvalue() == "Delete? [y/N] "
    monkeypatch.setattr(sys, "stdin", Terminal("\n"))
    assert not out.confirm("Delete?", yes=False)


@pytest.mark.parametrize(
    ("env", "coloured"),
    [
        ({}, True),
        ({"NO_COLOR": "1"}, False),
        ({"CLICOLOR": "0"}, False),
        ({"CLICOLOR": "1"}, True),
        ({"TERM": "dumb"}, False),
    ],
)
def test_colour_follows_no_color_and_clicolor(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], coloured: bool
) -> None:
    for name in ("NO_COLOR", "CLICOLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    Output().error("boom")
    assert ("\x1b[" in terminal.getvalue()) is coloured
