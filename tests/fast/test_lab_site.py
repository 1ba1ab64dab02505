"""The lab's site pillar root is written as a site would keep it: its
secrets.sls has exactly the shape of pillar/examples/secrets.sls.example,
generated values, and keeps them across rewrites."""
import yaml

from stacklab.site import write_site
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
