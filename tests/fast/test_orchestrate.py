"""The ordered deploy, rendered on a real salt-master: its steps come from the
registry (each role's deploy step and states) and target exactly each role's
hosts; each role step runs in parallel once the steps it needs are done
(tests/fast/test_deploy_steps.py checks what each step needs)."""
import pytest
import stackpillar
from stackpillar.registry import resolve_registry

from tests.layouts import LAYOUTS, REGISTRY, REPO, hosts_with, load_layout

# The custom module kinds the formulas ship (formulas/_modules, _states):
# each synced by a step of its own, beside the pillar's refresh.
SYNCS = [f"sync-{path.name[1:]}" for path in sorted((REPO / "formulas").glob("_*"))]


def step_args(step):
    (args,) = (v for k, v in step.items() if not k.startswith("__"))
    flat = {}
    for arg in args:
        if isinstance(arg, dict):
            flat.update(arg)
    return flat


def expected_steps(topology):
    """(step, sls, targets) in order, as the registry resolved for the
    topology (its variants) says."""
    registry = resolve_registry(REGISTRY, topology)
    everyone = list(topology["hosts"])
    steps = [("host-check", "stack.host", everyone), ("refresh-pillar", None, everyone),
             *((sync, None, everyone) for sync in SYNCS), ("firewall", "firewall", everyone)]
    for role in sorted(registry["roles"], key=lambda r: registry["roles"][r]["deploy"]["step"]):
        holders = hosts_with(topology, role)
        states = registry["roles"][role]["states"]
        deploy = registry["roles"][role]["deploy"]
        if holders and deploy.get("leader_first"):
            steps.append((f"{role}-leader", states, holders[:1]))
        if holders and not deploy.get("rolling"):
            steps.append((role, states, holders))
        elif holders:
            # After the leader, one host at a time (rolling_batch 1, the default).
            steps += [(f"{role}-batch-{n}", states, [host]) for n, host in enumerate(holders[1:], start=1)]
    return steps + [("retire-and-minion-config", ["stack.retire", "salt_minion"], everyone)]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_orchestrate_follows_the_registry(master, layout):
    assert SYNCS == ["sync-modules", "sync-states"]
    topology = load_layout(layout)
    master.renderer.use_layout(layout)
    steps = master.orchestrate_steps()
    expected = expected_steps(topology)
    assert sorted(steps, key=lambda s: step_args(steps[s])["order"]) == [name for name, _, _ in expected]
    for name, sls, targets in expected:
        args = step_args(steps[name])
        assert (args["tgt"], args["tgt_type"]) == (targets, "list"), name
        if sls:
            assert args["sls"] == sls, name
            # Minions render in the deploy's own environments.
            assert (args["saltenv"], args["pillarenv"]) == ("stack", "stack"), name
    # The host check, the pillar's refresh and the syncs run at once; the
    # firewall waits for them all, in place.
    names = [name for name, _, _ in expected]
    firewall = names.index("firewall")
    for name in names[:firewall]:
        assert "require" not in step_args(steps[name]) and step_args(steps[name])["parallel"] is True, name
    assert step_args(steps["firewall"])["require"] == [{"salt": name} for name in names[:firewall]]
    assert "parallel" not in step_args(steps["firewall"])
    # Then each role step waits for the firewall and the steps it needs,
    # in parallel; the last step waits for all of them.
    needs = {step.name: step.needs for step in stackpillar.deploy_steps(topology, REGISTRY)}
    assert list(needs) == names[firewall + 1:-1]
    needs["retire-and-minion-config"] = list(needs)
    for name, waits in needs.items():
        args = step_args(steps[name])
        assert args["require"] == [{"salt": need} for need in ["firewall", *waits]], name
        assert args.get("parallel") is True, name
    # A failed step fails the steps that need it; a failed role step (or a
    # host that does not match, or its firewall) stops the deploy.
    for name in names:
        if name not in ("refresh-pillar", *SYNCS, "retire-and-minion-config"):
            assert step_args(steps[name]).get("failhard") is True, name


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_registered_role_with_hosts_is_deployed(master, layout):
    """A role in the registry is applied by the ordered deploy wherever a host holds it."""
    topology = load_layout(layout)
    master.renderer.use_layout(layout)
    steps = master.orchestrate_steps()
    applied = {s for step in steps.values() for s in (step_args(step).get("sls") or [])
               if isinstance(step_args(step).get("sls"), list)}
    registry = resolve_registry(REGISTRY, topology)
    held = [role for role in registry["roles"] if hosts_with(topology, role)]
    assert held
    for role in held:
        assert set(registry["roles"][role]["states"]) <= applied, role


def test_a_wrong_topology_fails_the_orchestrate_render_naming_key_and_host(master):
    topology = load_layout("three-tier")
    topology["hosts"]["app2"]["roles"] = ["app", "webserver"]
    master.renderer.use_topology(topology)
    ret = master.factory.salt_run_cli(timeout=120).run(
        "state.orchestrate_show_sls", "orchestrate.deploy", "saltenv=stack", "pillarenv=stack")
    assert "topology:hosts:app2:roles: unknown role webserver" in ret.stdout + ret.stderr
