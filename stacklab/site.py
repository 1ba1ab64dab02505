"""The lab's site data, kept as a real site keeps it: a pillar root of its own.

Per lab, ``.lab/<layout>/site/`` (mounted read-only on the master at
/srv/site, listed before the repo's pillar in the ``stack`` pillar env)::

    topology.sls   plain YAML copy of the layout file (set_topology rewrites it)
    apps.sls       copy of pillar/examples/apps.sls
    secrets.sls    generated once (mode 0600), same shape as
                   pillar/examples/secrets.sls.example; kept across ups
    overrides.sls  lab-only formula settings (pip from the mounted
                   wheelhouse, a small PostgreSQL)

plus the minions' keypairs (``.lab/<layout>/pki/``, pre-seeded on the
master) and the lab's stand-in for a site's own states, ``stacklab/lab-base``
(mounted at /srv/lab-base, the master's ``base`` file root): a top file of
its own that targets only the minion outside the topology.
"""

from __future__ import annotations

import os
import secrets as _secrets
from pathlib import Path

import yaml

from .util import LabError

WHEELHOUSE_MOUNT = "/srv/stacklab/wheelhouse"
# Where salt/masterless.conf (and so every master the lab and Vagrant make)
# finds this repository and the site pillar root.
REPO_MOUNT = "/srv/django-stack"
SITE_MOUNT = "/srv/site"
# Lab only, first of the lab master's stack file roots: files a test lays
# over the stack's own there (an app's next release: a rolling deploy).
SITE_STATE_DIR = "salt"
LAB_BASE = Path(__file__).resolve().parent / "lab-base"
# The state ids the lab-base tree gives the outsider minion, and nothing else.
OUTSIDER_STATE_IDS = ["outsider-was-here"]
OUTSIDER_FILE = "/etc/outsider-was-here"
SITE_FILES = ("topology.sls", "apps.sls", "secrets.sls", "overrides.sls")
# The lab's ACME server (pebble): its directory, and where its container
# finds the files acme_server_files writes.
ACME_PORT = 14000
# Every app's error mail goes to the lab master on this port (tls none): an
# SMTP sink there when a test starts one, a refused connection otherwise
# (Django's error mail then fails silently, as with any relay down).
MAIL_RELAY_PORT = 2525
ACME_MANAGEMENT_PORT = 15000
ACME_MOUNT = "/etc/stacklab-acme"


def formula_defaults(repo: Path, formula: str) -> dict:
    """A formula's defaults.yaml (its one place for each parameter: paths,
    units, commands)."""
    return yaml.safe_load((repo / "formulas" / formula / "defaults.yaml").read_text())[formula]


def write_atomic(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def topology_copy(text: str, source: Path) -> str:
    """A layout file as the site's topology.sls: its text verbatim (plain
    YAML), after a line saying where it came from."""
    return f"# Copied by stacklab from {source}\n{text}"


def acme_server_files(acme_dir: Path, address: str) -> str:
    """pebble's config and the certificate of its HTTPS listener (for its
    address, from a CA of the lab's own), made once per address; returns
    that CA's PEM, which the lab's pillar asks load balancers to trust."""
    import datetime
    import ipaddress
    import json

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_file, stamp = acme_dir / "ca.pem", acme_dir / "address"
    if ca_file.is_file() and stamp.is_file() and stamp.read_text() == address:
        return ca_file.read_text()
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def cert(subject, public_key, issuer, is_ca, extensions=()):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stacklab ACME listener CA")])
    ca = cert(ca_name, ca_key.public_key(), ca_name, True)
    leaf = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]), key.public_key(), ca_name,
                False, [x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))])])
    pem = serialization.Encoding.PEM
    write_atomic(acme_dir / "cert.pem", leaf.public_bytes(pem).decode(), 0o644)
    # pebble runs as root in its container; the mount is read-only.
    write_atomic(acme_dir / "key.pem", key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()).decode(), 0o644)
    write_atomic(acme_dir / "pebble-config.json", json.dumps({"pebble": {
        "listenAddress": f"0.0.0.0:{ACME_PORT}",
        "managementListenAddress": f"0.0.0.0:{ACME_MANAGEMENT_PORT}",
        "certificate": f"{ACME_MOUNT}/cert.pem",
        "privateKey": f"{ACME_MOUNT}/key.pem",
        # HTTP-01 challenges go to the load balancers' port 80.
        "httpPort": 80,
        "tlsPort": 443,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }}, indent=2) + "\n", 0o644)
    write_atomic(ca_file, ca.public_bytes(pem).decode(), 0o644)
    write_atomic(stamp, address, 0o644)
    return ca_file.read_text()


def lab_apps(apps: dict, acme_address: str | None = None, acme_ca: str | None = None,
             mail_relay: str | None = None) -> dict:
    """The example's apps as the lab serves them: mail through the lab's
    relay address (MAIL_RELAY_PORT, no TLS, no login; the example's relay
    does not exist here), or none without one; and with the lab's ACME
    server, each over HTTPS with a certificate from it (the whole issuance
    path, offline)."""
    def mail(app):
        if not (mail_relay and app.get("mail")):
            return False
        sender = {k: v for k, v in app["mail"].items() if k in ("from", "admins")}
        return {"host": mail_relay, "port": MAIL_RELAY_PORT, "tls": "none", **sender}

    served = {name: {**app, "mail": mail(app)} for name, app in apps.items()}
    if acme_address:
        directory = f"https://{acme_address}:{ACME_PORT}/dir"
        for app in served.values():
            app["tls"] = {"source": "acme", "directory": directory, "email": "ops@example.com",
                          "ca_certificate": acme_ca}
    return {"apps": served}


def load_apps(repo: Path) -> dict:
    path = repo / "pillar" / "examples" / "apps.sls"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LabError(f"{path}: {exc}") from exc
    apps = data.get("apps")
    if not isinstance(apps, dict) or not apps:
        raise LabError(f"{path}: no apps")
    return apps


def _generated(shape, old):
    """Every leaf of the example's ``shape`` as a generated token, keeping
    the values ``old`` already has."""
    if isinstance(shape, dict):
        old = old if isinstance(old, dict) else {}
        return {**old, **{k: _generated(v, old.get(k)) for k, v in shape.items()}}
    return old if isinstance(old, str) and old else _secrets.token_urlsafe(50)


def _secrets_for(apps: dict, old: dict, example: dict) -> dict:
    """The example's secrets (pillar/examples/secrets.sls.example), with its
    per-app parts (django.<app>.secret_key, postgres.users.<db user>) made
    for the lab's apps instead; values already in ``old`` are kept."""
    shape = dict((example or {}).get("secrets") or {})
    shape["django"] = {name: {"secret_key": ""} for name in apps}
    users = {((app or {}).get("database") or {}).get("user") for app in apps.values()} - {None}
    shape["postgres"] = {**(shape.get("postgres") or {}), "users": {u: "" for u in sorted(users)}}
    return {"secrets": _generated(shape, (old or {}).get("secrets"))}


def overrides_for(apps: dict) -> dict:
    """Lab-only settings merged over the stack's pillar: each app's pip
    installs from the wheelhouse mounted on the lab hosts (no index), and
    PostgreSQL gets a lab-sized memory budget."""
    return {
        "django": {"apps": {name: {"pip": {"no_index": True, "find_links": WHEELHOUSE_MOUNT}}
                            for name in apps}},
        "postgres": {"memory_mb": 512},
    }


def write_site(site_dir: Path, repo: Path, topology_sls: str, acme_address: str | None = None,
               acme_ca: str | None = None, mail_relay: str | None = None) -> Path:
    """(Re)write the lab's site pillar root; secrets.sls is generated once
    and kept (new apps get their secrets added). With the lab's ACME server
    (its address and CA), every app gets its certificate from it; with a
    mail relay address, its error mail goes there."""
    site_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(site_dir / "topology.sls", topology_sls, 0o644)
    apps_src = repo / "pillar" / "examples" / "apps.sls"
    apps = load_apps(repo)
    site_apps = lab_apps(apps, acme_address, acme_ca, mail_relay)
    write_atomic(site_dir / "apps.sls", f"# {apps_src}, as the lab serves it (stacklab)\n"
                 + yaml.safe_dump(site_apps, default_flow_style=False, sort_keys=False), 0o644)
    sec = site_dir / "secrets.sls"
    old = {}
    if sec.is_file():
        try:
            old = yaml.safe_load(sec.read_text()) or {}
        except yaml.YAMLError:
            old = {}
    example = yaml.safe_load((repo / "pillar" / "examples" / "secrets.sls.example").read_text())
    new = _secrets_for(apps, old, example)
    if new != old or (sec.stat().st_mode & 0o777) != 0o600:
        write_atomic(sec, "# Generated by stacklab once for this lab; kept across ups.\n"
                     + yaml.safe_dump(new, default_flow_style=False, sort_keys=True), 0o600)
    write_atomic(site_dir / "overrides.sls",
                 "# Lab-only settings, merged over the stack's pillar (written by stacklab).\n"
                 + yaml.safe_dump(overrides_for(apps), default_flow_style=False, sort_keys=True), 0o644)
    return site_dir


def check_replacement(yaml_text: str, lab_hosts: list[str]) -> None:
    """What set_topology insists on: YAML, and only hosts the lab has. The
    schema is deliberately not checked here: a wrong topology is for the
    pillar and the ordered deploy to reject (tests rely on that)."""
    try:
        data = yaml.safe_load(yaml_text)
    except yaml.YAMLError as exc:
        raise LabError(f"set_topology: not valid YAML: {exc}") from exc
    hosts = ((data or {}).get("topology") or {}).get("hosts") if isinstance(data, dict) else None
    if isinstance(hosts, dict):
        extra = [str(h) for h in hosts if str(h) not in lab_hosts]
        if extra:
            raise LabError(f"set_topology: hosts not in this lab: {', '.join(sorted(extra))} "
                           f"(lab hosts: {', '.join(lab_hosts)})")


def minion_keys(pki: Path, minions: list[str]) -> dict[str, tuple[str, str]]:
    """Each minion's keypair (PEM private, PEM public), generated once per lab
    dir: the lab accepts its minions itself (pre-seeded, no auto_accept)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    keys = {}
    for minion in minions:
        pem, pub = pki / f"{minion}.pem", pki / f"{minion}.pub"
        if not (pem.is_file() and pub.is_file()):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            write_atomic(pem, key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption()).decode(), 0o600)
            write_atomic(pub, key.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo).decode(), 0o644)
        keys[minion] = (pem.read_text(), pub.read_text())
    return keys
