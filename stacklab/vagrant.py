"""What the Vagrantfile needs from the lab, so that it repeats none of it.

On this machine (``python -m stacklab vagrant-site``, run by the Vagrantfile
at every ``vagrant`` command), for one layout, under
``<Vagrant's dotfile dir>/django-stack/<layout>/``::

    site/       the site pillar root (the master's /srv/site): topology.sls
                (a copy of the layout), apps.sls (the example's, tls
                self_signed), secrets.sls (generated once, kept),
                overrides.sls (pip from the mounted wheelhouse)
    pki/        each minion's keypair (generated once), uploaded to it
    master/     the master's bundle (its /srv/vagrant): django-stack.conf
                and minions/<id>, the public keys pre-seeded on it

and it prints what the Vagrantfile reads (JSON: hosts, addresses, paths,
image). With ``--image`` it also builds the docker provider's image
(``<prefix>-vagrant:<release>``, the lab's base image plus a ``vagrant``
user) and the app wheelhouse, when missing.

On the master machine (``python3 -m stacklab.vagrant report``, from
vagrant/provision-master.sh): the ordered deploy's JSON as one line per
host with its changed and failed states, which tests parse.

Only the standard library at module level: the master runs the report
with Debian's python3.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from pathlib import Path

from . import saltctl
from .util import LabError, Progress

IMAGE_KIND = "vagrant"
# Where Debian's vagrant (and upstream's) keep the insecure key Vagrant logs in
# with at first.
INSECURE_KEY_GLOBS = ("/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub",
                      "/usr/share/vagrant/keys/vagrant.pub",
                      "/opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub")
# What the report prints per host; tests/lab/test_vagrant.py parses it.
REPORT_LINE = "django-stack deploy: host {host} changed {changed} failed {failed}"
REPORT_RE = re.compile(r"django-stack deploy: host (\S+) changed (\d+) failed (\d+)")
# salt.state's comment names the minions a step ran on.
_RAN_ON = re.compile(r"(?:Updating|No changes made to) ([^.]+)\.")


def master_address(topology) -> str:
    """The address the minions know the master by: topology:salt_master,
    else the network's last address (.254 in a /24), the lab's own choice."""
    checked = _topology_data(topology).get("salt_master")
    if checked is None:
        return str(topology.network.broadcast_address - 1)
    if checked in topology.hosts:
        raise LabError(f"{topology.path}: topology:salt_master: the Vagrantfile runs the master on a "
                       f"machine of its own (salt): give its address, not a host ({checked})")
    address = ipaddress.ip_address(checked)
    if address not in topology.network or checked in {h.address for h in topology.hosts.values()}:
        raise LabError(f"{topology.path}: topology:salt_master: {checked} must be a free address "
                       f"of topology:network {topology.network}")
    return checked


def _topology_data(topology) -> dict:
    import yaml

    return (yaml.safe_load(topology.text) or {}).get("topology") or {}


def prepare(layout: str, state_dir: Path, *, settings=None, progress: Progress | None = None,
            build_image: bool = False, admin_networks: list[str] = ()) -> dict:
    """Write the layout's site pillar root, keys and master bundle under
    ``state_dir``/<layout>/ and return what the Vagrantfile reads.
    ``admin_networks``: where else ssh must come from (Vagrant's own
    address on a provider's management network)."""
    from . import docker, site, topology as topo_mod
    from .config import Settings, check_release
    from .containers import master_conf

    settings = settings or Settings.from_env()
    progress = progress or Progress()
    release = check_release(None)
    topology = topo_mod.load(layout, settings.layout_dirs, settings.pillar_lib)
    master = master_address(topology)
    root = state_dir / topology.name
    site.write_site(root / "site", settings.repo,
                    site.topology_copy(with_admin_networks(topology.text, admin_networks), topology.path))
    hosts = list(topology.hosts)
    keys = site.minion_keys(root / "pki", hosts)
    bundle = root / "master"
    site.write_atomic(bundle / "django-stack.conf", master_conf(settings.repo, base_roots=(), lab_files=False), 0o644)
    pubs = bundle / "minions"
    pubs.mkdir(parents=True, exist_ok=True)
    for stale in set(p.name for p in pubs.iterdir()) - set(hosts):
        (pubs / stale).unlink()
    for host, (_pem, pub) in keys.items():
        site.write_atomic(pubs / host, pub, 0o644)
    image = image_ref(settings, release)
    if build_image:
        ensure_image(settings, release, progress)
    return {
        "layout": topology.name,
        "topology": str(topology.path),
        "network": str(topology.network),
        "netmask": topology.network.prefixlen,
        "master": master,
        "hosts": [{"id": h.id, "address": h.address} for h in topology.hosts.values()],
        "site_dir": str(root / "site"),
        "pki_dir": str(root / "pki"),
        "master_dir": str(bundle),
        "wheelhouse": str(settings.wheelhouse(release)),
        "release": release,
        "image": image,
        # What the Vagrantfile mounts where, and how its containers boot
        # systemd: the lab's own values.
        "mounts": {"repo": site.REPO_MOUNT, "site": site.SITE_MOUNT, "wheelhouse": site.WHEELHOUSE_MOUNT},
        "docker_run_flags": docker.SYSTEMD_RUN_FLAGS,
    }


def with_admin_networks(text: str, extra: list[str]) -> str:
    """A topology file's text with ``extra`` networks added to its
    admin_networks; unchanged when it has none (ssh is then open to all) or
    nothing is added."""
    import yaml

    data = yaml.safe_load(text) or {}
    topology = data.get("topology") or {}
    have = topology.get("admin_networks")
    missing = [n for n in extra if n not in (have or [])]
    if not have or not missing:
        return text
    topology["admin_networks"] = [*have, *missing]
    return ("# admin_networks: plus where Vagrant's ssh comes from (stacklab vagrant-site)\n"
            + yaml.safe_dump(data, default_flow_style=False, sort_keys=False))


def image_ref(settings, release: str) -> str:
    """The docker provider's image: a moving tag per release, so the
    Vagrantfile names it without building anything."""
    return f"{settings.image_prefix}-{IMAGE_KIND}:{release}"


def insecure_key() -> Path:
    for pattern in INSECURE_KEY_GLOBS:
        found = sorted(Path("/").glob(pattern.lstrip("/")))
        if found:
            return found[-1]
    raise LabError("Vagrant's insecure public key (keys/vagrant.pub) not found: install vagrant "
                   "(apt-get install --no-install-recommends vagrant)")


def ensure_image(settings, release: str, progress: Progress) -> str:
    """Build (or reuse) the lab's images, the app wheelhouse the Vagrant
    hosts mount, and the docker provider's image on top of the base image;
    returns its tag (image_ref)."""
    from . import docker, images
    from .util import file_lock, sha256_text

    imgs = images.ensure_images(settings, release, progress)
    images.app_wheelhouse(settings, release, progress, imgs)
    key = insecure_key()
    recipe = images.RECIPE_DIR / "Dockerfile.vagrant"
    h = sha256_text("vagrant-v1", imgs.base, recipe.read_text(), key.read_text())[:12]
    ref, tag = f"{settings.image_prefix}-{IMAGE_KIND}:{release}-{h}", image_ref(settings, release)
    with file_lock(settings.cache_dir / "locks" / f"vagrant-image-{release}.lock", "vagrant image", progress):
        if not docker.image_exists(ref):
            images._docker_build(settings, ref, h, recipe.read_text().format(base=imgs.base),
                                 {"vagrant.pub": key}, progress,
                                 f"docker build {ref} (the base image with a vagrant user)")
        docker.docker("tag", ref, tag)
        # Older builds of this release (containers still using one keep it).
        for old in images._refs(settings.image_prefix, IMAGE_KIND):
            if old not in (ref, tag) and old.rsplit(":", 1)[-1].startswith(f"{release}-"):
                docker.docker("rmi", old, check=False, timeout=120)
    return tag


# --- on the master machine -----------------------------------------------------

def report(raw: str, hosts: list[str], returncode: int = 0, stderr: str = "") -> tuple[list[str], bool]:
    """Lines saying what the ordered deploy did on each topology host, and
    whether it succeeded: it did, every host ran its steps and none failed."""
    import subprocess

    res = saltctl.parse_orchestrate(subprocess.CompletedProcess([], returncode, raw, stderr))
    ran = set(res.hosts)
    for _name, _ok, comment in res.steps:
        for names in _RAN_ON.findall(comment):
            ran.update(n.strip() for n in names.split(","))
    lines = [f"django-stack deploy: {'OK' if res.ok else 'FAILED'}"]
    ok = res.ok
    for host in hosts:
        if host not in ran:
            ok = False
            lines.append(f"django-stack deploy: host {host} did not report")
            continue
        counts = res.hosts.get(host, {"changed": 0, "failed": 0})
        lines.append(REPORT_LINE.format(host=host, **counts))
    lines += [f"  ! {f}" for f in res.failures[:30]]
    return lines, ok


def parse_report(text: str) -> dict[str, dict[str, int]]:
    """{host: {changed, failed}} from provisioner output (Vagrant's prefixes allowed)."""
    return {m.group(1): {"changed": int(m.group(2)), "failed": int(m.group(3))}
            for m in REPORT_RE.finditer(text)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m stacklab.vagrant")
    sub = ap.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("report", help="the ordered deploy's JSON (a file) as changed/failed states per host")
    p.add_argument("json_file", type=Path)
    p.add_argument("--returncode", type=int, default=0, help="salt-run's exit code")
    p.add_argument("--stderr-file", type=Path, help="salt-run's stderr (errors named there)")
    p.add_argument("hosts", nargs="+", help="the topology's minion ids")
    args = ap.parse_args(argv)
    stderr = args.stderr_file.read_text(errors="replace") if args.stderr_file else ""
    lines, ok = report(args.json_file.read_text(errors="replace"), args.hosts, args.returncode, stderr)
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

