"""Memcached backend that keeps its connections open across requests.

Django closes every cache at the end of each request and the stock
PyMemcacheCache then disconnects, so every request opens new TCP connections.
Each closed socket holds a local port in TIME_WAIT for 60 s; above roughly 470
requests/s per app host the ports run out and every response is a 500.

Here close() keeps the connections. That is safe with uWSGI threads: Django
keeps one cache object per thread, so each thread owns its pymemcache
HashClient and sockets. A client made before a fork (uWSGI preloads the app in
its master) is replaced in the child instead of sharing the parent's sockets.
"""

import os

from django.core.cache.backends.memcached import PyMemcacheCache


class PersistentPyMemcacheCache(PyMemcacheCache):
    _client = None
    _client_pid = None

    @property
    def _cache(self):
        pid = os.getpid()
        if self._client is None or self._client_pid != pid:
            self._client = self._class(self.client_servers, **self._options)
            self._client_pid = pid
        return self._client

    def close(self, **kwargs):
        """Called at the end of every request: keep the connections open."""

    def disconnect(self):
        if self._client is not None and self._client_pid == os.getpid():
            self._client.disconnect_all()
        self._client = None
