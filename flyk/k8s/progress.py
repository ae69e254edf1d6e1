"""How the workflows report progress without knowing about terminals.

The CLI passes its Output (whose `step()` draws a spinner and a `✓ … 1.2s` line); tests and
library users pass `NullProgress` or a recorder. Nothing secret is ever passed through here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class StepHandle(Protocol):
    def update(self, message: str) -> None: ...


class Progress(Protocol):
    def step(self, message: str) -> AbstractContextManager[StepHandle]: ...

    def notice(self, message: str) -> None: ...


class _Handle:
    def __init__(self, message: str) -> None:
        self.message = message

    def update(self, message: str) -> None:
        self.message = message


class NullProgress:
    """Reports nothing."""

    @contextmanager
    def step(self, message: str) -> Iterator[StepHandle]:
        yield _Handle(message)

    def notice(self, message: str) -> None:
        pass


class RecordingProgress:
    """Keeps every finished step's final message (tests read `.steps`)."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.notices: list[str] = []

    @contextmanager
    def step(self, message: str) -> Iterator[StepHandle]:
        handle = _Handle(message)
        try:
            yield handle
        except BaseException:
            self.steps.append(f"✗ {handle.message}")
            raise
        self.steps.append(f"✓ {handle.message}")

    def notice(self, message: str) -> None:
        self.notices.append(message)
