"""Secrets that are never weak or left behind.

A placeholder from pillar/examples/secrets.sls.example, a Django SECRET_KEY
that Django's own deploy check (security.W009) would flag, or a short
password is refused wherever it is read (a pillar error naming the key and
the host), and by the ordered deploy before its first step. Every file a
formula writes a secret into is removed by a retire state when the role
leaves the host."""
import copy
import secrets as pysecrets

import pytest
import yaml

import stackpillar
from stackpillar import site as stacksite
from stacklab.site import write_site
from tests.fast.conftest import SECRETS
from tests.layouts import EXAMPLE_APPS, LAYOUTS, LAYOUTS_DIR, REGISTRY, REPO, load_layout

EXAMPLE = REPO / "pillar" / "examples" / "secrets.sls.example"
MAKE_ONE = "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
THREE_TIER = load_layout("three-tier")


def with_secret(path, value, base=SECRETS):
    data = copy.deepcopy(base)
    *parents, leaf = path.split(":")
    node = data["secrets"]
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return data


def errors_of(renderer, host, layout=THREE_TIER):
    pillar = renderer.pillar(host, layout["hosts"][host]["address"])
    return " ".join(pillar.get("_errors", []))


def site_with(secrets, topology=THREE_TIER):
    return {"topology": {"topology": topology}, "apps": yaml.safe_load(EXAMPLE_APPS.read_text()),
            "secrets": secrets}


def test_the_examples_placeholders_are_refused_naming_key_and_host(renderer):
    renderer.use_layout("three-tier")
    renderer.write("secrets.sls", EXAMPLE.read_text())
    expected = {
        "app2": "secrets:django:demo:secret_key",
        "db1": "secrets:postgres:users:demo",
        # Media hosts check each app's write credential against a hash
        # derived from its SECRET_KEY (they never get the key itself).
        "media1": "secrets:django:demo:secret_key",
    }
    for host, key in expected.items():
        errors = errors_of(renderer, host)
        assert f"{key}: is the placeholder CHANGE-ME of pillar/examples/secrets.sls.example" in errors, errors
        assert f"needed on {host}" in errors and f"(minion {host})" in errors, errors
        assert MAKE_ONE in errors, errors
    # A host whose roles use no secret is not held up by them.
    assert "_errors" not in renderer.pillar("lb1", THREE_TIER["hosts"]["lb1"]["address"])


@pytest.mark.parametrize("value", ["change-me", "  Change-Me\n", "CHANGE-ME"])
def test_a_placeholder_is_refused_whatever_its_case_and_spaces(value):
    with pytest.raises(stackpillar.TopologyError) as err:
        stacksite.secret(with_secret("postgres:users:demo", value), "postgres:users:demo", "db1")
    assert str(err.value).lower().startswith("secrets:postgres:users:demo: is the placeholder change-me "), err.value


def test_the_placeholders_are_every_value_of_the_example():
    example = yaml.safe_load(EXAMPLE.read_text())
    leaves = []
    stack = [example]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        else:
            leaves.append(node)
    assert leaves and {v.strip().lower() for v in leaves} == stacksite._placeholders()


WEAK = {
    "a SECRET_KEY one character short of Django's 50": (
        "django:demo:secret_key", pysecrets.token_urlsafe(64)[:49], "49 characters (at least 50)"),
    "a SECRET_KEY startproject made for development": (
        "django:demo:secret_key", "django-insecure-" + pysecrets.token_urlsafe(64),
        "the prefix django-insecure- of a development key"),
    "a long SECRET_KEY of four characters": (
        "django:demo:secret_key", "abcd" * 20, "4 different characters (at least 5)"),
    "a database password of 15 characters": (
        "postgres:users:demo", pysecrets.token_urlsafe(32)[:15], "15 characters (at least 16)"),
    "a database password of one character repeated": (
        "postgres:users:demo", "x" * 40, "1 different characters (at least 5)"),
    "a short TLS seed": (
        "pgbackrest:tls_seed", "seed-2024", "9 characters (at least 16)"),
}


@pytest.mark.parametrize("case", WEAK, ids=list(WEAK))
def test_weak_secrets_are_refused_naming_key_host_and_rule(renderer, case):
    path, value, rule = WEAK[case]
    renderer.use_layout("three-tier")
    renderer.write_secrets(with_secret(path, value))
    host = {"django": "app1", "postgres": "db1", "pgbackrest": "media1"}[path.split(":")[0]]
    errors = errors_of(renderer, host)
    assert f"secrets:{path}: is weak: {rule}" in errors, errors
    assert f"needed on {host}" in errors and MAKE_ONE in errors, errors
    # Never the value itself in the message (it may be nearly right).
    assert value not in errors
    if path.startswith("django:"):
        assert "security.W009" in errors, errors


def test_short_patroni_passwords_are_refused_on_the_members(renderer):
    layout = load_layout("replicated")
    renderer.use_layout("replicated")
    renderer.write_secrets(with_secret("patroni:rewind", "rewind-pw"))
    errors = errors_of(renderer, "db2", layout)
    assert "secrets:patroni:rewind: is weak: 9 characters (at least 16)" in errors and "needed on db2" in errors
    assert "_errors" not in renderer.pillar("web1", layout["hosts"]["web1"]["address"])


def test_the_least_a_rule_allows_is_accepted():
    assert stacksite.secret_problem("django:demo:secret_key", pysecrets.token_urlsafe(64)[:50]) is None
    assert stacksite.secret_problem("postgres:users:demo", pysecrets.token_urlsafe(32)[:16]) is None
    assert stacksite.secret_problem("patroni:restapi", "abcde" * 4) is None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_generated_secrets_pass_everywhere(tmp_path, layout):
    """token_urlsafe(50), as the README says and the lab generates (67
    characters): every host's pillar builds, the ordered deploy plans."""
    write_site(tmp_path, REPO, (LAYOUTS_DIR / f"{layout}.sls").read_text())
    lab_site = stackpillar.load_site([str(tmp_path)])
    values = stacksite._leaves(lab_site["secrets"])
    assert values and all(len(v) == 67 for v in values)
    hosts, steps = stackpillar.deploy_plan(lab_site, REGISTRY)
    assert hosts == list(load_layout(layout)["hosts"]) and steps


def test_the_ordered_deploy_refuses_a_placeholder_before_its_first_step():
    """deploy_plan builds every host's pillar: the first secret in topology
    order (three-tier: lb1 needs none, app1 the SECRET_KEY first) is named."""
    placeholders = yaml.safe_load(EXAMPLE.read_text())
    with pytest.raises(stackpillar.TopologyError) as err:
        stackpillar.deploy_plan(site_with(placeholders), REGISTRY)
    assert err.value.key == "secrets:django:demo:secret_key"
    assert "is the placeholder CHANGE-ME" in str(err.value) and "needed on app1" in str(err.value)


def test_the_ordered_deploy_refuses_a_secret_only_one_host_needs():
    """The pgBackRest seed is read on database and backup hosts only; the
    plan still refuses a weak one, naming the first host that needs it."""
    with pytest.raises(stackpillar.TopologyError) as err:
        stackpillar.deploy_plan(site_with(with_secret("pgbackrest:tls_seed", "short")), REGISTRY)
    assert err.value.key == "secrets:pgbackrest:tls_seed" and "needed on db1" in str(err.value)


def test_the_orchestrate_render_refuses_the_examples_placeholders(master):
    master.renderer.use_layout("three-tier")
    master.renderer.write("secrets.sls", EXAMPLE.read_text())
    try:
        ret = master.factory.salt_run_cli(timeout=120).run(
            "state.orchestrate_show_sls", "orchestrate.deploy", "saltenv=stack", "pillarenv=stack")
    finally:
        master.renderer.write_secrets(SECRETS)
    output = ret.stdout + ret.stderr
    assert "secrets:django:demo:secret_key: is the placeholder CHANGE-ME" in output, output[-3000:]
    assert "needed on app1" in output and MAKE_ONE in output, output[-3000:]


# --- Secret files leave with their role ----------------------------------

def _strings(value):
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _file_names(state_id, args):
    """The paths a file state names: names, name, or its id."""
    for item in args:
        if isinstance(item, dict) and "names" in item:
            return [next(iter(n)) if isinstance(n, dict) else n for n in item["names"]]
    for item in args:
        if isinstance(item, dict) and "name" in item:
            return [item["name"]]
    return [state_id]


def secret_files(renderer, topology):
    """{path: state id} of every file state, on any host, whose arguments
    carry a secret (a site secret or a host's derived TLS key), plus the
    .pgpass Patroni itself writes the replication password into."""
    found = {}
    for host, spec in topology["hosts"].items():
        pillar = renderer.pillar(host, spec["address"])
        needles = _strings(SECRETS) + [pillar.get("pgbackrest", {}).get("tls", {}).get("key")]
        needles = [n for n in needles if n]
        for state_id, chunk in renderer.highstate(host, spec["address"]).items():
            if not isinstance(chunk, dict):
                continue
            for module, args in chunk.items():
                if module != "file" or not isinstance(args, list):
                    continue
                if any(n in s for s in _strings(args) for n in needles):
                    found.update({path: state_id for path in _file_names(state_id, args)})
                if state_id == "patroni-config":
                    dataset = next(a["dataset"] for a in args if isinstance(a, dict) and "dataset" in a)
                    found[dataset["postgresql"]["pgpass"]] = "Patroni's own .pgpass"
    return found


def test_every_file_holding_a_secret_is_removed_when_its_role_leaves(renderer):
    """replicated has every secret-holding role (app, Patroni members,
    backup). A host with none of them (only cache here) applies their
    retire states: each such file is removed there, or a directory above it."""
    topology = copy.deepcopy(load_layout("replicated"))
    renderer.use_topology(topology)
    found = secret_files(renderer, topology)
    assert {"/etc/django-apps/demo.env", "/etc/patroni/17-main.yml", "/var/lib/postgresql/17-main.pgpass",
            "/etc/pgbackrest/tls/host.key"} <= set(found), found
    topology["hosts"]["spare1"] = {"address": "10.77.0.40", "roles": ["cache"], "options": {}}
    renderer.use_topology(topology)
    highstate = renderer.highstate("spare1", "10.77.0.40")
    assert isinstance(highstate, dict), highstate
    absent = [path for state_id, chunk in highstate.items() if isinstance(chunk, dict)
              for module, args in chunk.items() if module == "file" and "absent" in args
              for path in _file_names(state_id, args)]
    for path, writer in found.items():
        assert any(path == gone or path.startswith(gone.rstrip("/") + "/") for gone in absent), (path, writer)
