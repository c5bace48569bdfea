"""The site agent (``wind agent --config site.toml``): one per site.

It runs the site's driver actor, one VM actor per VM under supervisors whose restart type follows
each VM's restart policy, and a site actor that places/removes VMs for the controller and
reports the site's capacity, inventory and health. See ``_agent`` for the supervision tree.
"""

from ._agent import Agent, run_agent
from ._context import SiteContext, VMChanged
from ._policy import (ACTIVE, RESTART_TYPES, classify_stop, converge_action, restart_type,
                      restart_wanted)
from ._site import WIND_METADATA, SiteActor, site_report
from ._vm import Teardown, VMActor

__all__ = [
    "Agent", "run_agent", "SiteActor", "VMActor", "SiteContext", "VMChanged", "Teardown",
    "site_report", "WIND_METADATA", "RESTART_TYPES", "ACTIVE", "restart_type", "restart_wanted",
    "converge_action", "classify_stop",
]
