"""qemu_boot_s: define -> "booted" on the serial console, for the tiny real guest.

Runs through the DriverActor wrapping the libvirt driver on qemu:///system
(domain type 'qemu', i.e. TCG). Needs root: starts virtlogd/libvirtd if they
are not running and stops only what it started. Prints human lines, then one
JSON object on the last line. The figure is reported, with no target.

Usage: python bench/qemu_boot.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers import VMSpec, start_driver_actor  # noqa: E402
from drivers.libvirt import LibvirtDriver  # noqa: E402
from drivers.testing.daemons import ensure_libvirtd  # noqa: E402
from drivers.testing.guest import BOOTED_MARKER, build_guest, wait_for_marker  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    daemons = ensure_libvirtd()
    t0 = time.perf_counter()
    guest = build_guest()
    build_s = time.perf_counter() - t0
    print(f"guest: {guest.kernel.parent} (build or cache hit {build_s:.2f} s)")
    logs = Path("/var/tmp/wind-guest/console")
    logs.mkdir(parents=True, exist_ok=True)

    ref = start_driver_actor(lambda: LibvirtDriver(uri="qemu:///system", name="bench-qemu", domain_type="qemu"))
    proxy = ref.proxy()
    runs: list[dict[str, float]] = []
    try:
        for i in range(args.runs):
            name = f"wind-bench-{uuid.uuid4().hex[:8]}"
            log = logs / f"{name}.log"
            spec = VMSpec(name=name, vcpus=1, memory_mb=128, kernel=str(guest.kernel), initrd=str(guest.initrd),
                          cmdline=guest.cmdline, console_log=str(log))
            start = time.perf_counter()
            proxy.define(spec).get(timeout=120)
            defined = time.perf_counter()
            proxy.start_vm(name).get(timeout=120)
            started = time.perf_counter()
            wait_for_marker(log, BOOTED_MARKER, timeout=180)
            booted = time.perf_counter()
            proxy.destroy(name).get(timeout=60)
            proxy.undefine(name).get(timeout=60)
            log.unlink(missing_ok=True)
            run = {"define_s": defined - start, "start_s": started - defined, "boot_s": booted - started,
                   "total_s": booted - start}
            runs.append(run)
            print(f"run {i + 1}: define {run['define_s']:.2f} s, start {run['start_s']:.2f} s, "
                  f"console says booted after {run['boot_s']:.2f} s; define->booted {run['total_s']:.2f} s")
    finally:
        ref.stop()
        daemons.stop()

    totals = [r["total_s"] for r in runs]
    result = {
        "qemu_boot_s": round(statistics.median(totals), 3),
        "qemu_boot_min_s": round(min(totals), 3),
        "qemu_boot_max_s": round(max(totals), 3),
        "runs": len(runs),
        "guest_build_s": round(build_s, 3),
        "domain_type": "qemu (TCG)",
    }
    print(f"qemu_boot_s (median of {len(runs)}): {result['qemu_boot_s']} s")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
