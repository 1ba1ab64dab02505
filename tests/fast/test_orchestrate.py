"""The ordered deploy targets each step at exactly the hosts of its role."""
import pytest

from tests.layouts import LAYOUTS, hosts_with, load_layout

ORDER = ["refresh-pillar", "update-mine", "common", "database", "cache", "media",
         "app-leader", "app", "loadbalancer", "retire-moved-roles"]


def step_args(step):
    (args,) = (v for k, v in step.items() if not k.startswith("__"))
    flat = {}
    for arg in args:
        if isinstance(arg, dict):
            flat.update(arg)
    return flat


@pytest.mark.parametrize("layout", LAYOUTS)
def test_orchestrate_targets_roles_in_order(master, layout):
    topology = load_layout(layout)
    master.renderer.use_layout(layout)
    steps = master.orchestrate_steps()
    assert set(steps) == set(ORDER)

    everyone = sorted(topology["hosts"])
    for name in ORDER:
        args = step_args(steps[name])
        assert args["tgt_type"] == "list", name
        if name in ("database", "cache", "media", "app", "loadbalancer"):
            expected = sorted(hosts_with(topology, name))
        elif name == "app-leader":
            # The first app host in topology order runs the migrations.
            expected = hosts_with(topology, "app")[:1]
        else:
            expected = everyone
        assert sorted(args["tgt"]) == expected, name
    # Each step waits for the one before it; a failed tier stops the deploy.
    for before, after in zip(ORDER[2:], ORDER[3:]):
        assert {"salt": before} in step_args(steps[after])["require"], (before, after)
        if after != "retire-moved-roles":
            assert step_args(steps[after]).get("failhard") is True, after
