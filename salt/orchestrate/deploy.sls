#!py
"""The ordered deploy: salt-run state.orchestrate orchestrate.deploy saltenv=stack

Steps come from the role registry (each role's deploy step and states) and
the site's topology, read through the same library as the pillar, which
builds every host's pillar first: a wrong topology or a secret that is
missing, a placeholder or weak stops the deploy here, naming the key and the
host, before any host changes.
After the firewall, each role's step starts once the steps it needs are
done (stackpillar.deploy_steps: the roles with lower steps that its role
requires or that require it, the step before it in a leader_first or
rolling role, every earlier step on one of its hosts), so steps that need
nothing unfinished run at once (Salt's `parallel`). A failed step fails
every step that needs it (the last step needs them all), and a role step
failed so stops the deploy (failhard): steps not started never start, and
steps still running finish on their hosts but are reported only as
started. Roles that moved away are retired last, after every step."""
import importlib
import os
import sys


def _stackpillar(roots):
    """The library from the first pillar root holding it, loaded afresh."""
    sys.modules.pop("stackpillar", None)
    sys.path[:0] = roots
    try:
        return importlib.import_module("stackpillar")
    finally:
        del sys.path[:len(roots)]


def _on(hosts, **kwargs):
    return [{"tgt": hosts}, {"tgt_type": "list"}] + [{k: v} for k, v in kwargs.items()]


def _ls_remote(url):
    """`git ls-remote URL` on the master; OSError with git's complaint."""
    try:
        ret = __salt__["cmd.run_all"](["git", "ls-remote", "--", url], python_shell=False, timeout=60)
    except Exception as exc:  # noqa: BLE001 - git missing, a timeout: said in the error
        raise OSError(str(exc)) from None
    if ret["retcode"] != 0:
        raise OSError((ret.get("stderr") or ret.get("stdout") or f"exit {ret['retcode']}").strip())
    return ret["stdout"]


def _module_kinds(roots):
    """The kinds of custom module the file roots ship for minions (_modules:
    modules, _states: states, ...; not _runners, which the master loads),
    sorted."""
    return sorted({entry[1:] for root in roots if os.path.isdir(root)
                   for entry in os.listdir(root)
                   if entry.startswith("_") and os.path.isdir(os.path.join(root, entry))
                   and f"saltutil.sync_{entry[1:]}" in __salt__})


def run():
    pillarenv = __opts__.get("pillarenv") or saltenv
    roots = __opts__["pillar_roots"].get(pillarenv) or []
    lib = _stackpillar(roots)
    # A TopologyError here (topology, apps, any host's secrets) fails the
    # render: its message names the key and the host.
    site = lib.load_site(roots)
    everyone, steps = lib.deploy_plan(site, lib.load_registry())
    # A branch or tag resolved once: every app host gets the commit the
    # leader migrates (stackpillar/revisions.py).
    pinned = lib.pinned_pillar(lib.pinned_revisions(lib.check_apps(site["apps"]), _ls_remote))
    # Minions render with the same environments as this run.
    envs = {"saltenv": saltenv, "pillarenv": pillarenv}
    # At once on every host: the host check (every host proves it matches
    # the topology), the pillar minions hold in memory (pillar targeting,
    # e.g. orchestrate.database; each state run compiles its own), and the
    # stack's own modules (formulas/_modules, _states), which a highstate
    # syncs and state.sls does not. Only the kinds shipped: sync_all asks
    # the master for some twenty kinds (20 s instead of 7 on eleven hosts).
    first = {
        "host-check": {"salt.state": _on(everyone, sls="stack.host", failhard=True, parallel=True, **envs)},
        "refresh-pillar": {"salt.function": _on(everyone, name="saltutil.refresh_pillar", parallel=True, **envs)},
    }
    for kind in _module_kinds(__opts__["file_roots"].get(saltenv) or []):
        first[f"sync-{kind}"] = {"salt.function": _on(everyone, name=f"saltutil.sync_{kind}", parallel=True,
                                                      kwarg={"saltenv": saltenv})}
    plan = {
        **first,
        # Then each host opens its ports to this topology's peers before any
        # of them is deployed (and closes them to hosts that left); nothing
        # changes if a host does not match.
        "firewall": {"salt.state": _on(everyone, sls="firewall", failhard=True,
                                       require=[{"salt": name} for name in first], **envs)},
    }
    # Every role step is parallel, the last one too: Salt starts a parallel
    # state once its requisites are done and goes on to the next, where a
    # state that is not parallel would wait in place for the parallel ones
    # it requires, holding back every step after it.
    for step in steps:
        extra = {"pillar": pinned} if pinned and "django" in step.states else {}
        plan[step.name] = {"salt.state": _on(step.hosts, sls=step.states, failhard=True, parallel=True,
                                             require=[{"salt": need} for need in ["firewall", *step.needs]],
                                             **envs, **extra)}
    # Last, once every step is done: roles that moved away leave their old
    # hosts, then each host converges itself at every boot from now on
    # (topology:salt_master). One run per host for both.
    plan["retire-and-minion-config"] = {"salt.state": _on(
        everyone, sls=["stack.retire", "salt_minion"], parallel=True,
        require=[{"salt": need} for need in ["firewall", *(step.name for step in steps)]], **envs)}
    return plan
