"""A topology host's own minion configuration, from topology:salt_master:
the master it connects to, its id, and a highstate at every start of the
minion (each boot), so a host converges without a push. The same text is
the formula salt_minion's file and what `python3 -m stackpillar
minion-config` prints for a host that joins by booting, so the first apply
on a joined host finds it as it should be."""
import yaml

# Why each key is there, written into the file itself.
HEADER = ("# Managed by the stack (formula salt_minion, from topology:salt_master).\n"
          "# startup_states: each start of the minion (every boot) runs a highstate,\n"
          "# so a host that drifted or joined converges without a push.\n")


def master_address(topology):
    """The address minions reach the master at, or None (no master: masterless)."""
    master = topology.get("salt_master")
    if master in topology["hosts"]:
        return topology["hosts"][master]["address"]
    return master


def minion_config(topology, host_id):
    """The text of ``host_id``'s minion configuration, or None without a master."""
    master = master_address(topology)
    if master is None:
        return None
    settings = {"master": master, "id": host_id, "startup_states": "highstate"}
    return HEADER + yaml.safe_dump(settings, default_flow_style=False, sort_keys=False)
