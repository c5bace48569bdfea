"""A tiny bootable guest built from Debian packages, for real-QEMU tests.

The guest is the host's Debian kernel (``/boot/vmlinuz-*`` from
``linux-image-amd64``) plus an initramfs assembled here in pure Python (a
``newc`` cpio archive, gzip-compressed) holding ``busybox`` from
``busybox-static``, the two kernel modules an ACPI power button needs
(``evdev``, ``button``), and an ``/init`` script that:

- prints :data:`BOOTED_MARKER` on the serial console (``console=ttyS0``);
- runs busybox ``acpid`` so a graceful ``shutdown`` (ACPI power button, what
  libvirt sends) powers the guest off, printing :data:`POWEROFF_MARKER` first;
- then idles forever.

The result is cached under a directory keyed by a hash of every input (the
kernel, busybox, the modules and this module's init script), so a changed
kernel or script rebuilds and an unchanged one costs nothing. The default
cache directory is world-traversable (``/var/tmp/wind-guest`` for root, because
QEMU under qemu:///system runs as ``libvirt-qemu`` and cannot enter
``/root/.cache``); ``$WIND_GUEST_CACHE`` overrides it.

Usage::

    guest = build_guest()
    spec = VMSpec(name="g1", vcpus=1, memory_mb=128, disk_gb=0, image=None,
                  kernel=str(guest.kernel), initrd=str(guest.initrd),
                  cmdline=guest.cmdline, console_log=str(log_path))
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from drivers.errors import GuestBuildError

__all__ = [
    "BOOTED_MARKER",
    "POWEROFF_MARKER",
    "Guest",
    "GuestBuildError",
    "build_guest",
    "find_kernel",
    "newc_archive",
    "wait_for_marker",
]

#: Printed on the serial console once the guest's init runs.
BOOTED_MARKER = "WIND-GUEST: booted"
#: Printed on the serial console when the guest handles an ACPI power-off.
POWEROFF_MARKER = "WIND-GUEST: powering off"

_BUSYBOX = Path("/bin/busybox")
_MODULES = ("kernel/drivers/input/evdev.ko", "kernel/drivers/acpi/button.ko")
_CMDLINE = "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init"

_INIT = f"""#!/bin/busybox sh
export PATH=/bin
/bin/busybox --install -s /bin 2>/dev/null
mkdir -p /proc /sys /dev /tmp /var/run /var/log
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in /lib/modules/*.ko; do insmod "$m" 2>/dev/null; done
acpid -c /etc/acpi -l /var/log/acpid.log
echo "{BOOTED_MARKER} (kernel $(uname -r), $(nproc) cpu, $(awk '/MemTotal/ {{print $2}}' /proc/meminfo) kB)"
while true; do sleep 3600; done
"""

_POWER_BUTTON = f"""#!/bin/sh
echo "{POWEROFF_MARKER}" > /dev/console
sync
poweroff -f
"""


@dataclass(frozen=True)
class Guest:
    """A built guest: pass these to a VMSpec's kernel/initrd/cmdline.

    Attributes:
        kernel: path to the (copied) kernel image.
        initrd: path to the gzip'd newc initramfs.
        cmdline: kernel command line (serial console on ttyS0).
        marker: the line the console prints once booted.
    """

    kernel: Path
    initrd: Path
    cmdline: str
    marker: str = BOOTED_MARKER


def find_kernel() -> Path:
    """The newest ``/boot/vmlinuz-*`` (Debian's linux-image-amd64).

    Raises:
        GuestBuildError: no kernel is installed.
    """
    kernels = sorted(glob.glob("/boot/vmlinuz-*"), key=_version_key)
    if not kernels:
        raise GuestBuildError("no /boot/vmlinuz-* found; install Debian package linux-image-amd64")
    return Path(kernels[-1])


def _version_key(path: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", Path(path).name)]


def _default_cache() -> Path:
    override = os.environ.get("WIND_GUEST_CACHE")
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return Path("/var/tmp/wind-guest")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wind" / "guest"


def build_guest(cache_dir: Path | str | None = None, kernel: Path | str | None = None) -> Guest:
    """Build (or reuse from cache) the tiny guest.

    Args:
        cache_dir: where to keep builds; defaults as described in the module doc.
        kernel: a kernel image; defaults to :func:`find_kernel`. Modules are
            taken from ``/lib/modules/<version>`` matching its name.

    Returns:
        The guest's paths and command line.

    Raises:
        GuestBuildError: kernel, busybox-static or the modules are missing.
    """
    kernel = Path(kernel) if kernel else find_kernel()
    if not _BUSYBOX.exists():
        raise GuestBuildError(f"{_BUSYBOX} not found; install Debian package busybox-static")
    version = kernel.name.removeprefix("vmlinuz-")
    modules = [Path("/lib/modules") / version / m for m in _MODULES]
    missing = [str(m) for m in modules if not m.exists()]
    if missing:
        raise GuestBuildError(f"kernel modules missing for {version}: {missing}; install linux-image-{version}")

    digest = hashlib.sha256()
    for part in (kernel, _BUSYBOX, *modules):
        digest.update(part.read_bytes())
    digest.update(_INIT.encode() + _POWER_BUTTON.encode() + _CMDLINE.encode())
    out = Path(cache_dir) if cache_dir else _default_cache()
    target = out / f"guest-{digest.hexdigest()[:16]}"
    guest = Guest(kernel=target / "vmlinuz", initrd=target / "initrd.gz", cmdline=_CMDLINE)
    if guest.kernel.exists() and guest.initrd.exists():
        return guest

    # Build beside the target and rename, so a concurrent builder or a crash
    # never leaves a half-written guest that looks cached.
    tmp = out / f".build-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir(parents=True, exist_ok=True)
    for d in (out, tmp):
        d.chmod(0o755)  # QEMU runs as libvirt-qemu and must reach the files
    # A copy, because libvirt relabels (chowns) kernel/initrd it boots, and
    # /boot's own files must stay untouched.
    shutil.copyfile(kernel, tmp / "vmlinuz")
    (tmp / "initrd.gz").write_bytes(_initramfs(modules))
    for f in ("vmlinuz", "initrd.gz"):
        (tmp / f).chmod(0o644)
    try:
        tmp.rename(target)
    except OSError:  # another builder won the race; its result is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return guest


def _initramfs(modules: list[Path]) -> bytes:
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = [
        ("bin", stat.S_IFDIR | 0o755, b"", (0, 0)),
        ("dev", stat.S_IFDIR | 0o755, b"", (0, 0)),
        # The kernel opens /dev/console for init's stdio before init runs, so
        # the node must be in the archive (devtmpfs is mounted later).
        ("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
        ("etc", stat.S_IFDIR | 0o755, b"", (0, 0)),
        ("etc/acpi", stat.S_IFDIR | 0o755, b"", (0, 0)),
        ("etc/acpi/PWRF", stat.S_IFDIR | 0o755, b"", (0, 0)),
        ("etc/acpi/PWRF/00000080", stat.S_IFREG | 0o755, _POWER_BUTTON.encode(), (0, 0)),
        ("lib", stat.S_IFDIR | 0o755, b"", (0, 0)),
        ("lib/modules", stat.S_IFDIR | 0o755, b"", (0, 0)),
        ("bin/busybox", stat.S_IFREG | 0o755, _BUSYBOX.read_bytes(), (0, 0)),
        ("bin/sh", stat.S_IFLNK | 0o777, b"busybox", (0, 0)),
        ("init", stat.S_IFREG | 0o755, _INIT.encode(), (0, 0)),
    ]
    # evdev before button: init loads them in glob order, hence the prefixes.
    for i, module in enumerate(modules):
        entries.append((f"lib/modules/{i}-{module.name}", stat.S_IFREG | 0o644, module.read_bytes(), (0, 0)))
    return gzip.compress(newc_archive(entries), compresslevel=6, mtime=0)


def newc_archive(entries: list[tuple[str, int, bytes, tuple[int, int]]]) -> bytes:
    """Encode a cpio archive in the kernel's ``newc`` format.

    Args:
        entries: ``(path, mode, data, (rdev_major, rdev_minor))``; mode includes
            the file type bits; a symlink's data is its target.

    Returns:
        The archive bytes, ending with the ``TRAILER!!!`` record.
    """
    buf = io.BytesIO()
    for ino, (name, mode, data, (rmaj, rmin)) in enumerate([*entries, ("TRAILER!!!", 0, b"", (0, 0))], 1):
        encoded = name.encode() + b"\0"
        fields = (ino if name != "TRAILER!!!" else 0, mode, 0, 0, 1 if not stat.S_ISDIR(mode) else 2,
                  0, len(data), 0, 0, rmaj, rmin, len(encoded), 0)
        buf.write(b"070701" + b"".join(b"%08X" % f for f in fields))
        buf.write(encoded)
        buf.write(b"\0" * (-(110 + len(encoded)) % 4))
        buf.write(data)
        buf.write(b"\0" * (-len(data) % 4))
    return buf.getvalue()


def wait_for_marker(log: Path | str, marker: str = BOOTED_MARKER, timeout: float = 120.0,
                    start_offset: int = 0) -> float:
    """Wait until ``marker`` appears in a console log file.

    Args:
        log: the serial console log (it may not exist yet).
        marker: text to look for.
        timeout: seconds before giving up.
        start_offset: ignore the first ``start_offset`` bytes (earlier boots).

    Returns:
        Seconds waited.

    Raises:
        TimeoutError: the marker did not appear in time (with the log's tail).
    """
    path = Path(log)
    begin = time.monotonic()
    needle = marker.encode()
    while time.monotonic() - begin < timeout:
        try:
            if needle in path.read_bytes()[start_offset:]:
                return time.monotonic() - begin
        except FileNotFoundError:
            pass
        time.sleep(0.1)  # polling the console log file, with a deadline
    tail = path.read_bytes()[-1500:].decode(errors="replace") if path.exists() else "(no log file)"
    raise TimeoutError(f"{marker!r} not on console {path} within {timeout:.0f} s; log tail:\n{tail}")
