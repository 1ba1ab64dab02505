{#- Django apps under uWSGI: per app a system user, the code, a virtualenv
    with the pinned requirements and djangostack, the env file, static files,
    migrations (leader only) and one emperor vassal. Code changes reload the
    vassal by touching its ini; the emperor itself is never restarted.

    Steps that must not be lost when an apply dies halfway leave a marker
    only on success (pip stamps in the venv, .salt-collected in STATIC_ROOT,
    .salt-reloaded in the app root), so the next apply redoes them. -#}
{%- from "django/map.jinja" import django with context %}
{%- from "uwsgi/map.jinja" import uwsgi with context %}

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
{%-   set pip = app.venv ~ '/bin/pip --disable-pip-version-check --no-input' %}
{%-   set python = app.venv ~ '/bin/python' %}
{%-   set pip_opts = [] %}
{%-   if app.pip.index_url %}{% do pip_opts.append('--index-url ' ~ app.pip.index_url | quote) %}{% endif %}
{%-   for link in ([app.pip.find_links] if app.pip.find_links is string else (app.pip.find_links or [])) %}
{%-     do pip_opts.append('--find-links ' ~ link | quote) %}
{%-   endfor %}
{%-   if app.pip.no_index %}{% do pip_opts.append('--no-index') %}{% endif %}
{%-   set requirements = app.src ~ '/' ~ app.requirements %}
{%-   set requirements_stamp = app.venv ~ '/.salt-requirements.txt' %}
{%-   set stack_src = app.root ~ '/djangostack' %}
{%-   set stack_stamp = app.venv ~ '/.salt-djangostack' %}
{%-   set collected = app.static_root ~ '/.salt-collected' %}
{%-   set reloaded = app.root ~ '/.salt-reloaded' %}
{%-   set vassal = uwsgi.vassals_dir ~ '/' ~ name ~ '.ini' %}
{%-   set source_state = 'git' if app.source_type == 'git' else 'file' %}
{#-   Every manage.py run: as the app user, with the app's env file. #}
{%-   set manage = python ~ ' manage.py' %}
{%-   set as_app %}
    - cwd: {{ app.src }}
    - runas: {{ app.user }}
    - env:
        DJANGO_ENV_FILE: {{ app.env_file }}
        DJANGO_SETTINGS_MODULE: {{ app.settings_module }}
{%-   endset %}
{#-   Vassal: uwsgi's defaults, this app's essentials, then the app's own
      uwsgi options (socket, processes, ...). #}
{%-   set vassal_options = salt['defaults.merge'](uwsgi.vassal_defaults, {
        'chdir': app.src,
        'module': app.wsgi_module ~ ':application',
        'virtualenv': app.venv,
        'uid': app.user,
        'gid': app.group,
        'env': uwsgi.vassal_defaults.env + [
          'DJANGO_ENV_FILE=' ~ app.env_file,
          'DJANGO_SETTINGS_MODULE=' ~ app.settings_module,
        ],
      }, in_place=False) %}
{%-   do vassal_options.update(app.uwsgi) %}

django-{{ name }}-group:
  group.present:
    - name: {{ app.group }}
    - system: True

django-{{ name }}-user:
  user.present:
    - name: {{ app.user }}
    - gid: {{ app.group }}
    - system: True
    - home: {{ app.root }}
    - createhome: False
    - shell: /usr/sbin/nologin
    - require:
      - group: django-{{ name }}-group

{#- Code and venv belong to root: the app cannot rewrite what it runs. #}
django-{{ name }}-root:
  file.directory:
    - name: {{ app.root }}
    - user: root
    - group: {{ app.group }}
    - mode: '0750'
    - require:
      - file: django-apps-root
      - user: django-{{ name }}-user

django-{{ name }}-source:
{%-   if app.source_type == 'git' %}
  git.latest:
    - name: {{ app.source.git }}
    - target: {{ app.src }}
    - rev: {{ app.source.get('rev') or 'HEAD' }}
    - user: root
    # Local edits are discarded and a half-made or foreign checkout is
    # cloned again: src holds exactly rev.
    - force_reset: True
    - force_clone: True
    - require:
      - pkg: django-git-package
      - file: django-{{ name }}-root
{%-   else %}
  file.recurse:
    - name: {{ app.src }}
    - source: {{ app.source.salt }}
    # Files that left the source leave the host too.
    - clean: True
    - exclude_pat: E@(^|/)__pycache__(/|$)|\.pyc$
    - user: root
    - group: root
    - dir_mode: '0755'
    - file_mode: '0644'
    - require:
      - file: django-{{ name }}-root
{%-   endif %}

{#- Debian's python3: uWSGI's python3 plugin is built against it. Rebuilt
    when it no longer runs pip (half-made, or the system Python changed). #}
django-{{ name }}-venv:
  cmd.run:
    - name: {{ django.python }} -m venv --clear {{ app.venv }}
    - unless: {{ python }} -m pip --version
    - require:
      - pkg: django-packages
      - file: django-{{ name }}-root

{#- The stamp is written only after pip succeeded: an interrupted install
    is retried, an unchanged requirements file costs nothing. #}
django-{{ name }}-requirements:
  cmd.run:
    - name: >-
        {{ pip }} install {{ pip_opts | join(' ') }} -r {{ requirements }}
        && cp {{ requirements }} {{ requirements_stamp }}
    - unless: cmp -s {{ requirements }} {{ requirements_stamp }}
    - require:
      - cmd: django-{{ name }}-venv
      - {{ source_state }}: django-{{ name }}-source

django-{{ name }}-djangostack-source:
  file.recurse:
    - name: {{ stack_src }}
    - source: salt://django/files/djangostack
    - clean: True
    - exclude_pat: E@(^|/)__pycache__(/|$)|\.pyc$
    - user: root
    - group: root
    - dir_mode: '0755'
    - file_mode: '0644'
    - require:
      - file: django-{{ name }}-root

{#- Built from a copy (setuptools writes build/ and *.egg-info into the
    tree); build dependencies from Debian's wheels, so no index is needed. #}
django-{{ name }}-djangostack:
  cmd.run:
    - name: |
        set -e
        build=$(mktemp -d)
        trap 'rm -rf "$build"' EXIT
        cp -r {{ stack_src }} "$build/djangostack"
        {{ pip }} install --no-index --find-links {{ django.build_wheels }} --no-deps --force-reinstall "$build/djangostack"
        rm -rf {{ stack_stamp }}
        cp -r {{ stack_src }} {{ stack_stamp }}
    - unless: diff -r {{ stack_src }} {{ stack_stamp }}
    - require:
      - cmd: django-{{ name }}-requirements
      - file: django-{{ name }}-djangostack-source

{#- Holds the secret key and the database password. #}
django-{{ name }}-env-file:
  file.managed:
    - name: {{ app.env_file }}
    - source: salt://django/files/app.env.jinja
    - template: jinja
    - context:
        app: {{ app | json }}
    - user: root
    - group: {{ app.group }}
    - mode: '0640'
    - show_changes: False
    - require:
      - file: django-env-dir
      - group: django-{{ name }}-group

django-{{ name }}-static-root:
  file.directory:
    - name: {{ app.static_root }}
    - user: {{ app.user }}
    - group: {{ app.group }}
    - mode: '0750'
    - require:
      - file: django-{{ name }}-root

{#- New code or packages: collect again (the marker goes first, so a failed
    collectstatic is retried by the next apply). #}
django-{{ name }}-static-stale:
  file.absent:
    - name: {{ collected }}
    - onchanges:
      - {{ source_state }}: django-{{ name }}-source
      - cmd: django-{{ name }}-requirements
      - cmd: django-{{ name }}-djangostack

{#- Into the local STATIC_ROOT on every app host: staticfiles.json there maps
    names to hashed names when pages are rendered. #}
django-{{ name }}-collectstatic:
  cmd.run:
    - name: {{ manage }} collectstatic --noinput --verbosity 0 && touch {{ collected }}
    - creates:
      - {{ collected }}
      - {{ app.static_root }}/staticfiles.json
    {{- as_app }}
    - require:
      - file: django-{{ name }}-static-stale
      - file: django-{{ name }}-static-root
      - file: django-{{ name }}-env-file
      - cmd: django-{{ name }}-djangostack
{%-   if app.leader %}

{#- Once per deploy, on the leader only, before any vassal reloads. #}
django-{{ name }}-migrate:
  cmd.run:
    - name: {{ manage }} migrate --noinput
    - unless: {{ manage }} migrate --check
    {{- as_app }}
    - require:
      - file: django-{{ name }}-env-file
      - cmd: django-{{ name }}-djangostack
{%-     if app.static_publish_urls %}

{#- staticfiles.json goes last: a host whose manifest matches has it all. #}
django-{{ name }}-publish-static:
  cmd.run:
    - name: {{ python }} -m djangostack.publish {{ app.static_root }} {{ app.static_publish_urls | map('quote') | join(' ') }}
    - unless: {{ python }} -m djangostack.publish --check {{ app.static_root }} {{ app.static_publish_urls | map('quote') | join(' ') }}
    - runas: {{ app.user }}
    - require:
      - cmd: django-{{ name }}-collectstatic
{%-     endif %}
{%-   endif %}

django-{{ name }}-vassal:
  file.managed:
    - name: {{ vassal }}
    - source: salt://uwsgi/files/vassal.ini.jinja
    - template: jinja
    - context:
        name: {{ name }}
        stats_dir: {{ uwsgi.stats_dir }}
        options: {{ vassal_options | json }}
    - user: root
    - group: root
    - mode: '0644'
    - require:
      - file: uwsgi-vassals-dir
      - cmd: django-{{ name }}-collectstatic
{%-   if app.leader %}
      - cmd: django-{{ name }}-migrate
{%-   endif %}

{#- Code, packages or settings changed: the emperor reloads the vassal when
    its ini is touched. The marker is removed first so that a reload that
    did not happen (a failed requisite) is retried by the next apply. #}
django-{{ name }}-reload-pending:
  file.absent:
    - name: {{ reloaded }}
    - onchanges:
      - {{ source_state }}: django-{{ name }}-source
      - cmd: django-{{ name }}-requirements
      - cmd: django-{{ name }}-djangostack
      - file: django-{{ name }}-env-file

django-{{ name }}-reload:
  cmd.run:
    - name: touch -c {{ vassal }} && touch {{ reloaded }}
    - creates: {{ reloaded }}
    - require:
      - file: django-{{ name }}-reload-pending
      - file: django-{{ name }}-vassal
      - cmd: django-{{ name }}-collectstatic
{%-   if app.leader %}
      - cmd: django-{{ name }}-migrate
{%-     if app.static_publish_urls %}
      - cmd: django-{{ name }}-publish-static
{%-     endif %}
{%-   endif %}
{%- endfor %}
