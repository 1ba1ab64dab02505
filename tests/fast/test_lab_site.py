"""The lab's site pillar root is written as a site would keep it: its
secrets.sls has exactly the shape of pillar/examples/secrets.sls.example,
generated values, and keeps them across rewrites."""
import yaml

from stackpillar.site import check_apps
from stacklab.site import MAIL_RELAY_PORT, lab_apps, load_apps, write_site
from tests.layouts import REPO


def _leaves(d):
    return [x for v in d.values() for x in _leaves(v)] if isinstance(d, dict) else [d]


def _shape(d):
    return {k: _shape(v) for k, v in d.items()} if isinstance(d, dict) else type(d).__name__


def test_generated_secrets_have_the_examples_shape_and_are_kept(tmp_path):
    write_site(tmp_path, REPO, "topology: {}\n")
    first = (tmp_path / "secrets.sls").read_text()
    example = yaml.safe_load((REPO / "pillar" / "examples" / "secrets.sls.example").read_text())
    assert _shape(yaml.safe_load(first)) == _shape(example)
    assert "CHANGE-ME" not in first
    # Django's deploy check (security.W009) wants a secret key of 50 characters or more.
    assert min(len(v) for v in _leaves(yaml.safe_load(first))) >= 50
    assert (tmp_path / "secrets.sls").stat().st_mode & 0o777 == 0o600
    write_site(tmp_path, REPO, "topology: {}\n")
    assert (tmp_path / "secrets.sls").read_text() == first


def test_lab_apps_mail_the_labs_relay_and_pass_the_apps_check():
    """The lab's own relay (the master, an SMTP sink when a test starts
    one), with the example's sender and admins; without one, no mail."""
    example = load_apps(REPO)
    served = lab_apps(example, mail_relay="10.77.0.254")
    assert {name: app["mail"] for name, app in served["apps"].items()} == {
        name: {"host": "10.77.0.254", "port": MAIL_RELAY_PORT, "tls": "none",
               "from": app["mail"]["from"], "admins": app["mail"]["admins"]}
        for name, app in example.items()}
    check_apps(served)
    assert {app["mail"] for app in lab_apps(example)["apps"].values()} == {False}
