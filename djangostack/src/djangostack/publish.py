"""Publish a collected static tree to every media host over HTTP PUT.

    python -m djangostack.publish [--keep N] SRC_DIR URL [URL...]
    python -m djangostack.publish --check SRC_DIR URL [URL...]

Each URL gets what its staticfiles.json lacks: a hashed file whose name the
host's manifest already lists has the same content there (the name is its
hash), and an original name whose hashed twin is unchanged is the same file
too; files no manifest names are always sent. staticfiles.json goes LAST, so
a host whose manifest is current holds every file it names.

Releases: each published manifest is also kept on the host as
staticfiles-releases/<id>.json, listed oldest first in
staticfiles-releases/index.json. Once more than --keep (default 3) are
listed, the oldest go, and with them every hashed file that no kept release
names: pages rendered by app hosts still on a recent release keep working,
and the tree no longer grows with every deploy. A host's manifest from before
this history counts as its first release.

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
import hashlib
import http.client
import json
import os
import sys
import urllib.parse

from djangostack.env import read_env_file
from djangostack.http import Client

MANIFEST = "staticfiles.json"
RELEASES = "staticfiles-releases"
INDEX = f"{RELEASES}/index.json"
KEEP = 3
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


def _ok(response, what):
    if response.status not in (200, 201, 204):
        raise RuntimeError(f"{what}: HTTP {response.status}")


def _get_json(client, url):
    """The JSON at ``url``, or None when the host has none (404)."""
    response = client.request("GET", url)
    if response.status == 404:
        return None
    _ok(response, f"GET {url}")
    return json.loads(response.body)


def _put(client, url, body):
    _ok(client.request("PUT", url, body=body, headers={"Content-Length": str(len(body))}), f"PUT {url}")


def release_id(manifest_bytes):
    return hashlib.sha256(manifest_bytes).hexdigest()[:16]


def to_send(files, local, remote):
    """Of ``files`` (relative paths, manifest last), those a host whose
    manifest is ``remote`` (None: none) lacks."""
    new = local.get("paths", {})
    old = (remote or {}).get("paths", {})
    there = set(old.values())
    unchanged = {name for name, hashed in new.items() if old.get(name) == hashed}
    return [rel for rel in files
            if not (rel in there and rel in new.values()) and rel not in unchanged]


def publish_one(src, base, client, files, keep):
    """Publish to one host; returns (files sent, files pruned). Order: the
    files the host lacks, this release in the history, the manifest, then
    the releases beyond ``keep`` and the files only they named."""
    with open(os.path.join(src, MANIFEST), "rb") as f:
        manifest_bytes = f.read()
    local = json.loads(manifest_bytes)
    remote = _get_json(client, _url(base, MANIFEST))
    sent = to_send([rel for rel in files if rel != MANIFEST], local, remote)
    for rel in sent:
        with open(os.path.join(src, rel), "rb") as body:
            size = os.fstat(body.fileno()).st_size
            response = client.request("PUT", _url(base, rel), body=body, headers={"Content-Length": str(size)})
        _ok(response, f"PUT {_url(base, rel)}")
    index = _get_json(client, _url(base, INDEX)) or []
    this = release_id(manifest_bytes)
    releases = [(release_id(json.dumps(remote, sort_keys=True).encode()), remote)] if remote and not index else []
    for rid, manifest in releases + [(this, local)]:
        if rid not in index:
            _put(client, _url(base, f"{RELEASES}/{rid}.json"), json.dumps(manifest).encode())
            index.append(rid)
    _put(client, _url(base, INDEX), json.dumps(index).encode())
    _put(client, _url(base, MANIFEST), manifest_bytes)
    dropped, kept = index[:-keep], index[-keep:]
    if not dropped:
        return sent + [MANIFEST], 0
    named = set()
    for rid in kept:
        manifest = local if rid == this else _get_json(client, _url(base, f"{RELEASES}/{rid}.json")) or {}
        named |= set(manifest.get("paths", {}).values())
    pruned = 0
    for rid in dropped:
        old = _get_json(client, _url(base, f"{RELEASES}/{rid}.json")) or {}
        for hashed in sorted(set(old.get("paths", {}).values()) - named):
            response = client.request("DELETE", _url(base, hashed))
            if response.status not in (200, 204, 404):
                raise RuntimeError(f"DELETE {_url(base, hashed)}: HTTP {response.status}")
            pruned += response.status != 404
            named.add(hashed)   # once per name, whichever old release lists it
    _put(client, _url(base, INDEX), json.dumps(kept).encode())
    for rid in dropped:
        client.request("DELETE", _url(base, f"{RELEASES}/{rid}.json"))
    return sent + [MANIFEST], pruned


def publish(src, urls, client, keep=KEEP):
    """Publish to every URL; returns the URLs that failed."""
    files = files_to_publish(src)
    failed = []
    for base in urls:
        try:
            sent, pruned = publish_one(src, base, client, files, keep)
        except (OSError, ValueError, RuntimeError, http.client.HTTPException) as exc:
            # The manifest was not sent: --check keeps reporting this host.
            print(f"publish to {base} failed: {exc!r}", file=sys.stderr)
            failed.append(base)
        else:
            print(f"published {len(sent)} of {len(files)} files to {base}; pruned {pruned} "
                  f"no release of the last {keep} names")
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
    parser.add_argument("--keep", type=int, default=KEEP, help="releases kept on each host (default 3)")
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
    if args.keep < 1:
        parser.error("--keep: 1 or more")
    return 1 if publish(args.src, args.urls, client, args.keep) else 0


if __name__ == "__main__":
    sys.exit(main())
