"""A real Wind system for the tests: a controller and three agents as separate OS processes on
127.0.0.1 with CURVE on, driven through the real ``wind`` CLI. Every process is stopped by PID
when the module's tests end, even when they fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wind_actors.testing import wait_for
from wind_actors.cluster import ProcessCluster, free_port

HOSTS = Path(__file__).resolve().parents[2] / "examples" / "hosts"
TOKENS = {"acme": "acme-test-token-0123456789", "globex": "globex-test-token-0123456789"}
SITES = {
    "edge": ("libvirt", f'host_xml = "{HOSTS}/large.xml"', {"storage": "ssd"}),
    "dc-a": ("sim", "hosts = 50", {}),
    "dc-b": ("sim", "hosts = 50", {}),
}


class System:
    """The processes, and helpers that run the CLI and read its JSON."""

    def __init__(self, cluster: ProcessCluster, port: int) -> None:
        self.cluster = cluster
        self.port = port

    def wind(self, *args: str, tenant: str = "acme") -> Any:
        return self.cluster.wind(*args, config=f"client-{tenant}", timeout=120)

    def json(self, *args: str, tenant: str = "acme") -> Any:
        result = self.wind(*args, "--json", tenant=tenant)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    def status(self, app: str, tenant: str = "acme") -> dict[str, Any]:
        return self.json("app", "status", app, tenant=tenant)

    def wait_for(self, what: str, condition: Any, timeout: float = 30.0) -> Any:
        return wait_for(what, condition, timeout, interval=0.2)  # each poll runs the CLI

    def restart_controller(self, *, kill: bool) -> None:
        if kill:
            self.cluster.kill("controller")
        else:
            self.cluster.terminate("controller")
        self.cluster.start("controller", "controller")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Any:
    workdir = tmp_path_factory.mktemp("wind-system")
    cluster = ProcessCluster(workdir)
    port = free_port()
    names = ["controller@hq", *(f"agent@{s}" for s in SITES), *(f"client@{t}" for t in TOKENS)]
    cluster.ensure_keys(*names)
    tenants = "\n".join(f'{t} = "{tok}"' for t, tok in TOKENS.items())
    cluster.write_config("controller", cluster.node_section("controller@hq", port, controller=True)
                         + '[controller]\nstore = "state/wind.db"\nsite_timeout = 3.0\ntick = 0.2\n'
                         + f"[controller.tenants]\n{tenants}\n")
    for site, (driver, options, labels) in SITES.items():
        label_text = "".join(f'{k} = "{v}"\n' for k, v in labels.items())
        cluster.write_config(site, cluster.node_section(f"agent@{site}", port)
                             + f'[agent]\nsite = "{site}"\ncontroller = "controller@hq"\n'
                             + f'driver = "{driver}"\nreport_interval = 0.3\n'
                             + f"[agent.labels]\n{label_text}[agent.driver_options]\n{options}\n")
    for tenant, token in TOKENS.items():
        cluster.write_config(f"client-{tenant}", cluster.node_section(f"client@{tenant}", port)
                             + f'[client]\ncontroller = "controller@hq"\ntoken = "{token}"\n')
    try:
        cluster.start("controller", "controller")
        for site in SITES:
            cluster.start(site, "agent")
        sys = System(cluster, port)
        sys.wait_for("every site in the pool", lambda: len(sys.json("sites")) == len(SITES))
        yield sys
    finally:
        codes = cluster.stop_all()
        assert all(code is not None for code in codes.values())
