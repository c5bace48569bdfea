"""LibcloudDriver: one cloud-OS endpoint (EC2, OpenStack, any libcloud provider) behind the Wind contract."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import structlog
from libcloud.compute.base import NodeImage

from .._capacity import Capacity, Resources
from .._driver import Driver
from .._events import EventKind
from .._info import VMInfo
from .._spec import NicSpec, VMSpec
from .._state import VMState
from ..errors import (
    BackendError, CapacityExceeded, ConnectionLost, DriverError, InvalidSpec, InvalidState, OperationTimeout, VMExists,
    VMNotFound,
)
from ._config import CloudConfig
from ._mapping import Size, events_between, map_state, smallest_fitting
from ._poller import Poller
from ._providers import build_node_driver
from ._translate import call_with_retry, translate

__all__ = ["LibcloudDriver"]

T = TypeVar("T")
_log = structlog.get_logger("wind.drivers.cloud")

# Instance tags (EC2) / server metadata (OpenStack) that mark Wind's VMs.
TAG_DRIVER = "wind-driver"
TAG_META = "wind-meta"
TAG_SHAPE = "wind-shape"
TAG_NICS = "wind-nics"
_MAX_TAG = 255


@dataclass
class _Local:
    """A VM with no instance at the provider: defined, or powered off in ``delete`` mode."""

    spec: VMSpec
    size: Size
    image: Any
    state: VMState = VMState.DEFINED


class LibcloudDriver(Driver):
    """A cloud endpoint (one provider region) driven through apache-libcloud.

    Lifecycle on a cloud: ``define`` validates the spec, picks the smallest
    provider size that fits and resolves the image, and records the VM in this
    driver (clouds have no "defined, never booted" instance); ``start``
    creates the instance (or starts a stopped one); ``shutdown``/``destroy``
    stop it (``power_off="stop"``) or delete it while keeping the spec
    (``"delete"``, for providers without stop); ``undefine`` terminates it.
    Every operation waits until the provider reports the resulting state (at
    most ``state_timeout`` seconds), so a returned call is a settled VM.

    Lifecycle events are found by polling the provider every
    ``poll_interval`` seconds (default 10 s; ``push_events`` is False) and by
    the driver's own operations, which emit theirs at once. Either way an
    event is emitted once: both go through the same last-seen state table.

    Credentials are wrapped in :class:`~drivers.cloud.Secret` on construction
    and never appear in reprs, errors or log events.

    Args:
        provider: libcloud provider name (``"ec2"``, ``"openstack"`` ...).
        name: endpoint name in events and errors (default ``libcloud-<provider>``).
        **config: see :class:`~drivers.cloud.CloudConfig` (key, secret, region,
            endpoint, image, capacity, capabilities, power_off, poll_interval ...).
    """

    kind = "libcloud"

    def __init__(self, *, provider: str, name: str | None = None, **config: Any) -> None:
        super().__init__(name=name or f"libcloud-{str(provider).lower()}")
        self.config = CloudConfig.from_kwargs(provider, **config)
        self.capabilities = self.config.capabilities
        self._api: Any = None
        self._op_lock = threading.RLock()       # one operation (or poll) at a time: states stay ordered
        self._known: dict[str, VMState] = {}   # last state seen per VM; events are its differences
        self._local: dict[str, _Local] = {}
        self._sizes: list[Size] | None = None
        self._size_objs: dict[str, Any] = {}
        self._images: dict[str, Any] = {}
        self._poller: Poller | None = None

    def __repr__(self) -> str:
        return f"<LibcloudDriver name={self.name!r} provider={self.config.provider!r} region={self.config.region!r}>"

    # --- plumbing ---------------------------------------------------------

    def _call(self, op: str, vm: str | None, fn: Callable[[], T]) -> T:
        c = self.config
        return call_with_retry(fn, driver=self.name, vm=vm, op=op, retries=c.max_retries, first=c.backoff,
                               cap=c.backoff_max, secrets=(c.secret.reveal(),))

    def _require(self, op: str, vm: str | None = None) -> Any:
        if self._api is None:
            raise ConnectionLost(f"{op} on {self.name!r}: driver is not connected; call connect() first",
                                 driver=self.name, vm=vm, op=op)
        return self._api

    def connect(self) -> None:
        """Build the libcloud driver and prove the credentials with one real request.

        Raises:
            AuthenticationFailed: the provider refused key/secret (nothing was created).
            ConnectionLost: the endpoint cannot be reached.
            InvalidSpec: unknown provider or region.
        """
        with self._op_lock:
            if self._api is not None:
                return
            try:
                api = build_node_driver(self.config)
            except (ValueError, AttributeError) as exc:
                raise InvalidSpec(f"cannot build libcloud driver for provider {self.config.provider!r}: {exc}",
                                  driver=self.name) from None
            except Exception as exc:
                raise translate(exc, driver=self.name, vm=None, op="connect",
                                secrets=(self.config.secret.reveal(),)) from None
            self._api = api
            try:
                observed = self._observe("connect")  # an authenticated listing: wrong credentials fail here
                self._load_sizes()
            except DriverError:
                self._api = None
                raise
            self._known = observed
            _log.info("cloud.connected", driver=self.name, provider=self.config.provider,
                      region=self.config.region, vms=len(observed))
        self._poller = Poller(self.name, self.config.poll_interval, self.poll_once, self.notify_connection_lost)
        self._poller.start()

    def close(self) -> None:
        """Stop polling and drop the connection (idempotent; never raises)."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.stop()
        with self._op_lock:
            self._api = None

    # --- observation and events ---------------------------------------------

    def _owned_nodes(self, op: str = "list") -> dict[str, Any]:
        api = self._require(op)
        nodes = self._call(op, None, api.list_nodes)
        owned: dict[str, Any] = {}
        for node in nodes:
            tags = node.extra.get("tags") or node.extra.get("metadata") or {}
            if tags.get(TAG_DRIVER) == self.name and str(node.state).lower() != "terminated":
                owned[node.name] = node
        return owned

    def _observe(self, op: str = "list") -> dict[str, VMState]:
        nodes = self._owned_nodes(op)
        states = {name: map_state(node.state) for name, node in nodes.items()}
        for name, local in self._local.items():
            states.setdefault(name, local.state)
        return states

    def _record(self, states: dict[str, VMState], only: set[str] | None = None) -> None:
        before = self._known if only is None else {n: s for n, s in self._known.items() if n in only}
        events = events_between(before, states)
        if only is None:
            self._known = dict(states)
        else:
            for n in only:
                if n in states:
                    self._known[n] = states[n]
                else:
                    self._known.pop(n, None)
        for kind, vm in events:
            self.emit(kind, vm)

    def poll_once(self) -> None:
        """Observe the provider once and emit the events since the last observation.

        Runs on the poller thread (every ``poll_interval`` s); safe to call
        from any thread.
        """
        with self._op_lock:
            if self._api is None:
                return
            self._record(self._observe())

    def _node(self, name: str, op: str) -> Any | None:
        return self._owned_nodes(op).get(name)

    def _settle(self, name: str, op: str, done: Callable[[VMState | None], bool]) -> VMState | None:
        """Wait until the VM's provider state satisfies ``done`` (None: instance gone), then record it."""
        deadline = time.monotonic() + self.config.state_timeout
        interval = min(1.0, self.config.poll_interval)
        while True:
            node = self._node(name, op)
            if node is not None:
                state: VMState | None = map_state(node.state)
            else:
                state = self._local[name].state if name in self._local else None
            if done(state):
                self._record({name: state} if state is not None else {}, only={name})
                return state
            if time.monotonic() >= deadline:
                raise OperationTimeout(
                    f"{op} of VM {name!r}: provider still reports {state} after {self.config.state_timeout:.0f} s",
                    driver=self.name, vm=name, op=op)
            time.sleep(interval)

    # --- sizes and images -----------------------------------------------------

    def _load_sizes(self) -> list[Size]:
        if self._sizes is None:
            raw = self._call("list_sizes", None, self._require("list_sizes").list_sizes)
            self._size_objs = {str(s.id): s for s in raw}
            self._sizes = [Size(str(s.id), _vcpus_of(s), int(s.ram or 0), int(s.disk or 0), float(s.price or 0.0))
                           for s in raw]
        return self._sizes

    def _size_for(self, spec: VMSpec) -> Size:
        size = smallest_fitting(self._load_sizes(), spec.vcpus, spec.memory_mb, spec.disk_gb,
                                disk_matters=self.config.disk_in_size)
        if size is None:
            biggest = max(self._load_sizes(), key=lambda s: (s.memory_mb, s.vcpus), default=None)
            raise CapacityExceeded(
                f"no size of provider {self.config.provider!r} fits VM {spec.name!r} "
                f"({spec.vcpus} vcpus, {spec.memory_mb} MiB, {spec.disk_gb} GiB); largest is {biggest}",
                driver=self.name, vm=spec.name)
        return size

    def _image_for(self, spec: VMSpec) -> Any:
        wanted = spec.image or self.config.image
        if not wanted:
            raise InvalidSpec(f"VM {spec.name!r} names no image and the endpoint has no default image",
                              driver=self.name, vm=spec.name)
        if wanted not in self._images:
            api = self._require("define", spec.name)
            kwargs = {"ex_owner": self.config.image_owner} if self.config.provider == "ec2" and \
                self.config.image_owner else {}
            match = self._image_by_id(api, wanted)
            if match is None:  # not an id: look it up by name
                images = self._call("list_images", spec.name, lambda: api.list_images(**kwargs))
                match = next((i for i in images if i.id == wanted or i.name == wanted), None)
            if match is None:
                raise InvalidSpec(f"image {wanted!r} not found at {self.name!r} (by id or name)",
                                  driver=self.name, vm=spec.name, image=wanted)
            self._images[wanted] = match
        return self._images[wanted]

    def _image_by_id(self, api: Any, image_id: str) -> Any | None:
        try:
            image = self._call("get_image", None, lambda: api.get_image(image_id))
        except (BackendError, VMNotFound):  # unknown id (or not an id at all)
            return None
        return image if image is not None and str(image.id) == image_id else None

    # --- the contract -----------------------------------------------------------

    def define(self, spec: VMSpec) -> VMInfo:
        if spec.kernel:
            raise InvalidSpec(f"VM {spec.name!r}: direct kernel boot is not available on cloud providers; "
                              "give an image", driver=self.name, vm=spec.name)
        spec = replace(spec, nics=tuple(replace(n, mac=n.mac or _mac_for(spec.name, i))
                                        for i, n in enumerate(spec.nics)))
        for what, text in _tags(self.name, spec).items():
            if len(text) > _MAX_TAG:
                raise InvalidSpec(f"VM {spec.name!r}: {what} is {len(text)} characters as JSON; a provider tag "
                                  f"holds {_MAX_TAG}", driver=self.name, vm=spec.name)
        with self._op_lock:
            if spec.name in self._local or spec.name in self._owned_nodes():
                raise VMExists(f"VM {spec.name!r} is already defined on {self.name!r}", driver=self.name,
                               vm=spec.name)
            shape = Resources(spec.vcpus, spec.memory_mb, spec.disk_gb)
            if not shape.fits_in(self.config.capacity):
                raise CapacityExceeded(f"VM {spec.name!r} needs {shape.as_dict()}, more than endpoint {self.name!r} "
                                       f"can ever hold ({self.config.capacity.as_dict()})", driver=self.name,
                                       vm=spec.name)
            local = _Local(spec, self._size_for(spec), self._image_for(spec))
            self._local[spec.name] = local
            self._record({spec.name: VMState.DEFINED}, only={spec.name})
            return self._info_local(local)

    def start(self, name: str) -> None:
        with self._op_lock:
            api = self._require("start", name)
            local = self._local.get(name)
            if local is not None:
                need = Resources(local.spec.vcpus, local.spec.memory_mb, local.spec.disk_gb)
                cap = self.capacity()
                if not need.fits_in(cap.free):
                    raise CapacityExceeded(f"VM {name!r} needs {need.as_dict()} but endpoint {self.name!r} has "
                                           f"{cap.free.as_dict()} free of its configured capacity",
                                           driver=self.name, vm=name, recoverable=True)
                tags = _tags(self.name, local.spec)
                size_obj = self._size_objs[local.size.id]
                self._call("start", name, lambda: api.create_node(name=name, size=size_obj, image=local.image,
                                                                  ex_metadata=tags))
                del self._local[name]
            else:
                node = self._existing(name, "start")
                self._check(name, "start", map_state(node.state), {VMState.SHUTOFF, VMState.CRASHED})
                self._call("start", name, lambda: api.start_node(node))
            self._settle(name, "start", lambda s: s not in (VMState.PENDING, VMState.SHUTOFF, None))

    def shutdown(self, name: str) -> None:
        self._power_off(name, "shutdown", {VMState.RUNNING})

    def destroy(self, name: str) -> None:
        self._power_off(name, "destroy", {VMState.RUNNING, VMState.PAUSED, VMState.PENDING, VMState.UNKNOWN})

    def _power_off(self, name: str, op: str, allowed: set[VMState]) -> None:
        with self._op_lock:
            api = self._require(op, name)
            node = self._existing(name, op)
            self._check(name, op, map_state(node.state), allowed)
            if self.config.power_off == "stop":
                self._call(op, name, lambda: api.stop_node(node))
                self._settle(name, op, lambda s: s in (VMState.SHUTOFF, VMState.CRASHED))
                return
            spec = self._spec_of(node)
            size = next((s for s in self._load_sizes() if s.id == _size_id(node)), None) or self._size_for(spec)
            self._call(op, name, lambda: api.destroy_node(node))
            self._local[name] = _Local(spec, size, _image_ref(api, node), VMState.SHUTOFF)
            self._settle(name, op, lambda s: s is VMState.SHUTOFF)

    def suspend(self, name: str) -> None:
        self._pause(name, "suspend", "ex_suspend_node", {VMState.RUNNING}, VMState.PAUSED)

    def resume(self, name: str) -> None:
        self._pause(name, "resume", "ex_resume_node", {VMState.PAUSED}, VMState.RUNNING)

    def _pause(self, name: str, op: str, method: str, allowed: set[VMState], target: VMState) -> None:
        if not self.capabilities.suspend:
            raise self.not_supported(op, name)
        with self._op_lock:
            api = self._require(op, name)
            node = self._existing(name, op)
            self._check(name, op, map_state(node.state), allowed)
            self._call(op, name, lambda: getattr(api, method)(node))
            self._settle(name, op, lambda s: s is target)

    def reboot(self, name: str) -> None:
        if not self.capabilities.reboot:
            raise self.not_supported("reboot", name)
        with self._op_lock:
            api = self._require("reboot", name)
            node = self._existing(name, "reboot")
            self._check(name, "reboot", map_state(node.state), {VMState.RUNNING})
            self._call("reboot", name, lambda: api.reboot_node(node))
            self._settle(name, "reboot", lambda s: s is VMState.RUNNING)

    def undefine(self, name: str) -> None:
        with self._op_lock:
            api = self._require("undefine", name)
            if name in self._local:
                del self._local[name]
                self._record({}, only={name})
                return
            node = self._existing(name, "undefine")
            self._check(name, "undefine", map_state(node.state), {VMState.SHUTOFF, VMState.CRASHED,
                                                                  VMState.DEFINED})
            self._call("undefine", name, lambda: api.destroy_node(node))
            self._settle(name, "undefine", lambda s: s is None)

    def list(self) -> list[VMInfo]:
        with self._op_lock:
            nodes = self._owned_nodes()
            infos = [self._info_node(n) for n in nodes.values()]
            infos += [self._info_local(lo) for name, lo in self._local.items() if name not in nodes]
            return sorted(infos, key=lambda i: i.name)

    def info(self, name: str) -> VMInfo:
        with self._op_lock:
            if name in self._local:
                return self._info_local(self._local[name])
            return self._info_node(self._existing(name, "info"))

    def capacity(self) -> Capacity:
        """Configured totals (providers do not report quotas uniformly); used = active instances' sizes."""
        used = Resources()
        for info in self.list():
            if info.state.is_active:
                used = used + Resources(info.vcpus, info.memory_mb, info.disk_gb)
        return Capacity(total=self.config.capacity, used=used)

    # --- helpers --------------------------------------------------------------------

    def _existing(self, name: str, op: str) -> Any:
        node = self._node(name, op)
        if node is None:
            raise VMNotFound(f"{op}: no VM {name!r} on cloud endpoint {self.name!r}", driver=self.name, vm=name,
                             op=op)
        return node

    def _check(self, name: str, op: str, state: VMState, allowed: set[VMState]) -> None:
        if state not in allowed:
            raise InvalidState(f"cannot {op} VM {name!r} while it is {state.value}; allowed from "
                               f"{sorted(s.value for s in allowed)}", driver=self.name, vm=name,
                               state=state.value, op=op)

    # VMInfo reports the VM's own shape (what its spec asked for and what the
    # endpoint's capacity accounts); the provider size may be larger.

    def _info_local(self, local: _Local) -> VMInfo:
        s = local.spec
        return VMInfo(s.name, local.state, s.vcpus, s.memory_mb, s.disk_gb, nics=s.nics, metadata=s.metadata,
                      driver=self.name)

    def _info_node(self, node: Any) -> VMInfo:
        s = self._spec_of(node)
        return VMInfo(node.name, map_state(node.state), s.vcpus, s.memory_mb, s.disk_gb, id=str(node.id),
                      nics=s.nics, metadata=s.metadata, driver=self.name)

    def _spec_of(self, node: Any) -> VMSpec:
        """The spec Wind stored in the instance's tags (the size's shape when tags are missing)."""
        tags = node.extra.get("tags") or node.extra.get("metadata") or {}
        size = next((s for s in self._load_sizes() if s.id == _size_id(node)), Size("?", 1, 1))
        try:
            meta = json.loads(tags.get(TAG_META) or "{}")
            vcpus, memory_mb, disk_gb = (int(x) for x in json.loads(tags[TAG_SHAPE]))
            nics = tuple(NicSpec(net, mac) for net, mac in json.loads(tags.get(TAG_NICS) or "[]"))
        except (ValueError, KeyError, TypeError):
            meta, nics = {}, ()
            vcpus, memory_mb, disk_gb = max(size.vcpus, 1), max(size.memory_mb, 1), size.disk_gb
        return VMSpec(node.name, vcpus, memory_mb, disk_gb,
                      image=str(node.extra.get("image_id") or node.extra.get("imageId") or "") or None,
                      nics=nics, metadata=meta if isinstance(meta, dict) else {})


def _tags(driver: str, spec: VMSpec) -> dict[str, str]:
    return {
        TAG_DRIVER: driver,
        TAG_META: json.dumps(dict(spec.metadata), sort_keys=True, default=str),
        TAG_SHAPE: json.dumps([spec.vcpus, spec.memory_mb, spec.disk_gb]),
        TAG_NICS: json.dumps([[n.network, n.mac] for n in spec.nics]),
    }


def _mac_for(vm: str, index: int) -> str:
    # Stable, locally administered unicast MAC for the tenant-network NIC Wind
    # adds inside the guest: the same VM always gets the same MAC.
    digest = hashlib.sha256(f"{vm}/{index}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def _vcpus_of(size: Any) -> int:
    raw = getattr(size, "vcpus", None) or (getattr(size, "extra", None) or {}).get("vcpu") or 0
    try:
        return int(float(raw))
    except (TypeError, ValueError):
        return 0


def _size_id(node: Any) -> str:
    return str(node.extra.get("instance_type") or node.extra.get("flavorId") or node.size or "")


def _image_ref(api: Any, node: Any) -> NodeImage:
    # create_node only reads the image's id, so a bare reference re-creates the VM from the same image.
    return NodeImage(id=str(node.extra.get("image_id") or node.extra.get("imageId")), name=None, driver=api)
