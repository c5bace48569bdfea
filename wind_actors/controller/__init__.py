"""The controller (``wind controller --config controller.toml``): tenants, applications, the pool
built from every site's reports, the scheduler, and one supervised actor per application watching
its VMs through remote monitors. Desired state persists in SQLite (``[controller] store``).
"""

from ._app import AppActor, Reconcile, StartUndeploy
from ._controller import ControllerActor
from ._tree import Controller, run_controller
from ._views import ALIVE, SiteView, Snapshot, app_row, build_pool, observed_for, slots_of, vm_spec

__all__ = [
    "Controller", "run_controller", "ControllerActor", "AppActor", "Reconcile", "StartUndeploy",
    "Snapshot", "SiteView", "build_pool", "vm_spec", "observed_for", "app_row", "slots_of", "ALIVE",
]
