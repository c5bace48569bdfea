"""Real backend daemons for tests and benchmarks: libvirtd+virtlogd (QEMU),
moto's EC2 server and the mimic OpenStack emulator.

Each starter returns a handle that stops only what it started, by PID (never
by name: another test run or the machine's own libvirtd may be using them).
Servers listen on a free port of 127.0.0.1 only.

    with MotoServer.start() as moto:        # moto.url == "http://127.0.0.1:PORT"
        ...
    with MimicServer.start() as mimic:      # mimic.identity_url ends in /identity/v2.0
        ...
    handle = ensure_libvirtd()              # no-op when libvirtd already answers
    handle.stop()                           # stops it only if we started it

Nothing here is imported by Wind itself; it is test and bench tooling.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from drivers.errors import DaemonError

__all__ = [
    "DaemonError",
    "LibvirtdHandle",
    "MimicServer",
    "MotoServer",
    "ensure_libvirtd",
    "free_port",
    "libvirtd_pid",
    "started_here",
    "mimic_python",
]

_LIBVIRT_SOCK = Path("/run/libvirt/libvirt-sock")
_LIBVIRTD_PIDFILE = Path("/run/libvirtd.pid")
_VIRTLOGD_PIDFILE = Path("/run/virtlogd.pid")


#: PIDs of the daemons ensure_libvirtd() started in this process (whatever handle holds them).
_STARTED_HERE: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    Returns:
        The port number (the caller starts a server on it; a lost race shows
        up as that server failing to start, which the starters report).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until(predicate: Callable[[], bool], timeout: float, what: str,
                proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise DaemonError(f"{what} exited with status {proc.returncode} before it was ready:\n{tail}")
        time.sleep(0.05)  # polling readiness with a deadline (a daemon has no event to wait on)
    raise DaemonError(f"{what} was not ready within {timeout:.0f} s")


def _stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; ignores a PID that is already gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:  # not our child: poll its existence instead
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)  # polling a process we may not own until it is gone, with a deadline
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- libvirtd


@dataclass
class LibvirtdHandle:
    """libvirtd and virtlogd as found or started by :func:`ensure_libvirtd`.

    Attributes:
        started: PIDs of the daemons *we* started (empty when they were running).
    """

    started: dict[str, int] = field(default_factory=dict)

    def stop(self) -> None:
        """Stop the daemons this handle started (libvirtd first), by PID."""
        for name in ("libvirtd", "virtlogd"):
            pid = self.started.pop(name, None)
            if pid is not None:
                _stop_pid(pid, timeout=15)


def _pid_alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _libvirtd_answers() -> bool:
    if not _LIBVIRT_SOCK.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(_LIBVIRT_SOCK))
        except OSError:
            return False
    return True


def _fix_kvm_permissions() -> None:
    # Without this, libvirtd probes /dev/kvm on every define and each define
    # takes ~40 s (see DESIGN.md). We still run guests with type='qemu' (TCG).
    kvm = Path("/dev/kvm")
    if kvm.exists():
        with contextlib.suppress(OSError, KeyError):
            shutil.chown(kvm, group="kvm")
            kvm.chmod(0o660)


def ensure_libvirtd(timeout: float = 30.0) -> LibvirtdHandle:
    """Make sure virtlogd and libvirtd (with its QEMU driver) are running.

    Needs root. Fixes /dev/kvm permissions first. Daemons that already run
    are left alone and not recorded in the handle.

    Args:
        timeout: seconds to wait for libvirtd's socket to answer.

    Returns:
        A handle whose ``stop()`` stops only what this call started.

    Raises:
        DaemonError: not root, binaries missing, or libvirtd did not come up.
    """
    if os.geteuid() != 0:
        raise DaemonError("starting libvirtd for qemu:///system needs root; run the slow tests as root")
    for binary in ("libvirtd", "virtlogd"):
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
            raise DaemonError(f"{binary} not found; install libvirt-daemon-system (see .ci/system-deps)")
    _fix_kvm_permissions()
    handle = LibvirtdHandle()
    if _pid_alive(_VIRTLOGD_PIDFILE) is None:
        subprocess.run(["virtlogd", "-d"], check=True, env=_sbin_env())
        _wait_until(lambda: _pid_alive(_VIRTLOGD_PIDFILE) is not None, timeout, "virtlogd")
        handle.started["virtlogd"] = _pid_alive(_VIRTLOGD_PIDFILE)  # type: ignore[assignment]
        _STARTED_HERE.add(handle.started["virtlogd"])
    if not _libvirtd_answers():
        subprocess.run(["libvirtd", "-d"], check=True, env=_sbin_env())
        _wait_until(_libvirtd_answers, timeout, "libvirtd")
        pid = _pid_alive(_LIBVIRTD_PIDFILE)
        if pid is not None:
            handle.started["libvirtd"] = pid
            _STARTED_HERE.add(pid)
    return handle


def libvirtd_pid() -> int | None:
    """The running libvirtd's PID (from its pidfile), or None."""
    return _pid_alive(_LIBVIRTD_PIDFILE)


def started_here(pid: int) -> bool:
    """Whether :func:`ensure_libvirtd` in this process started the daemon with this PID.

    A test that kills a daemon someone else started should leave a
    replacement running; one it (or an earlier test here) started, it stops.
    """
    return pid in _STARTED_HERE


def _sbin_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
    return env


# --------------------------------------------------------------------------- HTTP emulators


class _ServerProcess:
    """A child HTTP server on 127.0.0.1:port, stopped by PID."""

    name = "server"

    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def stop(self) -> None:
        """Stop the server by PID (idempotent)."""
        if self.proc.poll() is None:
            _stop_pid(self.proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    def _spawn(cls, argv: list[str], ready: Callable[[int], bool], timeout: float,
               attempts: int = 3, env: dict[str, str] | None = None):
        last: Exception | None = None
        for _ in range(attempts):  # a lost free-port race is retried on a new port
            port = free_port()
            log = Path(os.environ.get("TMPDIR", "/tmp")) / f"wind-{cls.name}-{port}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen([a.replace("{port}", str(port)) for a in argv],
                                        stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env, start_new_session=True)
            server = cls(proc, port, log)
            try:
                _wait_until(lambda: ready(port), timeout, cls.name, proc, log)
                return server
            except DaemonError as exc:
                server.stop()
                last = exc
        raise DaemonError(f"could not start {cls.name} after {attempts} attempts: {last}")


def _http_ok(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> bool:
    try:
        req = urllib.request.Request(url, data=data, headers=headers or {})
        with urllib.request.urlopen(req, timeout=2) as resp:
            return 200 <= resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


class MotoServer(_ServerProcess):
    """moto's standalone AWS emulator (``moto_server``) on 127.0.0.1.

    Any access key / secret is accepted by moto, so "wrong credentials" cannot
    be produced by moto itself (see the cloud tests for how that is covered).
    """

    name = "moto_server"

    @classmethod
    def start(cls, timeout: float = 30.0) -> MotoServer:
        """Start ``moto_server`` (the one installed next to this Python).

        Returns:
            The running server; use it as a context manager or call ``stop()``.
        """
        exe = Path(sys.executable).with_name("moto_server")
        argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
        return cls._spawn(argv + ["-H", "127.0.0.1", "-p", "{port}"],
                          lambda port: _http_ok(f"http://127.0.0.1:{port}/moto-api/"), timeout)

    def reset(self) -> None:
        """Forget every resource moto holds (``POST /moto-api/reset``)."""
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST"),
                               timeout=5).close()


# mimic (Rackspace's OpenStack emulator) is Twisted code that needs attrs<24,
# which would downgrade attrs in Wind's own venv; it runs in its own venv.
_MIMIC_REQUIREMENTS = ["mimic==2.2.0", "attrs<24"]


def _mimic_venv() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wind"
    return base / "mimic-venv"


def mimic_python(install: bool = True) -> Path:
    """The Python interpreter that can run mimic.

    ``$WIND_MIMIC_PYTHON`` wins; otherwise a venv under ``~/.cache/wind/mimic-venv``,
    created with ``pip install mimic 'attrs<24'`` on first use when ``install``.

    Raises:
        DaemonError: mimic is not available and could not be installed.
    """
    override = os.environ.get("WIND_MIMIC_PYTHON")
    candidates = [Path(override)] if override else [_mimic_venv() / "bin" / "python"]
    for python in candidates:
        if python.exists() and _imports_mimic(python):
            return python
    if override or not install:
        raise DaemonError(f"no Python with mimic found (tried {', '.join(map(str, candidates))})")
    venv = _mimic_venv()
    base_python = shutil.which("python3.11") or shutil.which("python3") or sys.executable
    try:
        subprocess.run([base_python, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *_MIMIC_REQUIREMENTS],
                       check=True, capture_output=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        out = getattr(exc, "stderr", b"") or b""
        raise DaemonError(f"could not install mimic into {venv}: {out.decode(errors='replace')[-1500:]}") from exc
    python = venv / "bin" / "python"
    if not _imports_mimic(python):
        raise DaemonError(f"mimic installed into {venv} but does not import")
    return python


def _imports_mimic(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import mimic, twisted"], capture_output=True).returncode == 0


def _mimic_auth_ok(port: int) -> bool:
    body = json.dumps({"auth": {"passwordCredentials": {"username": "probe", "password": "probe"}}}).encode()
    return _http_ok(f"http://127.0.0.1:{port}/identity/v2.0/tokens", body, {"Content-Type": "application/json"})


class MimicServer(_ServerProcess):
    """mimic, an OpenStack (Rackspace-flavoured) API emulator, on 127.0.0.1.

    It serves Keystone v2 at :attr:`identity_url` and Nova under per-region
    endpoints listed in the token's service catalog (regions ``ORD``, ``DFW``,
    ``IAD``). Like moto, it accepts any username and password.
    """

    name = "mimic"

    @property
    def identity_url(self) -> str:
        """Keystone v2.0 base URL (what libcloud calls ``ex_force_auth_url``, minus the path)."""
        return f"{self.url}/identity/v2.0"

    @classmethod
    def start(cls, timeout: float = 60.0) -> MimicServer:
        """Start mimic under ``twistd -n`` (foreground, so its PID is ours).

        Raises:
            DaemonError: mimic is missing and cannot be installed, or did not start.
        """
        python = mimic_python()
        argv = [str(python.with_name("twistd")), "--pidfile=", "-n", "mimic",
                "--listen", "tcp:{port}:interface=127.0.0.1"]
        return cls._spawn(argv, _mimic_auth_ok, timeout)
