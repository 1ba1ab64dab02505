"""A small keep-alive HTTP client (stdlib only) for the media hosts.

One connection per (thread, host), reused across requests; a request on a
reused connection that the server has meanwhile closed is retried once on a
new one (every method used here is idempotent: GET, HEAD, PUT, DELETE).
Given a credential ("user:password"), every request carries it (HTTP Basic):
the media hosts' WebDAV port lets each app's credential alone into its trees.
"""

import base64
import http.client
import os
import threading
import urllib.parse

_RETRYABLE = (
    http.client.RemoteDisconnected,
    http.client.CannotSendRequest,
    http.client.BadStatusLine,
    ConnectionResetError,
    BrokenPipeError,
)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive
        self.body = body


def basic_authorization(credential):
    """The Authorization header of HTTP Basic for "user:password"."""
    if ":" not in credential:
        raise ValueError("a media write credential is user:password")
    return "Basic " + base64.b64encode(credential.encode()).decode("ascii")


class Client:
    """timeout: seconds a request may wait on a connected host;
    connect_timeout: on connecting (an unreachable host fails that fast);
    credential: "user:password" sent with every request (HTTP Basic), or None."""

    def __init__(self, timeout=10, connect_timeout=None, credential=None):
        self.timeout = timeout
        self.connect_timeout = connect_timeout or timeout
        self._headers = {"Authorization": basic_authorization(credential)} if credential else {}
        self._local = threading.local()

    def _connections(self):
        # Connections made before a fork belong to the parent.
        if getattr(self._local, "pid", None) != os.getpid():
            self._local.pid = os.getpid()
            self._local.connections = {}
        return self._local.connections

    def _connection(self, scheme, netloc):
        connections = self._connections()
        conn = connections.get((scheme, netloc))
        fresh = conn is None
        if fresh:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = cls(netloc, timeout=self.timeout)
            connections[(scheme, netloc)] = conn
        return conn, fresh

    def _drop(self, scheme, netloc):
        conn = self._connections().pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    def request(self, method, url, body=None, headers=None, sink=None):
        """Send one request and read the whole response.

        body: bytes or a binary file positioned at its start (sent with the
        Content-Length given in headers). sink: a binary file that receives
        the response body (for large downloads); otherwise Response.body is
        the bytes.
        """
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {url}")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        start = body.tell() if hasattr(body, "tell") else None
        for attempt in (1, 2):
            conn, fresh = self._connection(parts.scheme, parts.netloc)
            try:
                if conn.sock is None:
                    conn.timeout = self.connect_timeout
                    try:
                        conn.connect()
                    finally:
                        conn.timeout = self.timeout
                    conn.sock.settimeout(self.timeout)
                conn.request(method, path, body=body, headers={**self._headers, **(headers or {})})
                response = conn.getresponse()
                if sink is not None and response.status == 200 and method != "HEAD":
                    while chunk := response.read(65536):
                        sink.write(chunk)
                    data = b""
                else:
                    data = response.read()
                if response.will_close:
                    self._drop(parts.scheme, parts.netloc)
                return Response(response.status, response.headers, data)
            except _RETRYABLE:
                self._drop(parts.scheme, parts.netloc)
                if fresh or attempt == 2:
                    raise
                if start is not None:
                    body.seek(start)
                if sink is not None:
                    sink.seek(0)
                    sink.truncate()
            except BaseException:
                self._drop(parts.scheme, parts.netloc)
                raise
        raise AssertionError("unreachable")
