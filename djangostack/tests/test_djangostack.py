"""Unit tests for the installed djangostack package (pip install -e
'djangostack[test]'): a stdlib WebDAV-ish stub server stands in for the media
hosts; no containers."""

import base64
import http.server
import json
import os
import threading

import pytest

from djangostack import publish
from djangostack.http import Client


CREDENTIAL = "demo:tok3n-Of-demo"


class DavStub:
    """Keep-alive HTTP/1.1 server storing PUT bodies; records the PUT order.
    With a credential ("user:password"), as the media hosts' nginx: any
    request without exactly that HTTP Basic credential gets 401 and changes
    nothing (``refused`` counts them)."""

    def __init__(self, fail_puts=False, credential=None):
        self.files, self.puts, self.fail_puts = {}, [], fail_puts
        self.put_attempts = 0
        self.refused = []
        self.authorization = "Basic " + base64.b64encode(credential.encode()).decode() if credential else None
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status, body=b""):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Last-Modified", "Sat, 21 Nov 2026 10:00:00 GMT")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _refused(self):
                if stub.authorization is None or self.headers.get("Authorization") == stub.authorization:
                    return False
                stub.refused.append((self.command, self.path))
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="media writes"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return True

            def do_PUT(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self._refused():
                    return
                stub.put_attempts += 1
                if stub.fail_puts:
                    return self._reply(500)
                stub.files[self.path] = body
                stub.puts.append(self.path)
                self._reply(201)

            def do_GET(self):
                if self._refused():
                    return
                if self.path in stub.files:
                    return self._reply(200, stub.files[self.path])
                self._reply(404)

            def do_HEAD(self):
                if self._refused():
                    return
                self.send_response(200 if self.path in stub.files else 404)
                self.send_header("Content-Length", str(len(stub.files.get(self.path, b""))))
                self.send_header("Last-Modified", "Sat, 21 Nov 2026 10:00:00 GMT")
                self.end_headers()

            def do_DELETE(self):
                if self._refused():
                    return
                self._reply(204 if stub.files.pop(self.path, None) is not None else 404)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stubs():
    made = []

    def make(**kwargs):
        made.append(DavStub(**kwargs))
        return made[-1]

    yield make
    for stub in made:
        stub.close()


def _tree(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "a.1234.css").write_text("a{}")
    (tmp_path / "z.txt").write_text("z")
    (tmp_path / ".salt-collected").write_text("")
    (tmp_path / "staticfiles.json").write_text(json.dumps({"paths": {"app/a.css": "app/a.1234.css"}}))
    return tmp_path


def test_publish_sends_manifest_last_skips_dotfiles_and_check_follows(tmp_path, stubs):
    src = _tree(tmp_path)
    one, two = stubs(), stubs()
    urls = [one.url + "/demo/static/", two.url + "/demo/static/"]
    assert publish.main(["--check", str(src), *urls]) == 1
    assert publish.main([str(src), *urls]) == 0
    for stub in (one, two):
        assert stub.puts[-1] == "/demo/static/staticfiles.json"
        assert sorted(p for p in stub.puts if "/staticfiles-releases/" not in p) == sorted(
            ["/demo/static/app/a.1234.css", "/demo/static/z.txt", "/demo/static/staticfiles.json"]
        )
    assert publish.main(["--check", str(src), *urls]) == 0
    # Same manifest with keys in another order is still in sync.
    two.files["/demo/static/staticfiles.json"] = b'{"paths": {"app/a.css": "app/a.1234.css"}}'
    assert publish.main(["--check", str(src), *urls]) == 0
    del two.files["/demo/static/staticfiles.json"]
    assert publish.main(["--check", str(src), *urls]) == 1


def _release(src, version, shared="a{}"):
    """A collected tree: app/a.css unchanged across releases (``shared``),
    app/b.css new in each; the manifest names both."""
    (src / "app").mkdir(parents=True, exist_ok=True)
    for old in (src / "app").glob("b.*.css"):
        old.unlink()
    (src / "app" / "a.css").write_text(shared)
    (src / "app" / "a.1111.css").write_text(shared)
    (src / "app" / "b.css").write_text(f"b{version}")
    (src / "app" / f"b.{version:04d}.css").write_text(f"b{version}")
    (src / "staticfiles.json").write_text(json.dumps(
        {"paths": {"app/a.css": "app/a.1111.css", "app/b.css": f"app/b.{version:04d}.css"}, "version": "1.1"}))
    return src


def test_publish_sends_only_what_the_host_lacks_and_prunes_old_releases(tmp_path, stubs):
    src, stub = tmp_path / "static", stubs()
    base = stub.url + "/demo/static/"
    assert publish.main(["--keep", "2", str(_release(src, 1)), base]) == 0
    first = set(stub.puts)
    assert {"/demo/static/app/a.1111.css", "/demo/static/app/b.0001.css"} <= first
    # Release 2: only b (its hashed and original names), the history and
    # the manifest go; a.1111.css is there already, and a.css is unchanged.
    stub.puts.clear()
    assert publish.main(["--keep", "2", str(_release(src, 2)), base]) == 0
    static = [p for p in stub.puts if "/staticfiles-releases/" not in p]
    assert static == ["/demo/static/app/b.0002.css", "/demo/static/app/b.css", "/demo/static/staticfiles.json"]
    assert "/demo/static/app/b.0001.css" in stub.files      # release 1 is still kept
    # Release 3 with --keep 2: release 1 goes, and the file only it named.
    assert publish.main(["--keep", "2", str(_release(src, 3)), base]) == 0
    assert "/demo/static/app/b.0001.css" not in stub.files
    assert {"/demo/static/app/a.1111.css", "/demo/static/app/b.0002.css", "/demo/static/app/b.0003.css"} <= set(stub.files)
    index = json.loads(stub.files["/demo/static/staticfiles-releases/index.json"])
    assert len(index) == 2 and all(f"/demo/static/staticfiles-releases/{r}.json" in stub.files for r in index)
    assert len([p for p in stub.files if "/staticfiles-releases/" in p]) == 3   # two releases + the index
    assert publish.main(["--check", str(src), base]) == 0


def test_a_host_published_before_the_history_keeps_its_release(tmp_path, stubs):
    """Its manifest counts as the first release: its files stay until
    --keep newer ones exist."""
    src, stub = tmp_path / "static", stubs()
    base = stub.url + "/demo/static/"
    _release(src, 1)
    for rel in ("app/a.1111.css", "app/b.0001.css", "staticfiles.json"):
        stub.files["/demo/static/" + rel] = (src / rel).read_bytes()
    assert publish.main(["--keep", "1", str(_release(src, 2)), base]) == 0
    assert "/demo/static/app/b.0001.css" not in stub.files and "/demo/static/app/b.0002.css" in stub.files
    assert "/demo/static/app/a.1111.css" in stub.files


def test_publish_failing_host_gets_no_manifest_and_fails(tmp_path, stubs):
    src = _tree(tmp_path)
    good, bad = stubs(), stubs(fail_puts=True)
    assert publish.main([str(src), good.url + "/s/", bad.url + "/s/"]) == 1
    assert "/s/staticfiles.json" in good.files
    assert bad.files == {}


def test_publish_sends_the_credential_the_media_hosts_require(tmp_path, stubs, monkeypatch):
    (tmp_path / "static").mkdir()
    src = _tree(tmp_path / "static")
    stub = stubs(credential=CREDENTIAL)
    urls = [stub.url + "/demo/static/"]
    monkeypatch.delenv("DJANGO_MEDIA_WRITE_CREDENTIAL", raising=False)
    monkeypatch.delenv("DJANGO_ENV_FILE", raising=False)
    # None: refused (401), nothing stored, a publish stays due.
    assert publish.main([str(src), *urls]) == 1
    assert stub.files == {} and stub.refused
    # Another app's (or a wrong) credential: refused alike.
    monkeypatch.setenv("DJANGO_MEDIA_WRITE_CREDENTIAL", "other:tok3n-Of-demo")
    assert publish.main([str(src), *urls]) == 1 and stub.files == {}
    # From the env file the formula writes (DJANGO_ENV_FILE, as Salt runs it).
    monkeypatch.delenv("DJANGO_MEDIA_WRITE_CREDENTIAL")
    env_file = tmp_path / "demo.env"
    env_file.write_text(f"DJANGO_SECRET_KEY=x\nDJANGO_MEDIA_WRITE_CREDENTIAL={CREDENTIAL}\n")
    monkeypatch.setenv("DJANGO_ENV_FILE", str(env_file))
    refused = len(stub.refused)
    assert publish.main([str(src), *urls]) == 0
    assert stub.puts[-1] == "/demo/static/staticfiles.json" and len(stub.refused) == refused
    assert publish.main(["--check", str(src), *urls]) == 0
    # The process environment wins over the file.
    monkeypatch.setenv("DJANGO_MEDIA_WRITE_CREDENTIAL", "demo:wrong")
    assert publish.main(["--check", str(src), *urls]) == 1


def test_client_reuses_one_connection(stubs):
    stub = stubs()
    client = Client(timeout=5)
    for i in range(3):
        assert client.request("PUT", f"{stub.url}/f{i}", body=b"x", headers={"Content-Length": "1"}).status == 201
    assert len(client._connections()) == 1
    assert client.request("GET", f"{stub.url}/f1").body == b"x"


@pytest.fixture(scope="module")
def django_settings():
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(MEDIA_URL="/media/", USE_TZ=True)
        django.setup()
    return settings


def test_env_file(tmp_path, monkeypatch):
    from djangostack import env

    path = tmp_path / "app.env"
    path.write_text("# comment\n\nDJANGO_SECRET_KEY=a=b#c 'd'\nDJANGO_X= spaced \n")
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    monkeypatch.setenv("DJANGO_X", "from process")
    env.load_env_file(str(path))
    assert env.env_str("DJANGO_SECRET_KEY") == "a=b#c 'd'"
    assert env.env_str("DJANGO_X") == "from process"
    # The file's values stay out of the environment a reloaded uWSGI inherits,
    # so a changed file wins at the next reload.
    assert "DJANGO_SECRET_KEY" not in os.environ
    path.write_text("DJANGO_SECRET_KEY=rotated\n")
    env.load_env_file(str(path))
    assert env.env_str("DJANGO_SECRET_KEY") == "rotated"
    monkeypatch.setenv("L", "a, b,,c")
    assert env.env_list("L") == ["a", "b", "c"]


def _storage(*stubs_, **options):
    from djangostack.storage import MediaHostsStorage

    return MediaHostsStorage(write_urls=[stub.url + "/m/" for stub in stubs_], **options)


def test_storage_writes_everywhere_reads_first(django_settings, stubs):
    from django.core.files.base import ContentFile

    one, two = stubs(), stubs()
    storage = _storage(one, two)
    name = storage.save("up/a b.txt", ContentFile(b"hello"))
    assert name.startswith("up/a b_") and name.endswith(".txt")
    path = "/m/" + name.replace(" ", "%20")
    assert one.files[path] == two.files[path] == b"hello"
    assert storage.open(name).read() == b"hello"
    assert storage.size(name) == 5 and storage.exists(name)
    assert storage.url(name) == "/media/" + name.replace(" ", "%20")
    storage.delete(name)
    assert not storage.exists(name) and path not in one.files and path not in two.files


def test_uploads_of_one_name_never_overwrite_each_other(django_settings, stubs):
    from concurrent.futures import ThreadPoolExecutor

    from django.core.files.base import ContentFile

    one, two = stubs(), stubs()
    storage = _storage(one, two)
    with ThreadPoolExecutor(max_workers=20) as pool:
        names = list(pool.map(lambda i: storage.save("same.txt", ContentFile(f"upload {i}".encode())), range(20)))
    assert len(set(names)) == 20
    for i, name in enumerate(names):
        assert one.files["/m/" + name] == two.files["/m/" + name] == f"upload {i}".encode()


def test_a_failing_host_does_not_fail_the_upload_and_is_left_alone_a_while(django_settings, stubs):
    from django.core.files.base import ContentFile

    good, bad = stubs(), stubs(fail_puts=True)
    storage = _storage(bad, good, retry_after=60)
    first = storage.save("x.txt", ContentFile(b"x"))
    assert good.files == {"/m/" + first: b"x"} and bad.files == {}
    second = storage.save("y.txt", ContentFile(b"y"))
    # Not even tried: the host failed less than retry_after seconds ago.
    assert bad.put_attempts == 1 and "/m/" + second in good.files
    # Reads skip it too, and find what the good host has.
    assert storage.open(second).read() == b"y"


def test_an_unreachable_host_is_skipped_and_reads_fall_through_a_404(django_settings, stubs):
    from django.core.files.base import ContentFile

    from djangostack.storage import MediaHostsStorage

    one, two = stubs(), stubs()
    storage = MediaHostsStorage(write_urls=["http://127.0.0.1:9/m/", one.url + "/m/"], connect_timeout=1)
    name = storage.save("z.txt", ContentFile(b"z"))
    assert "/m/" + name in one.files
    # A host that missed a file (404) does not hide it on another.
    two.files["/m/" + name] = b"z"
    del one.files["/m/" + name]
    reader = _storage(one, two)
    assert reader.open(name).read() == b"z" and reader.exists(name)


def test_storage_save_fails_when_no_host_stores_it(django_settings, stubs):
    from django.core.files.base import ContentFile

    storage = _storage(stubs(fail_puts=True), stubs(fail_puts=True))
    with pytest.raises(OSError):
        storage.save("x.txt", ContentFile(b"x"))


def test_storage_writes_only_with_the_credential_the_media_hosts_require(django_settings, stubs):
    from django.core.files.base import ContentFile

    one, two = stubs(credential=CREDENTIAL), stubs(credential=CREDENTIAL)
    for credential in (None, "demo:wrong", "other:tok3n-Of-demo"):
        with pytest.raises(OSError, match="HTTP 401"):
            _storage(one, two, credential=credential).save("x.txt", ContentFile(b"x"))
    assert one.files == two.files == {} and one.refused and two.refused
    refused = len(one.refused), len(two.refused)
    storage = _storage(one, two, credential=CREDENTIAL)
    name = storage.save("x.txt", ContentFile(b"x"))
    assert one.files["/m/" + name] == two.files["/m/" + name] == b"x"
    assert storage.open(name).read() == b"x" and storage.exists(name)
    # A delete without the credential is refused and leaves the file.
    with pytest.raises(OSError, match="HTTP 401"):
        _storage(one, two).delete(name)
    assert "/m/" + name in one.files and "/m/" + name in two.files
    storage.delete(name)
    assert one.files == two.files == {}
    assert (len(one.refused), len(two.refused)) == (refused[0] + 1, refused[1] + 1)


def test_a_credential_without_a_colon_is_refused_at_once(django_settings):
    from django.core.exceptions import ImproperlyConfigured

    from djangostack.storage import MediaHostsStorage

    with pytest.raises(ImproperlyConfigured, match="DJANGO_MEDIA_WRITE_CREDENTIAL"):
        MediaHostsStorage(write_urls=["http://127.0.0.1:9/m/"], credential="just-a-token")


def test_persistent_cache_keeps_client_and_replaces_it_after_fork(django_settings, monkeypatch):
    from djangostack.cache import PersistentPyMemcacheCache

    cache = PersistentPyMemcacheCache(["127.0.0.1:1"], {})
    client = cache._cache
    cache.close()
    assert cache._cache is client
    monkeypatch.setattr(os, "getpid", lambda: -1)
    assert cache._cache is not client
