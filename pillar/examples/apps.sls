# The Django apps this stack serves: one uWSGI vassal each on every app host.
# Copy into your site pillar root as apps.sls (plain YAML). pillar/stack.sls
# reads it; secrets live in secrets.sls beside it.
apps:
  demo:
    # salt:// (offline, the default) or {git: URL, rev: REVISION}
    source: {salt: salt://demo}
    requirements: requirements.txt
    settings_module: demoproject.settings
    wsgi_module: demoproject.wsgi
    # Host names the site answers to (nginx server_name and Django ALLOWED_HOSTS).
    server_names: [demo.example.test, localhost, 127.0.0.1]
    # HTTPS at the load balancers (HTTP redirects to it; secure cookies,
    # HSTS). source: self_signed (a quick start), pillar (certificate and
    # key in secrets:tls:<app>), or acme (HTTP-01 through certbot, for the
    # names with a dot):
    #   tls: {source: acme, directory: https://acme-v02.api.letsencrypt.org/directory,
    #         email: ops@example.com}
    # Optional: hsts_seconds (default a year); ca_certificate (PEM) when the
    # ACME server's own certificate comes from a private CA.
    tls: {source: self_signed}
    # Where error mail (500s, to admins) and the app's own mail go: an SMTP
    # relay, its password in secrets:mail:<app> when user logs in. tls:
    # starttls (port 587 by default), ssl (465) or none (25; no user then).
    # No mail at all: `mail: false` (Django then sends none). Required:
    # unset, Django would hand every mail to localhost:25, where nothing
    # listens.
    mail:
      host: smtp.example.com
      port: 587
      tls: starttls
      user: demo@example.com
      from: demo@example.com
      admins:
        - [Ops, ops@example.com]
    # The longest a request may run (seconds; default 30): uWSGI's
    # harakiri. The database cancels a query 5 s earlier, the load
    # balancers wait 5 s longer, and retry a request on another app host
    # only within its first 5 s (pillar/stackpillar/timeouts.py).
    request_timeout: 30
    database: {name: demo, user: demo}
    # uWSGI port on the app hosts' private address; unique per app.
    port: 8000
