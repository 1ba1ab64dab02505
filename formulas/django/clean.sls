{#- The app role left this host: the apps' env files (they hold secrets) and
    the vassals this formula wrote go; the emperor stops each vassal whose
    ini goes (uwsgi.clean then stops the emperor). The apps' code, venvs,
    users and collected static files stay. Needs no pillar: the env dir comes
    from defaults (or pillar if still there), the vassals are found by their
    owner mark. A no-op on a host that never had the role. -#}
{%- from "django/map.jinja" import django with context %}
{%- from "uwsgi/macros.jinja" import vassals_absent with context %}
{{ vassals_absent('django') }}

django-env-files-removed:
  file.absent:
    - name: {{ django.env_dir }}
