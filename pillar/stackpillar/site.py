"""Site data: topology.sls, apps.sls and secrets.sls from the site's pillar
root (listed before the repo's), the check of the apps, and the one place
a secret is read and refused when missing, a placeholder or weak."""
import functools
import ipaddress
import os
import re

import yaml

from .errors import TopologyError
from .timeouts import check_request_timeout

SITE_FILES = ("topology.sls", "apps.sls", "secrets.sls")
# The example a site copies its secrets.sls from: any of its values (e.g.
# CHANGE-ME), compared case-insensitively, is a placeholder, never deployed.
SECRETS_EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               "examples", "secrets.sls.example")
MAKE_A_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
# Django's own deploy check for SECRET_KEY (security.W009): at least 50
# characters, at least 5 different ones, not the prefix startproject gives
# a development key.
DJANGO_SECRET_KEY = re.compile(r"^django:[^:]+:secret_key$")
DJANGO_SECRET_KEY_MIN_LENGTH = 50
DJANGO_SECRET_KEY_INSECURE_PREFIX = "django-insecure-"
# Every other secret (database and Patroni passwords, pgBackRest's TLS
# seed): 16 random characters (token_urlsafe's 6 bits each) hold 96 bits,
# beyond guessing even offline against a stolen SCRAM verifier or
# certificate; shorter ones are the kind people type.
SECRET_MIN_LENGTH = 16
# As Django's rule: a value of a few repeated characters is no secret.
SECRET_MIN_DISTINCT_CHARACTERS = 5
APP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
APP_REQUIRED = ("source", "settings_module", "wsgi_module", "server_names", "database", "port")
APP_KEYS = APP_REQUIRED + ("requirements", "mail", "request_timeout", "tls", "environment")
# apps:<app>:mail: the SMTP relay error mail (and the app's own) goes
# through; the password, when `user` logs in, is secrets:mail:<app>. Each
# TLS mode with its usual port: STARTTLS on submission, implicit TLS, or
# plain SMTP (a relay on the private network only).
MAIL_KEYS = ("host", "port", "tls", "user", "from", "admins")
MAIL_TLS_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
MAIL_CHOICE = ("an SMTP relay {host, port, tls: starttls|ssl|none, user, from, admins} "
               "(the password in secrets:mail:<app>), or false for no mail at all")
# apps:<app>:tls: where the load balancers' certificate comes from.
TLS_SOURCES = ("acme", "pillar", "self_signed")
TLS_KEYS = ("source", "directory", "email", "ca_certificate", "hsts_seconds")
# HSTS for a year (Django's deploy check asks for one at least), on every
# subdomain of the site's names.
HSTS_SECONDS = 31536000


def load_site(roots, files=SITE_FILES):
    """{'topology': ..., 'apps': ..., 'secrets': ...} (or the ``files``
    given) from the first of ``roots`` (pillar roots, in order) holding each
    file. The files are plain YAML: they are data, read here and never sent
    to a minion whole."""
    site = {}
    for name in files:
        path = next((os.path.join(r, name) for r in roots if os.path.isfile(os.path.join(r, name))), None)
        if path is None:
            raise TopologyError(name[:-4], f"no {name} in the pillar roots ({', '.join(roots)}); "
                                "a site keeps topology.sls, apps.sls and secrets.sls in a pillar root "
                                "of its own, listed before the repo's (see README.md)")
        with open(path, encoding="utf-8") as fh:
            try:
                data = yaml.safe_load(fh) or {}
            except yaml.YAMLError as exc:
                raise TopologyError(name[:-4], f"{path} is not valid YAML: {exc}") from None
        site[name[:-4]] = data
    return site


def check_apps(data):
    """The apps mapping, checked: every error names apps:<app>:<key>."""
    apps = (data or {}).get("apps") if isinstance(data, dict) else None
    if not isinstance(apps, dict) or not apps:
        raise TopologyError("apps", "must define at least one Django app (see pillar/examples/apps.sls)")
    ports = {}
    for name, app in apps.items():
        key = f"apps:{name}"
        if not isinstance(name, str) or not APP_NAME.match(name):
            raise TopologyError(key, "an app name is lowercase letters, digits and _ (it names a "
                                "system user and a database default)")
        if not isinstance(app, dict):
            raise TopologyError(key, "must be a mapping")
        for field in APP_REQUIRED:
            if field not in app:
                raise TopologyError(f"{key}:{field}", "is missing")
        for field in app:
            if field == "admins":
                raise TopologyError(f"{key}:admins", "moved to apps:<app>:mail:admins, beside the relay "
                                    "that delivers to them (see pillar/examples/apps.sls)")
            if field not in APP_KEYS:
                raise TopologyError(f"{key}:{field}", f"unknown key (known: {', '.join(APP_KEYS)})")
        source = app["source"]
        if not isinstance(source, dict) or not (source.get("salt") or source.get("git")):
            raise TopologyError(f"{key}:source", "needs salt: salt://... or git: URL (and rev)")
        names = app["server_names"]
        if isinstance(names, str) or not isinstance(names, list) or not names:
            raise TopologyError(f"{key}:server_names", "must be a non-empty list of host names")
        database = app["database"]
        if not isinstance(database, dict) or not database.get("name") or not database.get("user"):
            raise TopologyError(f"{key}:database", "needs name and user")
        port = app["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535:
            raise TopologyError(f"{key}:port", f"must be a port between 1024 and 65535 (got {port!r})")
        if port in ports:
            raise TopologyError(f"{key}:port", f"{port} is already the port of app {ports[port]}")
        ports[port] = name
        if "tls" in app:
            app["tls"] = _tls(key, app["tls"], names)
        app["mail"] = _mail(f"{key}:mail", app.get("mail"), "mail" in app)
        if "request_timeout" in app:
            check_request_timeout(f"{key}:request_timeout", app["request_timeout"])
    return apps


def _mail(key, mail, given):
    """apps:<app>:mail checked, with its defaults: False (no mail) or the
    relay. Unset is refused: Django's default, localhost:25, has no server
    on these hosts, so every error mail would be dropped without a word."""
    if not given:
        raise TopologyError(key, f"missing: give {MAIL_CHOICE}; unset, Django would hand error mails to "
                            "localhost:25, where nothing listens, and they would be lost")
    if mail is False:
        return False
    if not isinstance(mail, dict):
        raise TopologyError(key, f"must be {MAIL_CHOICE} (got {mail!r})")
    for field in mail:
        if field not in MAIL_KEYS:
            raise TopologyError(f"{key}:{field}", f"unknown key (known: {', '.join(MAIL_KEYS)})")
    host = mail.get("host")
    if not isinstance(host, str) or not host or any(c.isspace() for c in host):
        raise TopologyError(f"{key}:host", f"the relay's host name or address (got {host!r})")
    tls = mail.get("tls", "starttls")
    if tls not in MAIL_TLS_PORTS:
        raise TopologyError(f"{key}:tls", f"must be one of {', '.join(MAIL_TLS_PORTS)} (got {tls!r})")
    port = mail.get("port", MAIL_TLS_PORTS[tls])
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise TopologyError(f"{key}:port", f"must be a port between 1 and 65535 (got {port!r})")
    user = mail.get("user")
    if user is not None and (not isinstance(user, str) or not user):
        raise TopologyError(f"{key}:user", f"the relay's login, or leave it out (got {user!r})")
    if user and tls == "none":
        raise TopologyError(f"{key}:tls", f"none would send {key}:user's password in clear: use starttls or ssl")
    sender = mail.get("from")
    if not _address(sender):
        raise TopologyError(f"{key}:from", f"the sender's address, e.g. django@example.com (got {sender!r})")
    admins = mail.get("admins")
    if isinstance(admins, str) or not isinstance(admins, list) or not admins or not all(
            isinstance(a, list) and len(a) == 2 and isinstance(a[0], str) and _address(a[1]) for a in admins):
        raise TopologyError(f"{key}:admins", f"who gets error mail, a non-empty list of [name, address] "
                            f"(got {admins!r}); no one: mail: false")
    return {"host": host, "port": port, "tls": tls, "user": user, "from": sender, "admins": admins}


def _address(value):
    return isinstance(value, str) and "@" in value.strip("@") and not any(c.isspace() for c in value)


def certificate_names(server_names):
    """The server names an ACME certificate can cover: DNS names with a
    dot (not IP addresses, not localhost, not wildcards: HTTP-01)."""
    return [n for n in server_names if "." in n and "*" not in n and not _is_ip(n)]


def _is_ip(name):
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def _tls(key, tls, server_names):
    """apps:<app>:tls checked, with its defaults."""
    key = f"{key}:tls"
    if not isinstance(tls, dict):
        raise TopologyError(key, f"must be a mapping with source: {' | '.join(TLS_SOURCES)}")
    for field in tls:
        if field not in TLS_KEYS:
            raise TopologyError(f"{key}:{field}", f"unknown key (known: {', '.join(TLS_KEYS)})")
    if tls.get("source") not in TLS_SOURCES:
        raise TopologyError(f"{key}:source", f"must be one of {', '.join(TLS_SOURCES)} (got {tls.get('source')!r})")
    hsts = tls.get("hsts_seconds", HSTS_SECONDS)
    if isinstance(hsts, bool) or not isinstance(hsts, int) or hsts < 0:
        raise TopologyError(f"{key}:hsts_seconds", f"must be a whole number of seconds (got {hsts!r})")
    if tls["source"] == "acme":
        directory = tls.get("directory")
        if not isinstance(directory, str) or not directory.startswith("https://"):
            raise TopologyError(f"{key}:directory", "an ACME server's directory URL (https://...), e.g. "
                                "https://acme-v02.api.letsencrypt.org/directory")
        if not certificate_names(server_names):
            raise TopologyError(key.rsplit(":", 1)[0] + ":server_names",
                                "ACME certifies DNS names only: list the site's name (e.g. www.example.com)")
    elif set(tls) & {"directory", "email", "ca_certificate"}:
        raise TopologyError(key, f"directory, email and ca_certificate are for source acme, not {tls['source']}")
    return {**tls, "hsts_seconds": hsts}


def secret(secrets, path, needed_on):
    """secrets:<path>, or an error naming the key and the host that needs it:
    missing, a placeholder of the example, or weak. Every secret the stack
    deploys is read here (adapters.Context.secret), so none escapes the check."""
    value = (secrets or {}).get("secrets")
    for part in path.split(":"):
        value = value.get(part) if isinstance(value, dict) else None
    if not value or not isinstance(value, str):
        raise TopologyError(f"secrets:{path}", f"missing (needed on {needed_on}; "
                            "see pillar/examples/secrets.sls.example)")
    problem = secret_problem(path, value)
    if problem:
        raise TopologyError(f"secrets:{path}", f"{problem} (needed on {needed_on}); "
                            f"make a real one with {MAKE_A_SECRET}")
    return value


def secret_problem(path, value):
    """Why the value of secrets:<path> must not be deployed, or None. Never
    quotes the value unless it is the example's own placeholder."""
    if value.strip().lower() in _placeholders():
        return f"is the placeholder {value.strip()} of pillar/examples/secrets.sls.example"
    django_key = bool(DJANGO_SECRET_KEY.match(path))
    minimum = DJANGO_SECRET_KEY_MIN_LENGTH if django_key else SECRET_MIN_LENGTH
    weak = []
    if len(value) < minimum:
        weak.append(f"{len(value)} characters (at least {minimum})")
    if len(set(value)) < SECRET_MIN_DISTINCT_CHARACTERS:
        weak.append(f"{len(set(value))} different characters (at least {SECRET_MIN_DISTINCT_CHARACTERS})")
    if django_key and value.startswith(DJANGO_SECRET_KEY_INSECURE_PREFIX):
        weak.append(f"the prefix {DJANGO_SECRET_KEY_INSECURE_PREFIX} of a development key")
    if not weak:
        return None
    return "is weak: " + ", ".join(weak) + (" (Django's deploy check, security.W009)" if django_key else "")


@functools.lru_cache(maxsize=None)
def _placeholders():
    """The example's values, stripped and lowercased (read once per load)."""
    try:
        with open(SECRETS_EXAMPLE, encoding="utf-8") as fh:
            example = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise TopologyError("secrets", f"cannot read {SECRETS_EXAMPLE}, whose values are the "
                            f"placeholders refused: {exc}") from None
    return frozenset(_leaves(example))


def _leaves(value):
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    return [value.strip().lower()] if isinstance(value, str) else []
