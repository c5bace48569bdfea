"""The simulated driver: an in-memory hypervisor of any size, with latency and fault injection."""

from ._driver import SimDriver
from ._faults import SimFaults
from ._hypervisor import SimHypervisor

__all__ = ["SimDriver", "SimFaults", "SimHypervisor"]
