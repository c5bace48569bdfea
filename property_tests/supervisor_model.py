"""A pure model of OTP's supervisor semantics, as the oracle for the stateful test.

It covers one_for_one, one_for_all and rest_for_one; permanent, transient and
temporary children; restart intensity over a period; and the API calls
start_child, terminate_child, restart_child and delete_child. Children always
start successfully here, so there is no "restarting" state. Written from
``supervisor.erl`` (do_restart, restart/2, terminate_children, add_restart),
independently of the ``supervisors`` package, which it checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelChild:
    id: str
    restart: str
    running: bool = True
    starts: int = 1  # how many times this child has been started


@dataclass
class SupervisorModel:
    strategy: str
    intensity: int
    period: float
    children: list[ModelChild] = field(default_factory=list)
    restarts: list[float] = field(default_factory=list)  # newest first
    alive: bool = True

    def find(self, cid: str) -> ModelChild | None:
        return next((c for c in self.children if c.id == cid), None)

    # -- exits -------------------------------------------------------------------

    def child_exit(self, cid: str, abnormal: bool, now: float) -> None:
        """A running child exits by itself (a crash if ``abnormal``, else "normal")."""
        child = self.find(cid)
        assert self.alive and child is not None and child.running
        child.running = False
        if child.restart == "permanent" or (child.restart == "transient" and abnormal):
            self._restart(child, now)
        elif child.restart == "temporary":
            self.children.remove(child)

    def _restart(self, child: ModelChild, now: float) -> None:
        self.restarts = [now] + [t for t in self.restarts if t >= now - self.period]
        if len(self.restarts) > self.intensity:
            self.alive = False
            for c in self.children:
                c.running = False
            return
        if self.strategy == "one_for_one":
            group = [child]
        elif self.strategy == "one_for_all":
            group = list(self.children)
        else:
            group = self.children[self.children.index(child):]
        for other in group:
            if other is not child and other.restart == "temporary":
                self.children.remove(other)  # stopped, and never restarted
        for member in group:
            if member in self.children:
                member.running = True
                member.starts += 1

    # -- API -----------------------------------------------------------------------

    def start_child(self, cid: str, restart: str) -> str:
        existing = self.find(cid)
        if existing is not None:
            return "already_started" if existing.running else "already_present"
        self.children.append(ModelChild(cid, restart))
        return "ok"

    def terminate_child(self, cid: str) -> str:
        child = self.find(cid)
        if child is None:
            return "not_found"
        child.running = False
        if child.restart == "temporary":
            self.children.remove(child)
        return "ok"

    def restart_child(self, cid: str) -> str:
        child = self.find(cid)
        if child is None:
            return "not_found"
        if child.running:
            return "running"
        child.running = True
        child.starts += 1
        return "ok"

    def delete_child(self, cid: str) -> str:
        child = self.find(cid)
        if child is None:
            return "not_found"
        if child.running:
            return "running"
        self.children.remove(child)
        return "ok"
