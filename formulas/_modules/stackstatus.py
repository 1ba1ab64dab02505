"""Probes the stack's status view (salt/_runners/stack.py) asks a host for,
and the uwsgi_vassal state (formulas/_states) waits on, where Salt 3008's
core has no module (its uwsgi and memcached modules moved out of core):
uWSGI's stats sockets, memcached's `stats`, and upstreams asked exactly what
the load balancer's nginx asks them. Each returns what the service said,
raw. Synced to the hosts by a state run and by the runner
(saltutil.sync_modules saltenv=stack)."""
import glob
import os
import socket
import struct
import time

__virtualname__ = "stackstatus"


def __virtual__():
    return __virtualname__


def uwsgi_stats(vassals, stats_dir="/run/uwsgi-stats", timeout=5):
    """{vassal: {'stats': <uWSGI's stats JSON, as text>} or {'error': why}}
    for each of ``vassals`` (<stats_dir>/<vassal>/stats.sock, formula
    uwsgi), and for any other vassal with a socket there."""
    found = {os.path.basename(os.path.dirname(p)) for p in glob.glob(os.path.join(stats_dir, "*", "stats.sock"))}
    result = {}
    for vassal in sorted(set(vassals) | found):
        path = os.path.join(stats_dir, vassal, "stats.sock")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(timeout)
                conn.connect(path)
                # The stats server writes its JSON and closes.
                result[vassal] = {"stats": _read_to_end(conn).decode("utf-8", "replace")}
        except OSError as exc:
            result[vassal] = {"error": f"{path}: {exc.strerror or exc}"}
    return result


def memcached_stats(address, port=11211, timeout=5):
    """memcached's general-purpose statistics {name: value (text)}, or
    {'error': why}."""
    try:
        with socket.create_connection((address, int(port)), timeout) as conn:
            conn.sendall(b"stats\r\n")
            data = b""
            while not data.endswith(b"END\r\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        return {"error": f"{address}:{port}: {exc.strerror or exc}"}
    return {parts[1]: parts[2] for parts in (line.split(" ", 2) for line in data.decode().splitlines())
            if len(parts) == 3 and parts[0] == "STAT"}


def probe_upstreams(targets, timeout=2):
    """Each target {'server': 'address:port', 'protocol': 'uwsgi' | 'http',
    'host': Host header, 'path', 'scheme'} asked for its path the way the
    load balancer's nginx asks (uwsgi protocol with nginx's uwsgi_params for
    app hosts, HTTP/1.1 for media hosts), from this host: the target with
    'status' (the HTTP status answered), 'seconds', or 'error' (no answer:
    nginx would find it down)."""
    results = []
    for target in targets:
        address, port = target["server"].rsplit(":", 1)
        started = time.monotonic()
        try:
            with socket.create_connection((address, int(port)), timeout) as conn:
                conn.settimeout(timeout)
                conn.sendall(_uwsgi_request(target) if target["protocol"] == "uwsgi" else _http_request(target))
                status_line = _read_line(conn)
            status = int(status_line.split()[1])
            results.append({**target, "status": status, "seconds": round(time.monotonic() - started, 3)})
        except (OSError, ValueError, IndexError) as exc:
            results.append({**target, "error": getattr(exc, "strerror", None) or str(exc) or type(exc).__name__,
                            "seconds": round(time.monotonic() - started, 3)})
    return results


def _uwsgi_request(target):
    """A uwsgi packet (modifier1 0: WSGI) with the variables nginx's
    uwsgi_params and the load balancer's own uwsgi_param lines send."""
    path = target.get("path", "/")
    scheme = target.get("scheme", "http")
    variables = {
        "QUERY_STRING": "", "REQUEST_METHOD": "GET", "CONTENT_TYPE": "", "CONTENT_LENGTH": "",
        "REQUEST_URI": path, "PATH_INFO": path, "DOCUMENT_ROOT": "/", "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_SCHEME": scheme, "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "0",
        "SERVER_PORT": "443" if scheme == "https" else "80", "SERVER_NAME": target["host"],
        "HTTP_HOST": target["host"], "HTTP_USER_AGENT": "django-stack status",
        "HTTP_X_FORWARDED_PROTO": scheme,
    }
    if scheme == "https":
        variables["HTTPS"] = "on"
    body = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
                    for k, v in ((k.encode(), v.encode()) for k, v in variables.items()))
    return struct.pack("<BHB", 0, len(body), 0) + body


def _http_request(target):
    return (f"GET {target.get('path', '/')} HTTP/1.1\r\nHost: {target['host']}\r\n"
            "User-Agent: django-stack status\r\nConnection: close\r\n\r\n").encode()


def _read_line(conn):
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode("latin-1").strip()


def _read_to_end(conn):
    chunks = []
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
