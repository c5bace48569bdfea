"""Pooled actors against thread-per-actor: memory and threads for N actors, tell throughput.

Run: ``.venv/bin/python bench/pooled.py [N]`` (default 10,000). The last line is JSON.
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
import tracemalloc
from typing import Any

import pykka
import structlog

from supervisors import PooledActor, WatchedActor


class Threaded(WatchedActor):
    use_daemon_thread = True

    def on_receive(self, message: Any) -> Any:
        return message


class Pooled(PooledActor):
    def on_receive(self, message: Any) -> Any:
        return message


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(cls: type, n: int) -> dict[str, Any]:
    gc.collect()
    threads0, rss0 = threading.active_count(), _rss_kb()
    tracemalloc.start()
    refs = [cls.start() for _ in range(n)]
    for ref in refs:
        ref.ask("ping")
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = _rss_kb() - rss0
    threads = threading.active_count() - threads0
    messages = 20 * n
    started = time.perf_counter()
    for _ in range(20):
        for ref in refs:
            ref.tell("x")
    for ref in refs:
        ref.ask("ping")
    rate = messages / (time.perf_counter() - started)
    pykka.ActorRegistry.stop_all(block=True, timeout=60)
    return {"traced_kb_per_actor": round(traced / 1024 / n, 2), "rss_kb_per_actor": round(rss / n, 2),
            "threads": threads, "tells_per_s": round(rate)}


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    pooled = measure(Pooled, n)
    threaded = measure(Threaded, n)
    result = {"bench": "pooled", "actors": n, "pooled": pooled, "threaded": threaded,
              "tell_throughput_ratio": round(pooled["tells_per_s"] / threaded["tells_per_s"], 2)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
