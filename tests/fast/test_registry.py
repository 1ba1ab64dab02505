"""The role registry is the one list of roles: every registered role has all
its pieces, and every consumer reads the registry instead of a list of its own."""
import copy
import inspect
import re
import subprocess

import pytest
import yaml

import stackpillar
from stackpillar import adapters
from tests.layouts import LAYOUTS, LAYOUTS_DIR, REGISTRY, REPO, ROLES

STATE_DIRS = [REPO / "salt", REPO / "formulas"]


def sls_exists(name):
    rel = name.replace(".", "/")
    return any((d / f"{rel}.sls").is_file() or (d / rel / "init.sls").is_file() for d in STATE_DIRS)


def missing_pieces(registry):
    """{role: [what is missing]} for every registered role."""
    missing = {}
    for role, entry in registry["roles"].items():
        gaps = []
        if not entry.get("states") or not all(sls_exists(s) for s in entry["states"]):
            gaps.append(f"formula states {entry.get('states')}")
        if not isinstance((entry.get("deploy") or {}).get("step"), int):
            gaps.append("deploy step")
        if not entry.get("retire") or not all(sls_exists(s) for s in entry["retire"]):
            gaps.append(f"retire states {entry.get('retire')}")
        if not inspect.isfunction(getattr(adapters, role, None)):
            gaps.append("pillar adapter (a function named after the role in stackpillar/adapters.py)")
        expect = entry.get("expect") or {}
        if not expect.get("services") or not isinstance(expect.get("packages"), list):
            gaps.append("expected services and packages (a list; empty when other roles install them too)")
        if gaps:
            missing[role] = gaps
    return missing


def test_every_role_lists_its_pieces_and_none_is_missing(say):
    for role, entry in REGISTRY["roles"].items():
        say(f"  {role:13} states={entry['states']} step={entry['deploy']['step']} "
            f"retire={entry['retire']} ports={list(entry['ports'])} options={list(entry['options'] or {})}")
    assert missing_pieces(REGISTRY) == {}


def test_a_role_registered_without_its_pieces_is_caught():
    registry = copy.deepcopy(REGISTRY)
    registry["roles"]["pgbouncer"] = {"hosts": {"min": 0, "max": None}, "states": ["pgbouncer"],
                                      "deploy": {"step": 15}, "retire": ["pgbouncer.clean"],
                                      "ports": {}, "options": {}}
    gaps = missing_pieces(registry)
    assert list(gaps) == ["pgbouncer"]
    assert len(gaps["pgbouncer"]) == 4, gaps


def test_a_new_role_without_hosts_breaks_no_layout():
    registry = copy.deepcopy(REGISTRY)
    registry["roles"]["pgbouncer"] = copy.deepcopy(registry["roles"]["cache"]) | {"hosts": {"min": 0, "max": None}}
    for layout in LAYOUTS:
        stackpillar.check_topology(yaml.safe_load((LAYOUTS_DIR / f"{layout}.sls").read_text()), registry)


def test_no_code_lists_the_roles_by_hand():
    """Outside the registry (and topologies, which are data), no code names
    three roles or more together in a list."""
    pattern = re.compile(r"[\[(]\s*['\"]?(%s)['\"]?\s*,\s*['\"]?(%s)" % ("|".join(ROLES), "|".join(ROLES)))
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        path = REPO / name
        data = name == "pillar/roles.yaml" or name.startswith(("pillar/examples/", "tests/lab/topologies/"))
        if data or path.suffix not in (".py", ".sls", ".jinja", ".rb") and name != "Vagrantfile":
            continue
        text = path.read_text(errors="replace")
        for line_no, line in enumerate(text.splitlines(), 1):
            if pattern.search(line) and sum(role in line for role in ROLES) >= 3:
                offenders.append(f"{name}:{line_no}: {line.strip()}")
    assert offenders == []


@pytest.mark.parametrize("role", ROLES)
def test_option_schema_types_are_known(role):
    for name, spec in (REGISTRY["roles"][role]["options"] or {}).items():
        assert spec["type"] in ("int", "port", "size"), (role, name)
