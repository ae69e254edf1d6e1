"""What the tests ask of processes they did not start themselves (Linux /proc)."""

from __future__ import annotations

from pathlib import Path


def process_state(pid: int) -> str:
    """The one-letter state of /proc/PID/stat (R, S, T, Z, …); "" when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2]


def alive(pid: int) -> bool:
    """Running, sleeping or stopped: anything but gone or a zombie."""
    return process_state(pid) not in ("", "Z", "X")
