"""Structured logging for Wind, configured once per process.

People get structlog's console renderer; machines get one JSON object per line
when ``WIND_LOG_FORMAT=json`` (or ``configure_logging(fmt="json")``).
Secrets never reach the logs: any event key named like a secret is redacted
here, at the single place every event passes through.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger", "redact_secrets"]

_SECRET_WORDS = ("secret", "password", "token", "credential", "private_key", "api_key")
_configured = False


def redact_secrets(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: replace the value of any secret-looking key."""
    for key in list(event):
        lowered = key.lower()
        if any(word in lowered for word in _SECRET_WORDS):
            event[key] = "***"
    return event


def configure_logging(fmt: str | None = None, level: str | None = None, *, force: bool = False) -> None:
    """Configure structlog for this process.

    Args:
        fmt: ``"console"`` (default) or ``"json"``; defaults to ``$WIND_LOG_FORMAT``.
        level: a logging level name; defaults to ``$WIND_LOG_LEVEL`` or ``INFO``.
        force: reconfigure even if already configured.
    """
    global _configured
    if _configured and not force:
        return
    fmt = (fmt or os.environ.get("WIND_LOG_FORMAT") or "console").lower()
    if fmt not in ("console", "json"):
        raise ValueError(f"log format {fmt!r} is not allowed; use 'console' or 'json'")
    level_name = (level or os.environ.get("WIND_LOG_LEVEL") or "INFO").upper()
    numeric = logging.getLevelName(level_name)
    if not isinstance(numeric, int):
        raise ValueError(f"log level {level_name!r} is not a logging level name")
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info if fmt == "json" else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    _configured = True


class _CurrentStderr:
    """A file-like object that writes to whatever ``sys.stderr`` is *now*.

    structlog's PrintLogger keeps the file it was given; binding the real
    stream at configure time breaks when stderr is swapped later (pytest's
    capture, daemons redirecting their output)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def get_logger(name: str, **bound: Any) -> Any:
    """Return a structlog logger bound to ``logger=name`` and any extra context."""
    return structlog.get_logger().bind(logger=name, **bound)
