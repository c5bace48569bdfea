"""examples/fault_injection.py runs as a user would run it (its own OS process) and shows Wind
converging back after every fault it injects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fault_injection.py"


def test_the_fault_injection_example_exits_0_and_shows_each_fault_healed():
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for line in ("fault 1: killed acme.shop.node-0", "shop node-0 is running again", "(restarts: 1)",
                 "report node-0 is crashed and stays so (restart: never)",
                 "fault 2: stopped the agent of", "shows lost (it still runs there)",
                 "none started twice: True",
                 "fault 3: partitioned the controller from", "shop runs 3/3",
                 "fault 4: dropped 1 driver connection(s)", "report stays crashed",
                 "VMs left in the hypervisors: 0", "converged after every fault"):
        assert line in out, f"{line!r} missing from:\n{out}"
    assert "NOT converged" not in out
