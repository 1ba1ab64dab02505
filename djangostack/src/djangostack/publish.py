"""Publish a collected static tree to every media host over HTTP PUT.

    python -m djangostack.publish SRC_DIR URL [URL...]
    python -m djangostack.publish --check SRC_DIR URL [URL...]

Every file under SRC_DIR (dotfiles excepted, as collectstatic ignores them)
is PUT to every URL; staticfiles.json goes LAST, so a host whose manifest is
current holds every file it names. Old hashed files stay on the hosts: pages
rendered by app hosts not yet reloaded keep working.

--check exits 0 when every URL's staticfiles.json equals the local one
(compared as JSON), 1 when one differs or cannot be read: a publish is due.

Every request carries the app's media write credential ("app:token", HTTP
Basic), which the media hosts require: DJANGO_MEDIA_WRITE_CREDENTIAL from the
process environment, else from the env file DJANGO_ENV_FILE names (the
formula sets it; a secret never goes on a command line). Neither: no
credential is sent.
Stdlib only (runs before the app's requirements matter).
"""

import argparse
import http.client
import json
import os
import sys
import urllib.parse

from djangostack.env import read_env_file
from djangostack.http import Client

MANIFEST = "staticfiles.json"
CREDENTIAL = "DJANGO_MEDIA_WRITE_CREDENTIAL"


def credential(environ=os.environ):
    """The media write credential (user:password), or None."""
    if environ.get(CREDENTIAL):
        return environ[CREDENTIAL]
    path = environ.get("DJANGO_ENV_FILE")
    return (read_env_file(path).get(CREDENTIAL) or None) if path else None


def files_to_publish(src):
    """Relative paths, manifest last."""
    found = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if filename.startswith("."):
                continue
            rel = os.path.relpath(os.path.join(dirpath, filename), src).replace(os.sep, "/")
            if rel != MANIFEST:
                found.append(rel)
    if os.path.isfile(os.path.join(src, MANIFEST)):
        found.append(MANIFEST)
    return found


def _url(base, rel):
    return (base if base.endswith("/") else base + "/") + urllib.parse.quote(rel)


def publish(src, urls, client):
    """PUT the tree to every URL; returns the URLs that failed."""
    files = files_to_publish(src)
    failed = []
    for base in urls:
        try:
            for rel in files:
                with open(os.path.join(src, rel), "rb") as body:
                    size = os.fstat(body.fileno()).st_size
                    response = client.request(
                        "PUT", _url(base, rel), body=body, headers={"Content-Length": str(size)}
                    )
                if response.status not in (200, 201, 204):
                    raise RuntimeError(f"PUT {_url(base, rel)}: HTTP {response.status}")
        except (OSError, RuntimeError, http.client.HTTPException) as exc:
            # The manifest was not sent: --check keeps reporting this host.
            print(f"publish to {base} failed: {exc!r}", file=sys.stderr)
            failed.append(base)
        else:
            print(f"published {len(files)} files to {base}")
    return failed


def in_sync(src, urls, client):
    with open(os.path.join(src, MANIFEST), "rb") as f:
        local = json.load(f)
    ok = True
    for base in urls:
        try:
            response = client.request("GET", _url(base, MANIFEST))
            remote = json.loads(response.body) if response.status == 200 else None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            print(f"{base}: {exc!r}", file=sys.stderr)
            remote = None
        if remote != local:
            print(f"{base}{MANIFEST} differs from the local one")
            ok = False
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m djangostack.publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare staticfiles.json; exit 1 if a publish is due")
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("src", help="STATIC_ROOT after collectstatic")
    parser.add_argument("urls", nargs="+", help="media hosts' WebDAV base URLs for static files")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.src, MANIFEST)):
        parser.error(f"{args.src}/{MANIFEST} is missing: run collectstatic first")
    try:
        client = Client(timeout=args.timeout, credential=credential())
    except ValueError as exc:
        parser.error(f"{CREDENTIAL}: {exc}")
    if args.check:
        return 0 if in_sync(args.src, args.urls, client) else 1
    return 1 if publish(args.src, args.urls, client) else 0


if __name__ == "__main__":
    sys.exit(main())
