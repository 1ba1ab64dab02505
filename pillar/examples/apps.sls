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
    server_names: [localhost, 127.0.0.1]
    admins:
      - [Ops, ops@example.com]
    database: {name: demo, user: demo}
    # uWSGI port on the app hosts' private address; unique per app.
    port: 8000
