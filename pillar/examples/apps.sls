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
    admins:
      - [Ops, ops@example.com]
    database: {name: demo, user: demo}
    # uWSGI port on the app hosts' private address; unique per app.
    port: 8000
