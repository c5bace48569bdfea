"""Desired state in SQLite: tenants, applications, their VMs, operations, overlay allocations.

Crash safety: every change is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) in WAL mode, so
a controller killed with SIGKILL at any instant reopens to the last committed state, never a
half-written application. ``synchronous=NORMAL`` (the default here) is durable against a process
crash; pass ``synchronous="FULL"`` to survive power loss too, at some cost in write rate.

A controller operation is one transaction too: :meth:`Store.begin_deploy` writes a deploy's
operation record with its application and VM records, :meth:`Store.begin_undeploy` an undeploy's
operation with the application's state change, :meth:`Store.finish_deploy` and
:meth:`Store.finish_undeploy` their outcome. ``transaction()`` nests (inner blocks are savepoints),
so store methods called inside one commit with it.

Fault injection (shipped, like Nomad's mock driver): with ``WIND_FAULT_CRASH_AT=<point>`` in its
environment, the process that opened the store SIGKILLs itself when it reaches that point. The
points (:data:`CRASH_POINTS`) sit between the writes of one operation and right after its commit,
so tests can kill a real controller inside each crash window; an unknown point is a ConfigError.

The store is the only module here that does I/O. One ``Store`` may be shared between threads (a
lock serializes calls), but it is meant to be owned by the controller actor.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from ..errors import ConfigError, NotFound, StoreError

__all__ = ["Store", "AppRecord", "VMRecord", "Operation", "CRASH_POINTS", "CRASH_AT_ENV"]

#: The environment variable naming the fault-injection crash point (see the module docstring).
CRASH_AT_ENV = "WIND_FAULT_CRASH_AT"
#: Where ``WIND_FAULT_CRASH_AT`` can kill the process: inside an operation's transaction, after its
#: operation row and before the rest (``*.after_operation``, ``undeploy.after_delete``), and right
#: after its commit, before the controller acts on it or answers (``*.after_commit``).
CRASH_POINTS = frozenset({"deploy.after_operation", "deploy.after_commit", "undeploy.after_operation",
                          "undeploy.after_commit", "undeploy.after_delete"})

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS applications (
    tenant TEXT NOT NULL, name TEXT NOT NULL, descriptor TEXT NOT NULL, placement TEXT,
    state TEXT NOT NULL, generation INTEGER NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (tenant, name));
CREATE TABLE IF NOT EXISTS vms (
    name TEXT PRIMARY KEY, tenant TEXT NOT NULL, app TEXT NOT NULL, instance TEXT NOT NULL,
    component TEXT NOT NULL, site TEXT, host TEXT, state TEXT NOT NULL, desired TEXT NOT NULL,
    restart TEXT NOT NULL, updated REAL NOT NULL,
    FOREIGN KEY (tenant, app) REFERENCES applications (tenant, name) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS vms_by_app ON vms (tenant, app);
CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, app TEXT, kind TEXT NOT NULL, state TEXT NOT NULL,
    detail TEXT, key TEXT, created REAL NOT NULL, updated REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS operations_by_key ON operations (tenant, key) WHERE key IS NOT NULL;
CREATE TABLE IF NOT EXISTS overlay (key TEXT PRIMARY KEY, blob TEXT NOT NULL, updated REAL NOT NULL);
"""


@dataclass(frozen=True)
class VMRecord:
    """One desired VM: where it is placed and the state last known."""

    name: str
    tenant: str
    app: str
    instance: str
    component: str
    site: str | None = None
    host: str | None = None
    state: str = "pending"
    desired: str = "running"
    restart: str = "always"


@dataclass(frozen=True)
class AppRecord:
    """A stored application: its descriptor (plain data), placement (plain data) and state."""

    tenant: str
    name: str
    descriptor: dict[str, Any]
    placement: dict[str, Any] | None
    state: str
    generation: int
    created: float
    updated: float


@dataclass(frozen=True)
class Operation:
    """A deploy/undeploy/... operation: its id, what it is about, and how far it got."""

    id: str
    tenant: str
    app: str | None
    kind: str
    state: str
    detail: dict[str, Any] | None
    key: str | None
    created: float
    updated: float


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _crash_point_from_env() -> str | None:
    point = os.environ.get(CRASH_AT_ENV) or None
    if point is not None and point not in CRASH_POINTS:
        raise ConfigError(f"{CRASH_AT_ENV}={point!r} is not a crash point; use one of "
                          f"{', '.join(sorted(CRASH_POINTS))}")
    return point


class Store:
    """The controller's desired state in one SQLite file.

    Args:
        path: the database file (created with its directory if missing); ``:memory:`` for tests.
        synchronous: SQLite ``synchronous`` level, ``NORMAL`` or ``FULL``.
        clock: returns the current time in seconds (injectable for tests).

    Raises:
        StoreError: the file cannot be opened or is not a Wind store.
        ConfigError: ``synchronous`` or ``$WIND_FAULT_CRASH_AT`` is not an allowed value.
    """

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL",
                 clock: Callable[[], float] = time.time) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ConfigError(f"store synchronous={synchronous!r} is not allowed; use NORMAL or FULL")
        self.path = str(path)
        self._clock = clock
        self._lock = threading.RLock()
        self._depth = 0  # nesting of transaction(), read and written only under _lock
        #: Transactions committed by this process: readers that cache what they read (the overlay
        #: planner) skip their work while it has not moved.
        self.commits = 0
        #: Queries run (an idle controller runs none per tick; tests read it).
        self.reads = 0
        self._crash_at = _crash_point_from_env()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA foreign_keys=ON")
            with self.transaction() as db:
                for stmt in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(stmt)
                row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(_SCHEMA_VERSION),))
                elif int(row[0]) != _SCHEMA_VERSION:
                    raise StoreError(f"store schema {row[0]} is not supported; this Wind reads schema "
                                     f"{_SCHEMA_VERSION}", path=self.path)
        except sqlite3.Error as exc:
            raise self._translate(exc) from None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **kw: Any) -> "Store":
        """Open the store named by a controller config: ``[store] path = "..."``.

        Raises:
            ConfigError: the config has no store path.
        """
        section = config.get("store")
        path = section.get("path") if isinstance(section, Mapping) else None
        if not isinstance(path, str) or not path:
            raise ConfigError("controller config has no store path; set [store] path = \"/var/lib/wind/wind.db\"")
        sync = section.get("synchronous", kw.pop("synchronous", "NORMAL"))
        return cls(path, synchronous=str(sync).upper(), **kw)

    def close(self) -> None:
        """Close the database (committed state is already on disk)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        busy = isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)
        return StoreError(f"store operation failed: {text}", recoverable=busy, path=self.path)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: everything inside commits together or not at all.

        Transactions nest: one opened inside another (by this thread, which holds the lock) is a
        savepoint of it, so store methods called inside a ``with store.transaction():`` block
        commit with the block; an exception leaving an inner block undoes only its writes.
        """
        with self._lock:
            if self._depth:
                yield from self._savepoint()
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._translate(exc) from None
            self._depth = 1
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise self._translate(exc) from None
            self.commits += 1

    def _savepoint(self) -> Iterator[sqlite3.Connection]:
        name = f"wind_{self._depth}"
        self._db.execute(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield self._db
        except BaseException:
            self._db.execute(f"ROLLBACK TO {name}")
            self._db.execute(f"RELEASE {name}")
            raise
        finally:
            self._depth -= 1
        self._db.execute(f"RELEASE {name}")

    def _crash_point(self, point: str) -> None:
        """Fault injection: SIGKILL this process at ``point`` if ``$WIND_FAULT_CRASH_AT`` names it.

        A real SIGKILL, not an exception: nothing after it runs (no rollback, no atexit), which is
        what a crash in that window does. Uncommitted writes are lost on reopen (WAL).
        """
        if point == self._crash_at:
            os.kill(os.getpid(), signal.SIGKILL)
            os._exit(137)  # not reached: SIGKILL to oneself is delivered before kill() returns

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            self.reads += 1
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._translate(exc) from None

    # -- tenants --------------------------------------------------------------------------------

    def ensure_tenant(self, name: str) -> None:
        """Record tenant ``name`` (idempotent)."""
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO tenants VALUES (?, ?)", (name, self._clock()))

    def tenants(self) -> list[str]:
        """Returns: every recorded tenant, sorted."""
        return [r[0] for r in self._read("SELECT name FROM tenants ORDER BY name")]

    # -- applications ---------------------------------------------------------------------------

    def put_application(self, tenant: str, name: str, descriptor: Mapping[str, Any],
                        placement: Mapping[str, Any] | None, vms: Iterable[VMRecord],
                        state: str = "deploying") -> AppRecord:
        """Create or replace an application and its VM records in one transaction.

        Returns:
            The stored record (``generation`` counts the writes of this application).
        """
        now = self._clock()
        vms = list(vms)
        for vm in vms:
            if (vm.tenant, vm.app) != (tenant, name):
                raise ValueError(f"VM {vm.name!r} belongs to {vm.tenant}/{vm.app}, not {tenant}/{name}")
        try:
            with self.transaction() as db:
                db.execute("INSERT OR IGNORE INTO tenants VALUES (?, ?)", (tenant, now))
                row = db.execute("SELECT generation, created FROM applications WHERE tenant=? AND name=?",
                                 (tenant, name)).fetchone()
                gen, created = (row[0] + 1, row[1]) if row else (1, now)
                db.execute("INSERT OR REPLACE INTO applications VALUES (?,?,?,?,?,?,?,?)",
                           (tenant, name, _dumps(descriptor), None if placement is None else _dumps(placement),
                            state, gen, created, now))
                db.execute("DELETE FROM vms WHERE tenant=? AND app=?", (tenant, name))
                db.executemany("INSERT INTO vms VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                               [(v.name, v.tenant, v.app, v.instance, v.component, v.site, v.host,
                                 v.state, v.desired, v.restart, now) for v in vms])
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        return AppRecord(tenant, name, json.loads(_dumps(descriptor)),
                         None if placement is None else json.loads(_dumps(placement)), state, gen, created, now)

    def get_application(self, tenant: str, name: str) -> AppRecord:
        """Returns: the application ``name`` of ``tenant``.

        Raises:
            NotFound: there is none (for this tenant).
        """
        rows = self._read("SELECT * FROM applications WHERE tenant=? AND name=?", (tenant, name))
        if not rows:
            raise NotFound(f"application {name!r} not found", tenant=tenant)
        return self._app(rows[0])

    def list_applications(self, tenant: str | None = None) -> list[AppRecord]:
        """Returns: the applications of ``tenant`` (of everyone when None), sorted by tenant, name."""
        if tenant is None:
            rows = self._read("SELECT * FROM applications ORDER BY tenant, name")
        else:
            rows = self._read("SELECT * FROM applications WHERE tenant=? ORDER BY name", (tenant,))
        return [self._app(r) for r in rows]

    def set_application_state(self, tenant: str, name: str, state: str) -> None:
        """Set an application's state (``deploying``, ``running``, ``undeploying`` ...).

        Raises:
            NotFound: there is no such application for this tenant.
        """
        with self.transaction() as db:
            cur = db.execute("UPDATE applications SET state=?, updated=? WHERE tenant=? AND name=?",
                             (state, self._clock(), tenant, name))
        if cur.rowcount == 0:
            raise NotFound(f"application {name!r} not found", tenant=tenant)

    def delete_application(self, tenant: str, name: str) -> bool:
        """Delete an application and its VM records. Returns: whether it existed (idempotent)."""
        with self.transaction() as db:
            db.execute("DELETE FROM vms WHERE tenant=? AND app=?", (tenant, name))
            cur = db.execute("DELETE FROM applications WHERE tenant=? AND name=?", (tenant, name))
        return cur.rowcount > 0

    @staticmethod
    def _app(row: tuple) -> AppRecord:
        return AppRecord(row[0], row[1], json.loads(row[2]), None if row[3] is None else json.loads(row[3]),
                         row[4], row[5], row[6], row[7])

    # -- VMs ------------------------------------------------------------------------------------

    def vms(self, tenant: str | None = None, app: str | None = None, *, after: str | None = None,
            limit: int | None = None) -> list[VMRecord]:
        """The VM records of one application, one tenant, or everyone, sorted by name.

        Args:
            tenant: only this tenant's.
            app: only this application's (needs ``tenant``).
            after: only names after this one (a page's cursor).
            limit: at most this many.
        """
        if app is not None and tenant is None:
            raise ValueError("an application is named within a tenant; pass tenant= too")
        where, args = [], []
        if tenant is not None:
            where.append("tenant=?")
            args.append(tenant)
        if app is not None:
            where.append("app=?")
            args.append(app)
        if after is not None:
            where.append("name>?")
            args.append(after)
        sql = "SELECT * FROM vms" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY name"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [VMRecord(*r[:10]) for r in self._read(sql, tuple(args))]

    def update_vms(self, updates: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Change fields (``state``, ``site``, ``host``, ``desired``) of VM records in one transaction.

        Args:
            updates: ``(vm name, {field: value})`` pairs.

        Returns:
            How many records existed and were updated.
        """
        allowed = {"state", "site", "host", "desired"}
        now, changed = self._clock(), 0
        with self.transaction() as db:
            for name, fields in updates:
                bad = set(fields) - allowed
                if bad:
                    raise ValueError(f"VM fields {sorted(bad)} cannot be updated; allowed: {sorted(allowed)}")
                cols = ", ".join(f"{k}=?" for k in fields)
                cur = db.execute(f"UPDATE vms SET {cols}, updated=? WHERE name=?", (*fields.values(), now, name))
                changed += cur.rowcount
        return changed

    # -- operations -----------------------------------------------------------------------------

    def begin_operation(self, tenant: str, kind: str, app: str | None = None,
                        key: str | None = None, detail: Mapping[str, Any] | None = None) -> Operation:
        """Start an operation, or return the existing one with the same idempotency ``key``.

        Returns:
            The operation (``state`` is ``running`` for a new one).
        """
        with self.transaction() as db:
            if key is not None:
                row = db.execute("SELECT * FROM operations WHERE tenant=? AND key=?", (tenant, key)).fetchone()
                if row is not None:
                    return self._op(row)
            now = self._clock()
            op_id = f"op-{uuid.uuid4().hex[:16]}"
            db.execute("INSERT INTO operations VALUES (?,?,?,?,?,?,?,?,?)",
                       (op_id, tenant, app, kind, "running", None if detail is None else _dumps(detail),
                        key, now, now))
        return self.get_operation(tenant, op_id)

    def update_operation(self, op_id: str, state: str, detail: Mapping[str, Any] | None = None) -> None:
        """Record an operation's progress or outcome (``running``, ``done``, ``failed``)."""
        with self.transaction() as db:
            cur = db.execute("UPDATE operations SET state=?, detail=COALESCE(?, detail), updated=? WHERE id=?",
                             (state, None if detail is None else _dumps(detail), self._clock(), op_id))
        if cur.rowcount == 0:
            raise NotFound(f"operation {op_id!r} not found")

    def operation_by_key(self, tenant: str, key: str) -> Operation | None:
        """Returns: the tenant's operation with idempotency ``key``, or None."""
        rows = self._read("SELECT * FROM operations WHERE tenant=? AND key=?", (tenant, key))
        return self._op(rows[0]) if rows else None

    # -- controller operations: each one transaction ------------------------------------------

    def begin_deploy(self, tenant: str, name: str, descriptor: Mapping[str, Any],
                     placement: Mapping[str, Any] | None, vms: Iterable[VMRecord], *,
                     key: str | None = None, detail: Mapping[str, Any] | None = None) -> Operation:
        """Start a deploy: its operation, the application (state ``deploying``) and its VM records,
        in one transaction.

        An operation that already has ``key`` is reused and set ``running`` with ``detail``
        (re-driving a deploy whose application went missing); a crash leaves all or nothing.

        Returns:
            The operation.
        """
        with self.transaction():
            op = self.begin_operation(tenant, "deploy", name, key=key, detail=detail)
            self._crash_point("deploy.after_operation")
            if op.state != "running" or (detail is not None and op.detail != dict(detail)):
                self.update_operation(op.id, "running", detail)
            self.put_application(tenant, name, descriptor, placement, vms, state="deploying")
        self._crash_point("deploy.after_commit")
        return self.get_operation(tenant, op.id)

    def begin_undeploy(self, tenant: str, name: str, *, key: str | None = None,
                       detail: Mapping[str, Any] | None = None) -> Operation:
        """Start an undeploy: its operation and the application's state ``undeploying``, in one
        transaction (an operation that already has ``key`` is reused).

        Returns:
            The operation.

        Raises:
            NotFound: there is no such application (nothing is written).
        """
        with self.transaction():
            op = self.begin_operation(tenant, "undeploy", name, key=key, detail=detail)
            self._crash_point("undeploy.after_operation")
            self.set_application_state(tenant, name, "undeploying")
        self._crash_point("undeploy.after_commit")
        return op

    def finish_deploy(self, tenant: str, name: str, op_id: str, detail: Mapping[str, Any]) -> None:
        """A deploy's outcome: the operation ``done`` and a ``deploying`` application ``running``,
        in one transaction."""
        with self.transaction() as db:
            self.update_operation(op_id, "done", detail)
            db.execute("UPDATE applications SET state='running', updated=? WHERE tenant=? AND name=? "
                       "AND state='deploying'", (self._clock(), tenant, name))

    def finish_undeploy(self, tenant: str, name: str, op_id: str, detail: Mapping[str, Any]) -> None:
        """An undeploy's outcome: the application and its VM records deleted and the operation
        ``done``, in one transaction (idempotent)."""
        with self.transaction():
            self.delete_application(tenant, name)
            self._crash_point("undeploy.after_delete")
            self.update_operation(op_id, "done", detail)

    def get_operation(self, tenant: str, op_id: str) -> Operation:
        """Returns: operation ``op_id`` of ``tenant``. Raises: NotFound (also for other tenants')."""
        rows = self._read("SELECT * FROM operations WHERE id=? AND tenant=?", (op_id, tenant))
        if not rows:
            raise NotFound(f"operation {op_id!r} not found", tenant=tenant)
        return self._op(rows[0])

    def operations(self, tenant: str, app: str | None = None) -> list[Operation]:
        """Returns: the tenant's operations (on ``app`` if given), oldest first."""
        sql, args = "SELECT * FROM operations WHERE tenant=?", (tenant,)
        if app is not None:
            sql, args = sql + " AND app=?", (tenant, app)
        return [self._op(r) for r in self._read(sql + " ORDER BY created, id", args)]

    @staticmethod
    def _op(row: tuple) -> Operation:
        return Operation(row[0], row[1], row[2], row[3], row[4],
                         None if row[5] is None else json.loads(row[5]), row[6], row[7], row[8])

    # -- overlay allocations (opaque to the store) ----------------------------------------------

    def put_overlay(self, key: str, blob: Any) -> None:
        """Store a JSON-serializable overlay allocation (VNI table, IPAM state ...) under ``key``."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO overlay VALUES (?,?,?)", (key, json.dumps(blob), self._clock()))

    def get_overlay(self, key: str, default: Any = None) -> Any:
        """Returns: the blob stored under ``key``, or ``default``."""
        rows = self._read("SELECT blob FROM overlay WHERE key=?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def delete_overlay(self, key: str) -> None:
        """Forget the blob under ``key`` (idempotent)."""
        with self.transaction() as db:
            db.execute("DELETE FROM overlay WHERE key=?", (key,))
