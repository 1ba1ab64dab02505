"""single: every role on one box; and a box with no master at all."""
import pytest
import yaml

import stack_checks as checks
from stacklab.site import write_site
from tests.layouts import REPO

# Debian 12 (LTS): the formulas choose their versions per release.
pytestmark = pytest.mark.layout("single", release="bookworm")


class TestSingle(checks.LayoutSuite):

    def test_a_box_with_no_master_converges_with_salt_call_local_and_serves_the_site(self, lab, say):
        """README's "Masterless": box1 (the single layout's roles, no
        topology:salt_master) has this repository, a site pillar root and
        salt/masterless.conf, and no master; `salt-call --local state.apply`
        deploys it, and a second run changes nothing."""
        layout = checks.lab_layout(lab)
        (web,) = layout["hosts"]
        address = checks.free_address(lab, layout)
        topology = {"network": layout["network"], "admin_networks": layout["admin_networks"],
                    "hosts": {"box1": {"address": address, "roles": layout["hosts"][web]["roles"]}}}
        site_dir = write_site(lab.dir / "masterless-site", REPO, yaml.safe_dump({"topology": topology}))
        lab.masterless("box1", address, site_dir)
        try:
            first = lab.salt_call_local("box1", "state.apply")
            second = lab.salt_call_local("box1", "state.apply")
            say(f"masterless box1: first run {first['states']} states, {first['changed']} changed, "
                f"{first['failed']} failed; second run {second['changed']} changed, {second['failed']} failed")
            assert first["failed"] == 0, first["failures"]
            assert first["changed"] > 0
            assert (second["changed"], second["failed"]) == (0, 0), second["failures"]
            assert lab.exec("box1", "systemctl is-enabled salt-minion").stdout.strip() != "enabled"
            checks.wait_healthy(lab, topology)
            checks.check_site(lab, topology)
        finally:
            lab.leave("box1")
