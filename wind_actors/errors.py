"""Every exception the wind_actors package raises.

    WindError                       base; carries context and ``recoverable``
    ├── ConfigError                 a config file or setting is invalid
    └── (more are added by the runtime, services and CLI issues)
"""

from __future__ import annotations

from typing import Any

__all__ = ["WindError", "ConfigError"]


class WindError(Exception):
    """Base of every wind_actors error.

    Args:
        message: what was wrong, where, and what is allowed.
        recoverable: whether retrying may succeed (restart logic reads it).
        **context: structured context such as ``node=`` or ``vm=``.
    """

    recoverable: bool = False

    def __init__(self, message: str, *, recoverable: bool | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        if recoverable is not None:
            self.recoverable = recoverable
        self.context = context

    def __str__(self) -> str:
        if not self.context:
            return self.message
        ctx = " ".join(f"{k}={v}" for k, v in self.context.items())
        return f"{self.message} [{ctx}]"


class ConfigError(WindError):
    """A configuration file or value is invalid."""
