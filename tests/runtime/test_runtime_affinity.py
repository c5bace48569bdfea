"""``[node] cpus``: pinning a node's whole process, checked on real threads through /proc.

Every pin runs in a child process, so the test process keeps its CPUs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from runtime_support import ROOT, wind_node_start

from wind_actors.config import NodeConfig
from wind_actors.errors import ConfigError

# The last CPU this process may use: pinning there is a visible change from the default.
TARGET = max(os.sched_getaffinity(0))


def _cpus_of(pid: int) -> dict[int, set[int]]:
    """CPUs allowed to each thread of ``pid``, read from /proc (not from the process itself)."""
    found: dict[int, set[int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                cpus: set[int] = set()
                for part in line.split(":", 1)[1].strip().split(","):
                    lo, _, hi = part.partition("-")
                    cpus.update(range(int(lo), int(hi or lo) + 1))
                found[int(task.name)] = cpus
    return found


def test_cpus_is_read_as_a_tuple_and_defaults_to_not_pinned():
    assert NodeConfig(name="a@b", insecure=True).cpus is None
    assert NodeConfig.from_dict({"name": "a@b", "insecure": True, "cpus": [1, 0]}).cpus == (1, 0)


@pytest.mark.parametrize("value", [[], [0, 0], [-1], ["0"], [True], 0, [[0]]], ids=repr)
def test_a_bad_cpus_value_names_the_field_value_and_what_is_allowed(value):
    with pytest.raises(ConfigError) as info:
        NodeConfig.from_dict({"name": "a@b", "insecure": True, "cpus": value})
    text = str(info.value)
    assert "cpus" in text and repr(value) in text and "non-empty list of distinct CPU numbers" in text


_PIN_SCRIPT = textwrap.dedent("""
    import json, os, sys, threading
    from wind_actors.affinity import pin_process
    from wind_actors.errors import ConfigError

    target = int(sys.argv[1])
    release = threading.Event()
    early = threading.Thread(target=release.wait)  # started before the pin
    early.start()
    try:
        pin_process([os.cpu_count() + 5])
        refused = None
    except ConfigError as exc:
        refused = str(exc)
    unchanged = sorted(os.sched_getaffinity(0))
    before = pin_process([target])
    late = threading.Thread(target=release.wait)  # started after it
    late.start()
    print(json.dumps({"refused": refused, "unchanged": unchanged, "before": sorted(before),
                      "early": early.native_id, "late": late.native_id}), flush=True)
    sys.stdin.readline()  # the test reads /proc meanwhile
    release.set()
""")


def test_pin_process_pins_threads_started_before_and_after_and_refuses_a_missing_cpu():
    proc = subprocess.Popen([sys.executable, "-c", _PIN_SCRIPT, str(TARGET)], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        report = json.loads(proc.stdout.readline())
        threads = _cpus_of(proc.pid)
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    assert "does not exist here" in report["refused"] and "[node] cpus" in report["refused"]
    assert report["unchanged"] == sorted(os.sched_getaffinity(0)), "a refused pin changed nothing"
    assert report["before"] == sorted(os.sched_getaffinity(0))
    assert {report["early"], report["late"], proc.pid} <= set(threads)
    assert all(cpus == {TARGET} for cpus in threads.values()), threads


def test_wind_node_start_pins_every_thread_of_the_node_to_its_configured_cpus(tmp_path):
    config = tmp_path / "n.toml"
    config.write_text(f'[node]\nname = "pinned@proc"\ninsecure = true\ncpus = [{TARGET}]\n')
    proc = wind_node_start(config)
    try:
        assert json.loads(proc.stdout.readline())["name"] == "pinned@proc"  # the node is serving
        threads = _cpus_of(proc.pid)
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.stdout.close()
    # The node's actor threads and libzmq's I/O threads, not just the main one.
    assert len(threads) > 2
    assert all(cpus == {TARGET} for cpus in threads.values()), threads
