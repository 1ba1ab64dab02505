"""Unit tests for the installed djangostack package (pip install -e
'djangostack[test]'): a stdlib WebDAV-ish stub server stands in for the media
hosts; no containers."""

import http.server
import json
import os
import threading

import pytest

from djangostack import publish
from djangostack.http import Client


class DavStub:
    """Keep-alive HTTP/1.1 server storing PUT bodies; records the PUT order."""

    def __init__(self, fail_puts=False):
        self.files, self.puts, self.fail_puts = {}, [], fail_puts
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

            def do_PUT(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if stub.fail_puts:
                    return self._reply(500)
                stub.files[self.path] = body
                stub.puts.append(self.path)
                self._reply(201)

            def do_GET(self):
                if self.path in stub.files:
                    return self._reply(200, stub.files[self.path])
                self._reply(404)

            def do_HEAD(self):
                self.send_response(200 if self.path in stub.files else 404)
                self.send_header("Content-Length", str(len(stub.files.get(self.path, b""))))
                self.send_header("Last-Modified", "Sat, 21 Nov 2026 10:00:00 GMT")
                self.end_headers()

            def do_DELETE(self):
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
        assert sorted(stub.puts) == sorted(
            ["/demo/static/app/a.1234.css", "/demo/static/z.txt", "/demo/static/staticfiles.json"]
        )
    assert publish.main(["--check", str(src), *urls]) == 0
    # Same manifest with keys in another order is still in sync.
    two.files["/demo/static/staticfiles.json"] = b'{"paths": {"app/a.css": "app/a.1234.css"}}'
    assert publish.main(["--check", str(src), *urls]) == 0
    del two.files["/demo/static/staticfiles.json"]
    assert publish.main(["--check", str(src), *urls]) == 1


def test_publish_failing_host_gets_no_manifest_and_fails(tmp_path, stubs):
    src = _tree(tmp_path)
    good, bad = stubs(), stubs(fail_puts=True)
    assert publish.main([str(src), good.url + "/s/", bad.url + "/s/"]) == 1
    assert "/s/staticfiles.json" in good.files
    assert bad.files == {}


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


def test_storage_writes_everywhere_reads_first(django_settings, stubs):
    from django.core.files.base import ContentFile

    from djangostack.storage import MediaHostsStorage

    one, two = stubs(), stubs()
    storage = MediaHostsStorage(write_urls=[one.url + "/m", two.url + "/m/"])
    name = storage.save("up/a b.txt", ContentFile(b"hello"))
    assert name == "up/a b.txt"
    assert one.files["/m/up/a%20b.txt"] == two.files["/m/up/a%20b.txt"] == b"hello"
    second = storage.save("up/a b.txt", ContentFile("héllo"))
    assert second != name and storage.exists(second)
    assert storage.open(second).read() == "héllo".encode()
    assert storage.size(name) == 5
    assert storage.url(name) == "/media/up/a%20b.txt"
    storage.delete(name)
    assert not storage.exists(name) and "/m/up/a%20b.txt" not in two.files


def test_storage_save_fails_and_cleans_up_when_one_host_fails(django_settings, stubs):
    from django.core.files.base import ContentFile

    from djangostack.storage import MediaHostsStorage

    good, bad = stubs(), stubs(fail_puts=True)
    storage = MediaHostsStorage(write_urls=[good.url + "/m/", bad.url + "/m/"])
    with pytest.raises(OSError):
        storage.save("x.txt", ContentFile(b"x"))
    assert good.files == {}


def test_persistent_cache_keeps_client_and_replaces_it_after_fork(django_settings, monkeypatch):
    from djangostack.cache import PersistentPyMemcacheCache

    cache = PersistentPyMemcacheCache(["127.0.0.1:1"], {})
    client = cache._cache
    cache.close()
    assert cache._cache is client
    monkeypatch.setattr(os, "getpid", lambda: -1)
    assert cache._cache is not client
