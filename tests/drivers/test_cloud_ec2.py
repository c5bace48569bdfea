"""The cloud driver (libcloud's EC2 driver) against moto's EC2 server on loopback."""

from __future__ import annotations

import http.server
import json
import os
import queue
import threading
import urllib.request
from collections.abc import Iterator

import pytest
import structlog
from libcloud.compute.drivers.ec2 import EC2NodeDriver

from drivers import EventKind, VMEvent, VMSpec, VMState, errors, start_driver_actor
from drivers.cloud import LibcloudDriver, smallest_fitting
from drivers.cloud._mapping import Size
from drivers.testing.daemons import MotoServer

SECRET = "wind-very-secret-key-0123456789"
IMAGE = "ami-1e749f67"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer.start() as server:
        yield server


def ec2(moto: MotoServer, name: str, **overrides: object) -> LibcloudDriver:
    config: dict[str, object] = dict(provider="ec2", name=name, region="us-east-1", endpoint=moto.url,
                                     key="AKIDWINDTEST", secret=SECRET, image=IMAGE, poll_interval=0.1,
                                     capacity={"cpus": 4, "memory_mb": 8192, "disk_gb": 100})
    config.update(overrides)
    return LibcloudDriver(**config)  # type: ignore[arg-type]


@pytest.fixture
def driver(moto: MotoServer, request: pytest.FixtureRequest) -> Iterator[LibcloudDriver]:
    drv = ec2(moto, request.node.name[:50])
    drv.connect()
    yield drv
    drv.close()


def raw_ec2(moto: MotoServer) -> EC2NodeDriver:
    from drivers.cloud._config import CloudConfig
    from drivers.cloud._providers import build_node_driver

    return build_node_driver(CloudConfig.from_kwargs("ec2", region="us-east-1", endpoint=moto.url, key="AKIDX",
                                                     secret="whatever"))


def test_a_vm_walks_define_start_reboot_shutdown_start_destroy_undefine(driver: LibcloudDriver) -> None:
    got: queue.Queue[VMEvent] = queue.Queue()
    driver.subscribe(got.put)
    info = driver.define(VMSpec("web-1", 1, 512, metadata={"tenant": "acme"}))
    assert info.state is VMState.DEFINED
    driver.start("web-1")
    running = driver.info("web-1")
    assert running.state is VMState.RUNNING and running.id and running.id.startswith("i-")
    assert dict(running.metadata) == {"tenant": "acme"}
    driver.reboot("web-1")
    driver.shutdown("web-1")
    assert driver.info("web-1").state is VMState.SHUTOFF
    driver.start("web-1")
    driver.destroy("web-1")
    driver.undefine("web-1")
    assert driver.list() == []
    kinds = [got.get(timeout=5).kind for _ in range(6)]
    assert kinds == [EventKind.DEFINED, EventKind.STARTED, EventKind.STOPPED, EventKind.STARTED,
                     EventKind.STOPPED, EventKind.REMOVED]


def test_the_instance_gets_the_smallest_provider_size_that_fits(driver: LibcloudDriver, moto: MotoServer) -> None:
    driver.define(VMSpec("db-1", 2, 3000))
    driver.start("db-1")
    node = next(n for n in raw_ec2(moto).list_nodes() if n.name == "db-1")
    sizes = [Size(s.id, int(s.extra["vcpu"]), s.ram, 0, float(s.price or 0)) for s in raw_ec2(moto).list_sizes()]
    expected = smallest_fitting(sizes, 2, 3000, 0)
    assert expected is not None and node.extra["instance_type"] == expected.id
    chosen = next(s for s in sizes if s.id == expected.id)
    assert chosen.vcpus >= 2 and chosen.memory_mb >= 3000
    assert not [s for s in sizes if s.vcpus >= 2 and 3000 <= s.memory_mb < chosen.memory_mb]


def test_a_spec_no_size_fits_is_refused_at_define_and_creates_nothing(driver: LibcloudDriver) -> None:
    big = roomy_twin(driver)  # configured capacity would refuse it first; this test is about sizes
    try:
        with pytest.raises(errors.CapacityExceeded) as exc:
            big.define(VMSpec("huge", 4, 64 * 1024 * 1024))  # 64 TiB: more than any instance type
        assert "no size" in str(exc.value) and exc.value.vm == "huge"
        assert big.list() == []
    finally:
        big.close()


def roomy_twin(driver: LibcloudDriver) -> LibcloudDriver:
    assert driver.config.endpoint is not None
    drv = LibcloudDriver(provider="ec2", name=driver.name + "-big", region="us-east-1",
                         endpoint=driver.config.endpoint, key="AKIDWINDTEST", secret=SECRET, image=IMAGE,
                         capacity={"cpus": 10**6, "memory_mb": 10**9, "disk_gb": 10**6})
    drv.connect()
    return drv


def test_an_unknown_image_is_an_invalid_spec(driver: LibcloudDriver) -> None:
    with pytest.raises(errors.InvalidSpec) as exc:
        driver.define(VMSpec("x-1", 1, 256, image="no-such-image-anywhere"))
    assert exc.value.context["image"] == "no-such-image-anywhere"
    assert driver.list() == []


def test_direct_kernel_boot_is_refused_on_a_cloud(driver: LibcloudDriver) -> None:
    with pytest.raises(errors.InvalidSpec, match="kernel"):
        driver.define(VMSpec("k-1", 1, 256, kernel="/boot/vmlinuz"))


def test_suspend_is_declared_unsupported_on_ec2_and_raises_not_supported(driver: LibcloudDriver) -> None:
    assert driver.capabilities.suspend is False and driver.capabilities.reboot is True
    assert driver.capabilities.push_events is False
    driver.define(VMSpec("s-1", 1, 256))
    driver.start("s-1")
    with pytest.raises(errors.NotSupported):
        driver.suspend("s-1")
    with pytest.raises(errors.NotSupported):
        driver.migrate("s-1", "elsewhere")
    assert driver.info("s-1").state is VMState.RUNNING


def test_starting_beyond_the_configured_capacity_is_a_recoverable_capacity_exceeded(
        driver: LibcloudDriver) -> None:
    driver.define(VMSpec("a-1", 4, 1024))
    driver.define(VMSpec("a-2", 1, 1024))
    driver.start("a-1")
    assert driver.capacity().used.cpus == 4
    with pytest.raises(errors.CapacityExceeded) as exc:
        driver.start("a-2")
    assert exc.value.recoverable is True
    assert driver.info("a-2").state is VMState.DEFINED


def test_changes_made_outside_wind_arrive_as_polled_events(driver: LibcloudDriver, moto: MotoServer) -> None:
    got: queue.Queue[VMEvent] = queue.Queue()
    driver.define(VMSpec("p-1", 1, 256))
    driver.start("p-1")
    driver.subscribe(got.put)
    node = next(n for n in raw_ec2(moto).list_nodes() if n.name == "p-1")
    raw_ec2(moto).stop_node(node)  # someone stops it in the provider's console
    event = got.get(timeout=5)
    assert (event.kind, event.vm, event.driver) == (EventKind.STOPPED, "p-1", driver.name)
    assert driver.info("p-1").state is VMState.SHUTOFF


def test_vms_of_other_endpoints_in_the_same_account_are_not_ours(driver: LibcloudDriver, moto: MotoServer) -> None:
    other = ec2(moto, driver.name + "-other")
    other.connect()
    try:
        other.define(VMSpec("theirs", 1, 256))
        other.start("theirs")
        assert [v.name for v in driver.list()] == []
        with pytest.raises(errors.VMNotFound):
            driver.destroy("theirs")
    finally:
        other.close()


def test_a_lost_endpoint_is_a_recoverable_connection_lost_and_the_poller_reports_it() -> None:
    server = MotoServer.start()
    drv = LibcloudDriver(provider="ec2", name="lost", region="us-east-1", endpoint=server.url, key="AKID",
                         secret=SECRET, image=IMAGE, poll_interval=0.1)
    drv.connect()
    noticed: queue.Queue[errors.ConnectionLost] = queue.Queue()
    drv.watch_connection(noticed.put)
    server.stop()
    try:
        assert noticed.get(timeout=5).recoverable is True
        with pytest.raises(errors.ConnectionLost) as exc:
            drv.list()
        assert exc.value.recoverable and exc.value.driver == "lost"
    finally:
        drv.close()


# --- credentials ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_with_auth() -> Iterator[tuple[MotoServer, dict[str, str]]]:
    """moto with IAM authentication switched on after the first 3 requests (which create a real user)."""
    import boto3

    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    try:
        server = MotoServer.start()
    finally:
        del os.environ["INITIAL_NO_AUTH_ACTION_COUNT"]
    with server:
        iam = boto3.client("iam", endpoint_url=server.url, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="wind")
        key = iam.create_access_key(UserName="wind")["AccessKey"]
        iam.put_user_policy(UserName="wind", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        yield server, {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


@pytest.mark.parametrize("which", ["unknown-key", "wrong-secret"])
def test_wrong_credentials_fail_clearly_at_connect_and_create_nothing(
        moto_with_auth: tuple[MotoServer, dict[str, str]], which: str) -> None:
    import boto3

    server, good = moto_with_auth
    key = "AKIAUNKNOWNUNKNOWN00" if which == "unknown-key" else good["key"]
    bad_secret = "definitely-not-the-secret-" + which
    drv = LibcloudDriver(provider="ec2", name="auth", region="us-east-1", endpoint=server.url, key=key,
                         secret=bad_secret, image=IMAGE)
    with pytest.raises(errors.AuthenticationFailed) as exc:
        drv.connect()
    assert "credentials" in str(exc.value) and exc.value.recoverable is False
    assert bad_secret not in str(exc.value) and bad_secret not in repr(exc.value)
    with pytest.raises(errors.ConnectionLost):
        drv.define(VMSpec("never", 1, 256))  # a driver that never connected does nothing
    ec2_client = boto3.client("ec2", endpoint_url=server.url, region_name="us-east-1",
                              aws_access_key_id=good["key"], aws_secret_access_key=good["secret"])
    assert ec2_client.describe_instances()["Reservations"] == []


def test_credentials_never_appear_in_reprs_errors_or_log_events(moto: MotoServer) -> None:
    drv = ec2(moto, "secretive")
    with structlog.testing.capture_logs() as logs:
        drv.connect()
        with pytest.raises(errors.VMNotFound) as exc:
            drv.start("missing")
        drv.close()
    text = repr(drv) + repr(drv.config) + str(drv.config.secret) + str(exc.value) + repr(logs)
    assert SECRET not in text and "AKIDWINDTEST" not in repr(drv.config)
    assert drv.config.secret.reveal() == SECRET
    assert logs, "connect logs an event"


# --- throttling ---------------------------------------------------------------------------------


class ThrottlingProxy:
    """A real HTTP server on 127.0.0.1 that answers the first ``n`` requests with EC2's
    503 RequestLimitExceeded and forwards the rest to moto (moto itself cannot be made
    to throttle)."""

    BODY = (b'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>RequestLimitExceeded</Code>'
            b"<Message>Request limit exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>")

    def __init__(self, upstream: str, n: int) -> None:
        self.remaining, self.throttled = n, 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if proxy.remaining > 0:
                    proxy.remaining -= 1
                    proxy.throttled += 1
                    self.send_response(503)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(proxy.BODY)))
                    self.end_headers()
                    self.wfile.write(proxy.BODY)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                req = urllib.request.Request(upstream + self.path, headers=headers)
                try:
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        status, body, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
                except urllib.error.HTTPError as err:
                    status, body, ctype = err.code, err.read(), err.headers.get("Content-Type", "")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_throttled_calls_are_retried_with_backoff_until_they_succeed(moto: MotoServer) -> None:
    """Mock named: the throttling comes from ThrottlingProxy (a real local HTTP server in front of
    moto), because moto never throttles."""
    proxy = ThrottlingProxy(moto.url, n=3)
    try:
        drv = LibcloudDriver(provider="ec2", name="throttled", region="us-east-1", endpoint=proxy.url, key="AKID",
                             secret=SECRET, image=IMAGE, backoff=0.01, backoff_max=0.05, max_retries=5)
        with structlog.testing.capture_logs() as logs:
            drv.connect()
        assert proxy.throttled == 3
        assert [e["attempt"] for e in logs if e["event"] == "cloud.throttled"] == [1, 2, 3]
        drv.close()
    finally:
        proxy.close()


def test_throttling_that_outlasts_the_retries_is_a_recoverable_throttled_error(moto: MotoServer) -> None:
    """Mock named: ThrottlingProxy (a real local HTTP server) throttles every request."""
    proxy = ThrottlingProxy(moto.url, n=10**6)
    try:
        drv = LibcloudDriver(provider="ec2", name="throttled", region="us-east-1", endpoint=proxy.url, key="AKID",
                             secret=SECRET, image=IMAGE, backoff=0.01, backoff_max=0.02, max_retries=2)
        with pytest.raises(errors.Throttled) as exc:
            drv.connect()
        assert exc.value.recoverable is True and "RequestLimitExceeded" in str(exc.value)
        assert proxy.throttled == 3  # the first try and two retries
    finally:
        proxy.close()


# --- through the registry and the driver actor -----------------------------------------------------


def test_the_driver_actor_runs_the_cloud_driver(moto: MotoServer) -> None:
    drv = ec2(moto, "actor-ec2")
    ref = start_driver_actor(lambda: drv)
    try:
        proxy = ref.proxy()
        proxy.define(VMSpec("act-1", 1, 256)).get(timeout=10)
        proxy.start_vm("act-1").get(timeout=10)
        assert proxy.info("act-1").get(timeout=10).state is VMState.RUNNING
        proxy.destroy("act-1").get(timeout=10)
        proxy.undefine("act-1").get(timeout=10)
        assert proxy.list().get(timeout=10) == []
    finally:
        ref.stop()
