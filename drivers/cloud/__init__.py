"""The cloud-OS driver: EC2, OpenStack and the rest of apache-libcloud's providers behind one Wind driver.

Registered as entry point ``libcloud`` in group ``wind.drivers``::

    driver = create_driver("libcloud", provider="ec2", region="us-east-1",
                           key="AKID...", secret="...", image="ami-...",
                           capacity={"cpus": 32, "memory_mb": 65536, "disk_gb": 1000})
"""

from __future__ import annotations

from ._config import DEFAULT_CAPACITY, PROVIDER_DEFAULTS, CloudConfig, Secret
from ._driver import TAG_DRIVER, TAG_META, LibcloudDriver
from ._mapping import STATE_MAP, Size, events_between, map_state, smallest_fitting
from ._translate import backoff_delays, translate

__all__ = [
    "DEFAULT_CAPACITY",
    "PROVIDER_DEFAULTS",
    "STATE_MAP",
    "TAG_DRIVER",
    "TAG_META",
    "CloudConfig",
    "LibcloudDriver",
    "Secret",
    "Size",
    "backoff_delays",
    "events_between",
    "map_state",
    "smallest_fitting",
    "translate",
]
