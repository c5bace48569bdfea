"""libcloud (and transport) exceptions -> drivers.errors, and retry with backoff.

This is the cloud driver's boundary: nothing outside this package sees a
libcloud or requests exception. Messages are scrubbed of the credentials
before they go into a Wind error.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import requests
import structlog
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError, LibcloudError, MalformedResponseError

from ..errors import (
    AuthenticationFailed, BackendError, ConnectionLost, DriverError, OperationTimeout, Throttled, VMNotFound,
)

__all__ = ["translate", "backoff_delays", "call_with_retry"]

T = TypeVar("T")
_log = structlog.get_logger("wind.drivers.cloud")

# Provider error codes that mean "slow down" (EC2, OpenStack, generic HTTP).
_THROTTLE_WORDS = ("RequestLimitExceeded", "Throttling", "ThrottlingException", "TooManyRequests",
                   "Rate limit", "rate limit", "OverLimit", "overLimit")
_AUTH_WORDS = ("AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException",
               "InvalidAccessKeyId", "Unauthorized", "unauthorized")
_NOT_FOUND_WORDS = ("InvalidInstanceID.NotFound", "itemNotFound", "NotFound")


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


def translate(exc: BaseException, *, driver: str, vm: str | None, op: str,
              secrets: Iterable[str] = ()) -> DriverError:
    """The Wind error for a backend exception.

    Args:
        exc: what libcloud, requests or the socket layer raised.
        driver: endpoint name, for the error's context.
        vm: the VM concerned, if any.
        op: the operation that failed.
        secrets: credential values to scrub from the message.

    Returns:
        A :class:`~drivers.errors.DriverError` subclass instance (not raised).
    """
    secrets = tuple(secrets)
    text = _scrub(str(exc) or type(exc).__name__, secrets)
    where = f"{op} on cloud endpoint {driver!r}"
    code = getattr(exc, "code", None)
    if isinstance(exc, DriverError):
        return exc
    if isinstance(exc, RateLimitReachedError) or (
        isinstance(exc, BaseHTTPError) and (code in (429, 503) or any(w in text for w in _THROTTLE_WORDS))
    ):
        retry_after = getattr(exc, "retry_after", None)
        return Throttled(f"{where} was throttled by the provider ({text}); retry later",
                         driver=driver, vm=vm, op=op, code=code, retry_after=retry_after)
    if isinstance(exc, InvalidCredsError) or (
        isinstance(exc, (BaseHTTPError, LibcloudError)) and (code in (401,) or any(w in text for w in _AUTH_WORDS))
    ):
        return AuthenticationFailed(f"{where}: the provider refused the configured credentials ({text}); "
                                    "check key/secret (not shown) and region",
                                    driver=driver, vm=vm, op=op)
    if isinstance(exc, BaseHTTPError) and (code == 404 or any(w in text for w in _NOT_FOUND_WORDS)) and vm:
        return VMNotFound(f"{where}: the provider has no instance for VM {vm!r} ({text})", driver=driver, vm=vm, op=op)
    if isinstance(exc, (requests.Timeout, socket.timeout, TimeoutError)):
        return OperationTimeout(f"{where} timed out: {text}", driver=driver, vm=vm, op=op)
    if isinstance(exc, (requests.ConnectionError, ConnectionError, OSError)):
        return ConnectionLost(f"{where}: cannot reach the endpoint ({type(exc).__name__}); it will be retried",
                              driver=driver, vm=vm, op=op)
    if isinstance(exc, MalformedResponseError):
        return BackendError(f"{where}: the provider sent a malformed response ({_scrub(exc.value, secrets)[:200]})",
                            driver=driver, vm=vm, op=op)
    if isinstance(exc, BaseHTTPError):
        return BackendError(f"{where} failed: HTTP {code}: {text}", driver=driver, vm=vm, op=op, code=code)
    return BackendError(f"{where} failed: {type(exc).__name__}: {text}", driver=driver, vm=vm, op=op)


def backoff_delays(retries: int, first: float, cap: float, *, jitter: float = 0.1,
                   rng: random.Random | None = None) -> list[float]:
    """Delays before each retry: ``first * 2**i``, capped, with a little jitter.

    Args:
        retries: how many retries.
        first: delay before the first retry, in seconds.
        cap: no delay exceeds this.
        jitter: relative jitter (0.1: up to +10%), so many drivers do not retry in step.
        rng: a seeded Random for deterministic tests.

    Returns:
        ``retries`` non-decreasing-in-expectation delays, each in ``[0, cap]``.
    """
    rng = rng or random.Random()
    return [min(cap, first * (2 ** i) * (1 + jitter * rng.random())) for i in range(retries)]


def call_with_retry(fn: Callable[[], T], *, driver: str, vm: str | None, op: str, retries: int,
                    first: float, cap: float, secrets: Iterable[str] = (),
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``fn``, translating failures; retry throttled calls with backoff.

    Only :class:`~drivers.errors.Throttled` is retried here: a throttled call
    changed nothing on the provider, so repeating it is safe. Other errors
    are raised at once (connection loss is the driver actor's to handle).

    Returns:
        ``fn()``'s result.

    Raises:
        DriverError: the translated error; Throttled after ``retries`` retries.
    """
    secrets = tuple(secrets)
    delays = backoff_delays(retries, first, cap)
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as exc:  # the boundary: every backend exception is translated
            error = translate(exc, driver=driver, vm=vm, op=op, secrets=secrets)
            if not isinstance(error, Throttled) or attempt >= retries:
                raise error from None
            delay = delays[attempt]
            retry_after = error.context.get("retry_after")
            if isinstance(retry_after, (int, float)) and retry_after > 0:
                delay = min(max(delay, float(retry_after)), cap)
            _log.info("cloud.throttled", driver=driver, vm=vm, op=op, attempt=attempt + 1, delay_s=round(delay, 3))
            sleep(delay)
    raise AssertionError("unreachable")
