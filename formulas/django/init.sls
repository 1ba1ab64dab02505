{#- Django apps under the uWSGI emperor. Host-wide: Debian's venv packages,
    the apps root and the env files' directory. Then per app (pillar
    django:apps:<name>), the steps below in this order; each lives in
    steps/<step>.jinja, which says what it guarantees. State ids are
    django-<name>-<what>.

      user         system user and group; <root> = <apps_root>/<name>
      source       the code in <root>/src (git or salt://)
      venv         <root>/venv with the app's pinned requirements
      djangostack  the integration package, built into the venv
      env_file     <env_dir>/<name>.env: settings and secrets
      static       collectstatic into <root>/static
      leader       on the leader only: migrate, publish static files;
                   on the others: refuse new code the leader has not migrated
      vassal       the uWSGI vassal (uwsgi's vassal macro); code, packages
                   or settings changes reload it, the emperor never restarts

    A step that dies halfway is redone by the next apply (markers are written
    only after success, see each step); a second apply changes nothing.
    django.clean removes what this leaves behind when the role goes. -#}
{%- from "django/apps.jinja" import django with context %}
{%- from "django/steps/user.jinja" import user with context %}
{%- from "django/steps/source.jinja" import source with context %}
{%- from "django/steps/venv.jinja" import venv with context %}
{%- from "django/steps/djangostack.jinja" import djangostack with context %}
{%- from "django/steps/env_file.jinja" import env_file with context %}
{%- from "django/steps/static.jinja" import static with context %}
{%- from "django/steps/leader.jinja" import leader, follower with context %}
{%- from "django/steps/vassal.jinja" import vassal with context %}

include:
  - uwsgi

django-packages:
  pkg.installed:
    - pkgs: {{ django.pkgs | json }}
{%- if django.apps.values() | selectattr('source_type', 'equalto', 'git') | list %}

django-git-package:
  pkg.installed:
    - name: {{ django.git_pkg }}
{%- endif %}

{#- Traversable by every app user (each app root below is closed to others). #}
django-apps-root:
  file.directory:
    - name: {{ django.apps_root }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True

django-env-dir:
  file.directory:
    - name: {{ django.env_dir }}
    - user: root
    - group: root
    - mode: '0755'
{%- for name, app in django.apps | dictsort %}
{{ user(app) }}
{{ source(app) }}
{{ venv(app, django.python) }}
{{ djangostack(app, django.build_wheels) }}
{{ env_file(app) }}
{{ static(app) }}
{%-   if app.leader %}
{{ leader(app) }}
{%-   else %}
{{ follower(app) }}
{%-   endif %}
{{ vassal(app) }}
{%- endfor %}
