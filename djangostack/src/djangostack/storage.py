"""Django storage that keeps uploads on every media host, over HTTP.

Every upload gets a name of its own (a random suffix, Django's alternative
name), so two uploads never overwrite each other and no media host can hold
different bytes under one name. Writes (PUT) go to every media write URL
(the media hosts' WebDAV endpoints) at once; a save succeeds once at least one
host stored the file. A host that failed is left alone for ``retry_after``
seconds, so an unreachable host costs one connect timeout, not one per
upload; the media hosts copy what they missed from each other
(media_sync). Reads, exists and size ask the hosts in turn and take the
first that has the file. url() is MEDIA_URL + name: the load balancers
serve /media/ from the media hosts. Every request to the write URLs carries
the app's credential ("app:token", HTTP Basic): the media hosts refuse
writes to an app's trees without it (401).

STORAGES = {"default": {"BACKEND": "djangostack.storage.MediaHostsStorage",
                        "OPTIONS": {"write_urls": [...], "credential": "app:token", "timeout": 10}}}
"""

import email.utils
import http.client
import logging
import os
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import timezone

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation
from django.core.files import File
from django.core.files.storage import Storage
from django.core.files.utils import validate_file_name
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
    def __init__(self, write_urls=None, base_url=None, timeout=10, connect_timeout=2, retry_after=30,
                 credential=None):
        urls = [u if u.endswith("/") else u + "/" for u in (write_urls or [])]
        self.write_urls = urls
        self._base_url = base_url
        self.timeout = timeout
        self.retry_after = retry_after
        try:
            self._http = Client(timeout=timeout, connect_timeout=connect_timeout, credential=credential)
        except ValueError as exc:
            raise ImproperlyConfigured(f"MediaHostsStorage credential (DJANGO_MEDIA_WRITE_CREDENTIAL): {exc}") from None
        self._failed_at = {}
        self._lock = threading.Lock()
        self._pool = None

    @property
    def base_url(self):
        url = self._base_url if self._base_url is not None else settings.MEDIA_URL
        return url if url.endswith("/") else url + "/"

    def _urls(self):
        if not self.write_urls:
            raise ImproperlyConfigured("MediaHostsStorage has no write_urls (DJANGO_MEDIA_WRITE_URLS)")
        return self.write_urls

    def _available(self):
        """Every host, those that failed lately last."""
        recent = self._lately_failed()
        urls = self._urls()
        return [u for u in urls if u not in recent] + [u for u in urls if u in recent]

    def _mark(self, base, ok):
        with self._lock:
            if ok:
                self._failed_at.pop(base, None)
            else:
                self._failed_at[base] = time.monotonic()

    def _executor(self):
        # One pool per process (uWSGI forks workers after import).
        if self._pool is None or self._pool[0] != os.getpid():
            self._pool = (os.getpid(), ThreadPoolExecutor(max_workers=max(1, len(self._urls()))))
        return self._pool[1]

    @staticmethod
    def _quote(name):
        return urllib.parse.quote(name.replace("\\", "/").lstrip("/"))

    def _lately_failed(self):
        now = time.monotonic()
        with self._lock:
            return {u for u, t in self._failed_at.items() if now - t < self.retry_after}

    def _first_answer(self, method, name, sink=None):
        """(base, response) from the first host that has ``name`` (200), else
        a 404. Hosts that failed lately are asked last, and only while no
        other host answered."""
        errors, missing = [], None
        lately = self._lately_failed()
        for base in self._available():
            if base in lately and missing is not None:
                break
            try:
                response = self._http.request(method, base + self._quote(name), sink=sink)
            except (OSError, http.client.HTTPException) as exc:
                self._mark(base, False)
                errors.append(f"{base}: {exc!r}")
                if sink is not None:
                    sink.seek(0)
                    sink.truncate()
                continue
            self._mark(base, True)
            if response.status != 404:
                return base, response
            missing = (base, response)
        if missing is not None:
            return missing
        raise MediaHostError(f"{method} {name}: no media host answered: " + "; ".join(errors))

    # Naming ---------------------------------------------------------------

    def get_available_name(self, name, max_length=None):
        """Always a name no upload had: never ``exists()`` then write, which
        two concurrent uploads of one name would both pass."""
        name = str(name).replace("\\", "/")
        validate_file_name(name, allow_relative_path=True)
        dir_name, file_name = os.path.split(name)
        file_root, file_ext = os.path.splitext(file_name)
        candidate = os.path.join(dir_name, self.get_alternative_name(file_root, file_ext))
        if max_length is not None and len(candidate) > max_length:
            file_root = file_root[: len(file_root) - (len(candidate) - max_length)]
            if not file_root:
                raise SuspiciousFileOperation(f'Storage can not find an available filename for "{name}".')
            candidate = os.path.join(dir_name, self.get_alternative_name(file_root, file_ext))
        return candidate

    # Writing --------------------------------------------------------------

    def _put(self, base, name, spool_path, size):
        url = base + self._quote(name)
        try:
            with open(spool_path, "rb") as body:
                response = self._http.request("PUT", url, body=body, headers={"Content-Length": str(size)})
        except (OSError, http.client.HTTPException) as exc:
            self._mark(base, False)
            return f"PUT {url}: {exc!r}"
        ok = response.status in (200, 201, 204)
        self._mark(base, ok)
        return None if ok else f"PUT {url}: HTTP {response.status}"

    def _save(self, name, content):
        if hasattr(content, "seek"):
            content.seek(0)
        # A named file: each host's PUT reads it from its own thread.
        with tempfile.NamedTemporaryFile(prefix="upload-") as spool:
            for chunk in content.chunks() if hasattr(content, "chunks") else iter(lambda: content.read(65536), b""):
                spool.write(chunk.encode() if isinstance(chunk, str) else chunk)
            spool.flush()
            size = spool.tell()
            # Hosts that failed lately are skipped, unless every host did.
            lately = self._lately_failed()
            targets = [u for u in self._urls() if u not in lately] or self._urls()
            errors = list(self._executor().map(lambda base: self._put(base, name, spool.name, size), targets))
        failed = [e for e in errors if e]
        if len(failed) == len(targets):
            raise MediaHostError(f"{name}: no media host stored it: " + "; ".join(failed))
        for error in failed + [f"{name}: not sent to {u}, which failed lately" for u in self._urls()
                               if u not in targets]:
            log.warning("%s (the media hosts copy what they missed from each other)", error)
        return name

    def delete(self, name):
        errors, done = [], 0
        for base in self._urls():
            url = base + self._quote(name)
            try:
                response = self._http.request("DELETE", url)
            except (OSError, http.client.HTTPException) as exc:
                self._mark(base, False)
                errors.append(f"{url}: {exc!r}")
                continue
            if response.status in (200, 204, 404):
                done += 1
            else:
                errors.append(f"{url}: HTTP {response.status}")
        if errors:
            if not done:
                raise MediaHostError("DELETE " + "; ".join(errors))
            log.warning("DELETE %s", "; ".join(errors))

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
