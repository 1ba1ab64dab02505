"""Django storage that keeps uploads on every media host, over HTTP.

Writes (PUT) and deletes go synchronously to EVERY media write URL (the media
hosts' WebDAV endpoints); a save fails unless every host stored the file, so
no host silently lacks one (the hosts that did store it are cleaned up).
Reads, exists and size ask the first host that answers. url() is MEDIA_URL +
name: the load balancers serve /media/ from the media hosts.

STORAGES = {"default": {"BACKEND": "djangostack.storage.MediaHostsStorage",
                        "OPTIONS": {"write_urls": [...], "timeout": 10}}}
"""

import email.utils
import http.client
import logging
import tempfile
import urllib.parse
from datetime import timezone

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.core.files.storage import Storage
from django.utils import timezone as dj_timezone
from django.utils.deconstruct import deconstructible
from django.utils.encoding import filepath_to_uri

from djangostack.http import Client

log = logging.getLogger(__name__)

# Bodies up to this size stay in memory while being sent/received.
SPOOL_MAX = 1024 * 1024


class MediaHostError(OSError):
    pass


@deconstructible(path="djangostack.storage.MediaHostsStorage")
class MediaHostsStorage(Storage):
    def __init__(self, write_urls=None, base_url=None, timeout=10):
        urls = [u if u.endswith("/") else u + "/" for u in (write_urls or [])]
        self.write_urls = urls
        self._base_url = base_url
        self.timeout = timeout
        self._http = Client(timeout=timeout)

    @property
    def base_url(self):
        url = self._base_url if self._base_url is not None else settings.MEDIA_URL
        return url if url.endswith("/") else url + "/"

    def _urls(self):
        if not self.write_urls:
            raise ImproperlyConfigured("MediaHostsStorage has no write_urls (DJANGO_MEDIA_WRITE_URLS)")
        return self.write_urls

    @staticmethod
    def _quote(name):
        return urllib.parse.quote(name.replace("\\", "/").lstrip("/"))

    def _first_answer(self, method, name, sink=None):
        """(base, response) from the first host that answers at all."""
        errors = []
        for base in self._urls():
            try:
                return base, self._http.request(method, base + self._quote(name), sink=sink)
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{base}: {exc!r}")
                if sink is not None:
                    sink.seek(0)
                    sink.truncate()
        raise MediaHostError(f"{method} {name}: no media host answered: " + "; ".join(errors))

    # Writing --------------------------------------------------------------

    def _save(self, name, content):
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX)
        if hasattr(content, "seek"):
            content.seek(0)
        for chunk in content.chunks() if hasattr(content, "chunks") else iter(lambda: content.read(65536), b""):
            spool.write(chunk.encode() if isinstance(chunk, str) else chunk)
        size = spool.tell()
        stored = []
        try:
            for base in self._urls():
                spool.seek(0)
                url = base + self._quote(name)
                response = self._http.request(
                    "PUT", url, body=spool, headers={"Content-Length": str(size)}
                )
                if response.status not in (200, 201, 204):
                    raise MediaHostError(f"PUT {url}: HTTP {response.status}")
                stored.append(base)
        except Exception:
            for base in stored:
                try:
                    self._http.request("DELETE", base + self._quote(name))
                except (OSError, http.client.HTTPException):
                    log.warning("could not remove %s from %s after a failed save", name, base)
            raise
        finally:
            spool.close()
        return name

    def delete(self, name):
        errors = []
        for base in self._urls():
            url = base + self._quote(name)
            try:
                response = self._http.request("DELETE", url)
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{url}: {exc!r}")
                continue
            if response.status not in (200, 204, 404):
                errors.append(f"{url}: HTTP {response.status}")
        if errors:
            raise MediaHostError("DELETE " + "; ".join(errors))

    # Reading --------------------------------------------------------------

    def _open(self, name, mode="rb"):
        if "w" in mode or "a" in mode or "+" in mode:
            raise ValueError("MediaHostsStorage opens files for reading only; use save()")
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX)
        base, response = self._first_answer("GET", name, sink=spool)
        if response.status == 404:
            spool.close()
            raise FileNotFoundError(name)
        if response.status != 200:
            spool.close()
            raise MediaHostError(f"GET {base}{name}: HTTP {response.status}")
        spool.seek(0)
        return File(spool, name)

    def _head(self, name):
        base, response = self._first_answer("HEAD", name)
        if response.status == 404:
            return None
        if response.status != 200:
            raise MediaHostError(f"HEAD {base}{name}: HTTP {response.status}")
        return response

    def exists(self, name):
        return self._head(name) is not None

    def size(self, name):
        response = self._head(name)
        if response is None:
            raise FileNotFoundError(name)
        return int(response.headers["Content-Length"])

    def get_modified_time(self, name):
        response = self._head(name)
        if response is None:
            raise FileNotFoundError(name)
        modified = email.utils.parsedate_to_datetime(response.headers["Last-Modified"])
        modified = modified.astimezone(timezone.utc)
        return modified if settings.USE_TZ else dj_timezone.make_naive(modified, timezone.utc)

    def url(self, name):
        return urllib.parse.urljoin(self.base_url, filepath_to_uri(name).lstrip("/"))

    def listdir(self, path):
        raise NotImplementedError("MediaHostsStorage cannot list directories")
