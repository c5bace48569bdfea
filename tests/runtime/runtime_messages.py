"""Wire messages and actors shared by the runtime tests and their helper node processes."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import supervisors
from wind_actors.runtime import RemoteRef, message


@message("test.runtime.echo", version=1)
@dataclasses.dataclass(frozen=True)
class Echo:
    """Answered with itself; ``text == "boom"`` makes the answering actor raise."""

    text: str


@message("test.runtime.slow", version=1)
@dataclasses.dataclass(frozen=True)
class Slow:
    """Answered with ``"slept"`` after ``seconds``."""

    seconds: float


@message("test.runtime.seq", version=1)
@dataclasses.dataclass(frozen=True)
class Seq:
    """One numbered message of a stream from ``sender``."""

    sender: str
    n: int


@message("test.runtime.dump", version=1)
@dataclasses.dataclass(frozen=True)
class Dump:
    """Ask a collector for what it received."""


@message("test.runtime.call_me", version=1)
@dataclasses.dataclass(frozen=True)
class CallMe:
    """Ask the receiver to ask ``ref`` with ``Echo(text)`` and return the answer."""

    ref: RemoteRef
    text: str


@message("test.runtime.crash", version=1)
@dataclasses.dataclass(frozen=True)
class Crash:
    """Told to a crasher: it raises ``RuntimeError(why)`` and dies with it."""

    why: str


@message("test.runtime.stop", version=1)
@dataclasses.dataclass(frozen=True)
class Stop:
    """Told to a crasher: it stops with reason "normal"."""


class EchoActor(supervisors.WatchedActor):
    """Answers asks with the message; raises ValueError on ``Echo("boom")``."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Echo) and message.text == "boom":
            raise ValueError("boom on purpose")
        if isinstance(message, Slow):
            time.sleep(message.seconds)  # simulates slow work, not a wait for an event
            return "slept"
        return message


class CollectorActor(supervisors.WatchedActor):
    """Records every Seq told to it; ``Dump`` returns them as (sender, n) pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int]] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Seq):
            self.seen.append((message.sender, message.n))
            return None
        if isinstance(message, Dump):
            return tuple(self.seen)
        return None


class CallerActor(supervisors.WatchedActor):
    """On ``CallMe(ref, text)`` asks ``ref`` (a ref that came inside the message)."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, CallMe):
            return message.ref.ask(Echo(message.text), timeout=5.0)
        return None


class CrasherActor(supervisors.WatchedActor):
    """Dies with RuntimeError on ``Crash``; stops normally on ``Stop``."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Crash):
            raise RuntimeError(message.why)
        if isinstance(message, Stop):
            self.stop_with(supervisors.NORMAL)
        return None
