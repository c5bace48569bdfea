"""Supervision figures: restart latency, and tell throughput supervised vs bare Pykka.

restart_latency_ms_*: from the ``tell`` that makes a supervised child raise until
the restarted child has answered an ``ask``.
tell_ratio_supervised_vs_bare: tells/s to a supervised WatchedActor child over
tells/s to a bare pykka.ThreadingActor, measured alternately in the same run.
Logging is filtered out (level CRITICAL) for the main figures; the restart
latency with every report rendered as JSON to /dev/null is given too.
Prints human lines, then one JSON object on the last line.
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pykka

from supervisors import ChildSpec, SupFlags, WatchedActor, start_supervisor, which_children
from wind_actors.log import configure_logging

RESTARTS = int(os.environ.get("BENCH_RESTARTS", "2000"))
TELLS = int(os.environ.get("BENCH_TELLS", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "9"))


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def on_receive(self, message):
        if message == "crash":
            raise RuntimeError("benchmark crash")
        if message == "count?":
            return self.count
        self.count += 1
        return None


class BareActor(Counter, pykka.ThreadingActor):
    def __init__(self) -> None:
        pykka.ThreadingActor.__init__(self)
        Counter.__init__(self)


class SupervisedActor(Counter, WatchedActor):
    def __init__(self, started: queue.Queue | None = None) -> None:
        WatchedActor.__init__(self)
        Counter.__init__(self)
        self.started = started

    def on_start(self) -> None:
        if self.started is not None:
            self.started.put(self.actor_ref)


def restart_latencies(n: int) -> list[float]:
    started: queue.Queue = queue.Queue()
    sup = start_supervisor(SupFlags(intensity=10 * n, period=3600),
                           [ChildSpec(id="c", start=lambda: SupervisedActor.start(started))])
    ref = started.get()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        ref.tell("crash")
        ref = started.get()
        ref.ask("count?")
        out.append((time.perf_counter() - t0) * 1000.0)
    sup.stop()
    return out


def tells_per_second(ref: pykka.ActorRef, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        ref.tell("x")
    total = ref.ask("count?")
    elapsed = time.perf_counter() - t0
    assert total >= n
    return n / elapsed


def main() -> None:
    configure_logging(level="CRITICAL", force=True)
    latencies = restart_latencies(RESTARTS)
    latencies.sort()
    median = statistics.median(latencies)
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    print(f"restart latency over {RESTARTS} restarts: median {median:.3f} ms, p99 {p99:.3f} ms")

    devnull = open(os.devnull, "w")  # noqa: SIM115
    saved, sys.stderr = sys.stderr, devnull
    try:
        configure_logging(fmt="json", level="INFO", force=True)
        logged = sorted(restart_latencies(max(200, RESTARTS // 4)))
    finally:
        sys.stderr = saved
        configure_logging(level="CRITICAL", force=True)
    logged_median = statistics.median(logged)
    print(f"restart latency with JSON reports rendered (to /dev/null): median {logged_median:.3f} ms")

    sup = start_supervisor(SupFlags(), [ChildSpec(id="c", start=SupervisedActor.start)])
    supervised = which_children(sup)[0].ref
    bare = BareActor.start()
    tells_per_second(bare, TELLS // 10)  # warm up both
    tells_per_second(supervised, TELLS // 10)
    # Each round measures both back to back, in alternating order, and yields one
    # ratio; the median of those ratios resists load from other processes.
    bare_rates, sup_rates, ratios = [], [], []
    for i in range(ROUNDS):
        if i % 2:
            sup_rates.append(tells_per_second(supervised, TELLS))
            bare_rates.append(tells_per_second(bare, TELLS))
        else:
            bare_rates.append(tells_per_second(bare, TELLS))
            sup_rates.append(tells_per_second(supervised, TELLS))
        ratios.append(sup_rates[-1] / bare_rates[-1])
    bare_rate, sup_rate = statistics.median(bare_rates), statistics.median(sup_rates)
    ratio = statistics.median(ratios)
    print(f"tell throughput: bare Pykka {bare_rate:,.0f}/s, supervised {sup_rate:,.0f}/s (medians); "
          f"ratio {ratio:.3f} (median of {ROUNDS} paired rounds of {TELLS} tells; "
          f"min {min(ratios):.3f}, max {max(ratios):.3f})")
    bare.stop()
    sup.stop()
    print(json.dumps({
        "restart_latency_ms_median": round(median, 4),
        "restart_latency_ms_p99": round(p99, 4),
        "restart_latency_ms_median_with_json_logging": round(logged_median, 4),
        "tell_ratio_supervised_vs_bare": round(ratio, 4),
        "tells_per_s_bare": round(bare_rate),
        "tells_per_s_supervised": round(sup_rate),
        "restarts_measured": RESTARTS,
        "tells_per_round": TELLS,
        "rounds": ROUNDS,
    }))


if __name__ == "__main__":
    main()
