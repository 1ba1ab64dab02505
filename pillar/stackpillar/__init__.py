"""The stack's pillar library: the role registry, the topology check and the
per-role adapters that turn site data into each formula's pillar.

Pure Python (stdlib and PyYAML, both in every Salt install), so one
implementation serves the pillar (pillar/stack.sls), the ordered deploy
(salt/orchestrate/deploy.sls), the lab and the Vagrantfile
(`python3 -m stackpillar check FILE --json`).
"""
import sys

# Salt loads this package afresh at each render (an edited library is live at
# the next apply, no master restart): drop submodules of an earlier load.
for _name in [m for m in sys.modules if m.startswith(__name__ + ".")]:
    del sys.modules[_name]

from .errors import TopologyError  # noqa: E402
from .registry import load_registry, resolve_registry  # noqa: E402
from .topology import check_topology, hosts_with, topology_warnings  # noqa: E402
from .site import check_apps, load_site  # noqa: E402
from .build import build_pillar, deploy_plan, deploy_steps, site_registry  # noqa: E402
from .salt_minion import minion_config  # noqa: E402
from .plan import format_plan, site_plan  # noqa: E402
from .revisions import pinned_pillar, pinned_revisions  # noqa: E402

__all__ = ["TopologyError", "load_registry", "resolve_registry", "check_topology", "hosts_with",
           "topology_warnings", "check_apps", "load_site", "build_pillar", "deploy_plan", "deploy_steps",
           "site_registry", "minion_config", "format_plan", "site_plan", "pinned_pillar", "pinned_revisions"]
