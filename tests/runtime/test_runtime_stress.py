"""No process abort, ever: nodes start and stop under traffic, in a child process each, so a
libzmq assertion (``Assertion failed: ok (src/mailbox.cpp:72)``) shows as a failed exit code
instead of killing pytest.

The abort came from the wake-up eventfd of a node's I/O thread: the thread closed it on stop,
but ``stop()`` (called twice by ``Node.stop``) and racing ``send()`` calls wrote to that number
afterwards, by then often the eventfd of another ZeroMQ socket's mailbox in the same process
(another node's, as in a cluster in one process). libzmq found a wake-up with no command
behind it and asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from runtime_support import HERE, ROOT


def _run(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]),
               WIND_LOG_LEVEL="ERROR")
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


_FD_REUSE = textwrap.dedent("""
    import zmq
    from wind_actors.log import configure_logging
    from wind_actors.runtime import Node
    configure_logging()
    node = Node.start(name="a@x", insecure=True)
    other = zmq.Context()
    first = other.socket(zmq.PAIR)   # the other context's own threads and fds exist already
    node.transport.stop()            # the I/O thread closes its wake-up eventfd
    victim = other.socket(zmq.PAIR)  # whose mailbox takes the lowest free number: that one
    node.stop()                      # stops the transport again, as Node.stop always did
    node.transport.send("b@x", [5, 1, 0.0])  # and a late send from some actor thread
    victim.getsockopt(zmq.EVENTS)    # a stray wake-up here has no command: libzmq asserts
    print("survived", flush=True)
""")


def test_a_stopped_transport_never_writes_to_a_descriptor_it_closed():
    done = _run(_FD_REUSE, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "survived" in done.stdout


_CYCLES = textwrap.dedent("""
    import json, sys, threading, time, os
    from runtime_messages import Echo, EchoActor, Seq
    from wind_actors.errors import WindError
    from wind_actors.log import configure_logging
    from wind_actors.runtime import Node
    configure_logging()
    keys, cycles = sys.argv[1], int(sys.argv[2])

    def start(name):
        node = Node.start(name=name, keys_dir=keys)
        actor = EchoActor.start()
        node.register("echo", actor)
        return node, actor

    def traffic(ref, stop, warm):
        n = 0
        while not stop.is_set():
            try:
                ref.tell(Seq("stress", n))
                ref.ask(Echo("x"), timeout=0.3)
                n += 1
                if n == 5:
                    warm.release()
            except WindError:  # asks fail once either end stops: that is the point
                stop.wait(0.005)  # a back-off: failing at once, a tight loop would hog the GIL
        if n < 5:
            warm.release()

    # A node that lives through every cycle: the others' sockets come and go around it, as in
    # a cluster running in one process.
    hub, hub_actor = start("peer3@proc")
    started = time.monotonic()
    for cycle in range(cycles):
        a, a_actor = start("test@local")
        b, b_actor = start("peer1@proc")
        a.connect(b.name, b.address)
        a.connect(hub.name, hub.address)
        b.connect(a.name, a.address)
        stop, warm = threading.Event(), threading.Semaphore(0)
        refs = [a.ref("echo@peer1@proc"), a.ref("echo@peer3@proc"), b.ref("echo@test@local"),
                hub.ref("echo@test@local")]
        threads = [threading.Thread(target=traffic, args=(ref, stop, warm)) for ref in refs]
        for t in threads:
            t.start()
        for _ in threads:
            warm.acquire(timeout=5)
        (a if cycle % 2 else b).stop()  # under traffic, from this thread, as often either end
        (b if cycle % 2 else a).stop()
        stop.set()
        for t in threads:
            t.join(timeout=10)
        for actor in (a_actor, b_actor):
            actor.stop()
    hub.stop()
    hub_actor.stop()
    print(json.dumps({"cycles": cycles, "seconds": round(time.monotonic() - started, 1)}),
          flush=True)
    os._exit(0)  # the test owns our lifetime
""")


def test_nodes_start_and_stop_under_traffic_many_times_without_an_abort(keys_dir):
    done = _run(_CYCLES, str(keys_dir), "200", timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    assert '"cycles": 200' in done.stdout
