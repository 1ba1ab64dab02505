"""Uploads on the scaled layout's two media hosts: never overwritten, never
missing through the load balancers, whether a media host is down, comes
back, or joins a site that already has uploads."""
import json
import random
import re
import shlex
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

import stack_checks as checks

pytestmark = pytest.mark.layout("scaled")


@pytest.fixture(scope="module")
def topology():
    return checks.load_layout("scaled")


def lb(lab, topology):
    return lab.address(checks.hosts_with(topology, "loadbalancer")[0])


class Reader(checks.Background):
    """GETs of known uploads (/media/<name>) and, in turn, of ``static``
    paths through the load balancer, one every 0.05 s, until stopped or for
    10 minutes at most; counts what failed."""

    interval, limit = 0.05, 600

    def __init__(self, address, names, static=()):
        super().__init__()
        self.address, self.names, self.static = address, list(names), list(static)
        self.sent, self.failures = 0, []

    def step(self):
        paths = [f"/media/{random.choice(self.names)}"] + ([random.choice(self.static)] if self.static else [])
        name = paths[self.sent % len(paths)]
        self.sent += 1
        try:
            status = checks.request(self.address, name, timeout=10).status
        except OSError as exc:
            status = type(exc).__name__
        if status != 200:
            self.failures.append((self.elapsed(), name, status))


def upload_many(lab, topology, stem, count, workers=1):
    """``count`` uploads named ``stem``.txt with distinct contents: {content: status}."""
    uploader = checks.Uploader(lb(lab, topology))
    contents = [f"{stem} upload {i} {uuid.uuid4()}\n".encode() for i in range(count)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        statuses = list(pool.map(lambda c: uploader.upload(f"{stem}.txt", c).status, contents))
    return dict(zip(contents, statuses))


# Run on the app leader (python3, as root): a copy of the app's collected
# static tree at argv[2] whose manifest also names one file of its own,
# prune-drill/<argv[1]>.<hash>.txt, owned by the app's user. Prints that
# file's hashed name.
RELEASE_COPY = r"""
import hashlib, json, os, shutil, subprocess, sys, uuid
tag, tree = sys.argv[1:3]
shutil.rmtree(tree, ignore_errors=True)
shutil.copytree("/srv/apps/demo/static", tree)
body = f"release {tag} {uuid.uuid4()}\n".encode()
hashed = f"prune-drill/{tag}.{hashlib.md5(body).hexdigest()[:12]}.txt"
os.makedirs(os.path.join(tree, "prune-drill"))
with open(os.path.join(tree, hashed), "wb") as f:
    f.write(body)
with open(os.path.join(tree, "staticfiles.json")) as f:
    manifest = json.load(f)
manifest["paths"][f"prune-drill/{tag}.txt"] = hashed
with open(os.path.join(tree, "staticfiles.json"), "w") as f:
    json.dump(manifest, f)
subprocess.run(["chown", "-R", "demo:demo", tree], check=True)
print(hashed)
"""


class TestMedia:

    def test_concurrent_uploads_of_one_name_are_distinct_files_identical_on_every_media_host(
            self, lab, topology, say):
        stem = f"same-{uuid.uuid4().hex[:8]}"
        sent = upload_many(lab, topology, stem, 20, workers=20)
        names = checks.uploads_named(lab, topology, stem)
        media = checks.hosts_with(topology, "media")
        on_disk = {host: {name: checks.media_file(lab, host, name) for name in names} for host in media}
        distinct_contents = {on_disk[media[0]][name] for name in names}
        same_everywhere = all(on_disk[h] == on_disk[media[0]] for h in media)
        say(f"20 concurrent uploads of {stem}.txt: {sum(s == 302 for s in sent.values())} stored, "
            f"{len(set(names))} distinct names, {len(distinct_contents)} distinct contents, "
            f"identical on {media}: {same_everywhere}")
        assert set(sent.values()) == {302}
        assert len(set(names)) == 20 and distinct_contents == set(sent)
        assert same_everywhere

    def test_a_media_host_down_during_uploads_catches_up_before_it_serves_again(self, lab, topology, say):
        media = checks.hosts_with(topology, "media")
        down = media[-1]
        stem = f"down-{uuid.uuid4().hex[:8]}"
        before = upload_many(lab, topology, f"{stem}-before", 5)
        names = checks.uploads_named(lab, topology, f"{stem}-before")
        page = checks.request(lb(lab, topology), "/").text
        static = re.findall(r'(?:href|src)="(/static/[^"]+)"', page)
        assert static, page[:500]
        with Reader(lb(lab, topology), names, static) as reader:
            lab.kill(down)
            killed = time.monotonic()
            during = upload_many(lab, topology, f"{stem}-during", 15)
            upload_seconds = time.monotonic() - killed
            missed = checks.uploads_named(lab, topology, f"{stem}-during")
            reader.names += missed
            lab.start(down)
            # Within a minute of boot only the boot copy (before nginx) ran.
            on_return = {name: checks.media_file(lab, down, name) is not None for name in names + missed}
            order = lab.exec(down, "systemctl show -P ExecMainExitTimestampMonotonic media-sync.service; "
                                   "systemctl show -P ExecMainStartTimestampMonotonic nginx.service",
                             check=True).stdout.split()
            checks.wait_healthy(lab, topology)
            time.sleep(5)
        failed_uploads = [s for s in list(before.values()) + list(during.values()) if s != 302]
        say(f"{down} killed: 15 uploads while down took {upload_seconds:.1f} s, failed {len(failed_uploads)}; "
            f"back after boot holding {sum(on_return.values())} of {len(on_return)} uploads before nginx "
            f"started (copy ended at {order[0]} us, nginx started at {order[1]} us since boot); reads through "
            f"the load balancer: sent {reader.sent}, failed {len(reader.failures)}")
        assert not failed_uploads
        assert all(on_return.values()), [n for n, ok in on_return.items() if not ok]
        assert 0 < int(order[0]) <= int(order[1]), order
        assert not reader.failures, reader.failures[:10]

    def test_a_media_host_added_to_a_site_with_uploads_serves_them_all_before_traffic(
            self, lab, topology, lab_topology, say):
        media = checks.hosts_with(topology, "media")
        new = media[-1]
        without = yaml.safe_load(yaml.safe_dump(topology, sort_keys=False))
        without["hosts"][new]["roles"] = []
        lab_topology(yaml.safe_dump({"topology": without}, sort_keys=False))
        lab.run_orchestrate()
        # As a fresh host: no uploads, never copied any.
        lab.exec(new, f"rm -rf {checks.MEDIA_ROOT}/demo/media /var/lib/media-sync", check=True)
        stem = f"old-{uuid.uuid4().hex[:8]}"
        upload_many(lab, topology, stem, 10)
        old = checks.uploads_named(lab, topology, stem)
        all_old = [line for line in checks.sql(lab, topology, "SELECT file FROM visits_upload").split()]
        with Reader(lb(lab, topology), old) as reader:
            lab_topology(yaml.safe_dump({"topology": topology}, sort_keys=False))
            lab.run_orchestrate()
            direct = {name: checks.request_from(lab, checks.hosts_with(topology, "loadbalancer")[0],
                                                lab.address(new), f"/media/{name}", checks.MEDIA_PORT).status
                      for name in all_old}
            time.sleep(3)
        say(f"{new} added back with no uploads: serves {sum(s == 200 for s in direct.values())} of "
            f"{len(direct)} existing uploads directly after the deploy; reads through the load balancer "
            f"during and after: sent {reader.sent}, failed {len(reader.failures)}")
        assert set(direct.values()) == {200}, {n: s for n, s in direct.items() if s != 200}
        assert reader.sent > 0 and not reader.failures, reader.failures[:10]
        assert lab.highstate() == {host: 0 for host in lab.hosts}

    def test_publishing_more_releases_than_kept_prunes_only_what_no_kept_release_names(self, lab, topology, say):
        """The leader's own publish, to the real media hosts: releases beyond
        the kept number, each naming one file of its own, then the app's
        real tree again. Files of the releases that fell out are gone from
        every media host; those of kept releases and every file the site's
        pages name still answer through the load balancer."""
        kept = checks.formula_defaults("django")["app_defaults"]["static_releases_kept"]
        leader = next(h for h in checks.hosts_with(topology, "app")
                      if lab.pillar(h)["django"]["apps"]["demo"].get("leader"))
        urls = lab.pillar(leader)["django"]["apps"]["demo"]["static_publish_urls"]
        assert len(urls) == len(checks.hosts_with(topology, "media")) == 2, urls

        def publish(tree, *options):
            return lab.exec(leader, "runuser -u demo -- env DJANGO_ENV_FILE=/etc/django-apps/demo.env "
                                    "/srv/apps/demo/venv/bin/python -m djangostack.publish "
                                    + shlex.join([*options, tree, *urls]))

        tags = [f"r{i}-{uuid.uuid4().hex[:6]}" for i in range(kept + 1)]
        own = {}
        for tag in tags:
            tree = f"/tmp/prune-drill-{tag}"
            own[tag] = lab.exec(leader, ["python3", "-c", RELEASE_COPY, tag, tree], check=True).stdout.strip()
            assert publish(tree, "--keep", str(kept)).returncode == 0
        real = publish("/srv/apps/demo/static", "--keep", str(kept))
        assert real.returncode == 0, real.stderr
        lab.exec(leader, "rm -rf /tmp/prune-drill-*", check=True)

        # The last kept-1 drill releases and the real tree are the kept ones.
        gone, still = tags[:len(tags) - (kept - 1)], tags[len(tags) - (kept - 1):]
        on_disk = {(media, tag): lab.exec(media, ["test", "-e", f"{checks.MEDIA_ROOT}/demo/static/{own[tag]}"])
                   .returncode == 0 for media in checks.hosts_with(topology, "media") for tag in tags}
        served = {tag: checks.request(lb(lab, topology), f"/static/{own[tag]}").status for tag in tags}
        index = json.loads(checks.request(lb(lab, topology), "/static/staticfiles-releases/index.json").body)
        page = checks.request(lb(lab, topology), "/").text
        static = {path: checks.request(lb(lab, topology), path).status
                  for path in re.findall(r'(?:href|src)="(/static/[^"]+)"', page)}
        say(f"{len(tags)} drill releases then the real tree published with --keep {kept}: on "
            f"{len(urls)} media hosts, files of dropped releases left {sum(on_disk[m, t] for m, t in on_disk if t in gone)}"
            f", of kept ones present {sum(on_disk[m, t] for m, t in on_disk if t in still)} of {2 * len(still)}; "
            f"through the load balancer {served}; the page's static files {static}; {real.stdout.strip()}")
        assert not any(on_disk[m, t] for m, t in on_disk if t in gone)
        assert all(on_disk[m, t] for m, t in on_disk if t in still)
        assert {t: served[t] for t in gone} == {t: 404 for t in gone}
        assert {t: served[t] for t in still} == {t: 200 for t in still}
        assert len(index) == kept
        assert static and set(static.values()) == {200}, static
        # The real tree is what every media host has: a re-apply publishes nothing.
        assert publish("/srv/apps/demo/static", "--check").returncode == 0
