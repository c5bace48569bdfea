"""libvirt's event loop: ONE thread per process, shared by every LibvirtDriver.

libvirt needs its default event implementation registered before the first
connection that wants events is opened, and someone must keep calling
``virEventRunDefaultImpl``. Every lifecycle callback and close callback of
every connection in the process runs on this one thread.
"""

from __future__ import annotations

import atexit
import threading

import libvirt
import structlog

__all__ = ["ensure_event_loop", "event_loop_thread"]

_lock = threading.Lock()
_thread: threading.Thread | None = None
_stopping = threading.Event()
_log = structlog.get_logger("wind.drivers.libvirt")


def _quiet(_ctx: object, _err: object) -> None:
    # libvirt prints every error to stderr by default; we raise them as Wind
    # errors instead, so silence the duplicate.
    return None


def _run() -> None:
    while not _stopping.is_set():
        try:
            libvirt.virEventRunDefaultImpl()
        except Exception:  # keep the process's only event loop alive
            _log.exception("libvirt.event_loop_iteration_failed")


def ensure_event_loop() -> threading.Thread:
    """Start the process's libvirt event-loop thread if it is not running.

    Returns:
        The (daemon) thread, named ``wind-libvirt-events``.
    """
    global _thread
    with _lock:
        if _thread is None:
            libvirt.registerErrorHandler(_quiet, None)
            libvirt.virEventRegisterDefaultImpl()
            _thread = threading.Thread(target=_run, name="wind-libvirt-events", daemon=True)
            _thread.start()
        return _thread


def _wake(timer: int, _opaque: object) -> None:
    libvirt.virEventRemoveTimeout(timer)


@atexit.register
def _stop_at_exit() -> None:
    # A daemon thread still inside libvirt's C loop when the interpreter
    # finalizes can call back into a dying Python and abort the process (seen
    # as a fatal-error dump naming libvirtmod at exit). atexit runs before
    # finalization, so stop the loop here: set the flag, wake the loop with a
    # timer that fires at once, and wait for the thread to leave.
    if _thread is None or not _thread.is_alive():
        return
    _stopping.set()
    libvirt.virEventAddTimeout(0, _wake, None)
    _thread.join(timeout=5)


def event_loop_thread() -> threading.Thread | None:
    """The event-loop thread, or None before the first LibvirtDriver connected."""
    return _thread
