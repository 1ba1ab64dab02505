{#- pgBackRest's configuration on a database or repository host: the
    package, this host's TLS key and certificates, pgbackrest.conf, and the
    TLS server when other hosts connect to this one. -#}
{%- from 'pgbackrest/map.jinja' import pgbackrest with context %}
{%- for key in ['stanza', 'tls:ca', 'tls:cert', 'tls:key'] %}
{%-   if not pgbackrest | traverse(key) %}
{{- raise('pillar pgbackrest:' ~ key ~ ' is required') }}
{%-   endif %}
{%- endfor %}

pgbackrest-package-installed:
  pkg.installed:
    - name: {{ pgbackrest.package }}

pgbackrest-tls-directory:
  file.directory:
    - name: {{ pgbackrest.tls_dir }}
    - user: root
    - group: postgres
    - mode: '0750'
    - makedirs: True
    - require:
      - pkg: pgbackrest-package-installed
{%- for name, path in pgbackrest.tls_files | dictsort %}

pgbackrest-tls-{{ name }}:
  file.managed:
    - name: {{ path }}
    - contents: {{ pgbackrest.tls[name] | json }}
    - user: postgres
    - group: postgres
    - mode: '{{ '0600' if name == 'key' else '0644' }}'
    - show_changes: False
    - require:
      - file: pgbackrest-tls-directory
{%- endfor %}

pgbackrest-config:
  file.managed:
    - name: {{ pgbackrest.config_file }}
    - source: salt://pgbackrest/files/pgbackrest.conf.jinja
    - template: jinja
    - context:
        conf: {{ pgbackrest.conf | json }}
    - user: root
    - group: postgres
    - mode: '0640'
    - require:
      - pkg: pgbackrest-package-installed

pgbackrest-status-command:
  file.managed:
    - name: {{ pgbackrest.status_command }}
    - source: salt://pgbackrest/files/status
    - template: jinja
    - context:
        stanza: {{ pgbackrest.stanza | json }}
        is_repository: {{ pgbackrest.is_repository }}
        is_database: {{ pgbackrest.repository is not none }}
        pg_port: {{ pgbackrest.pg_port }}
    - user: root
    - group: root
    - mode: '0755'

{%- if pgbackrest.server.clients %}

pgbackrest-server-running:
  service.running:
    - name: {{ pgbackrest.service }}
    - enable: True
    - watch:
      - file: pgbackrest-config
{%-   for name in pgbackrest.tls_files %}
      - file: pgbackrest-tls-{{ name }}
{%-   endfor %}
{%- else %}

pgbackrest-server-stopped:
  service.dead:
    - name: {{ pgbackrest.service }}
    - enable: False
    - require:
      - pkg: pgbackrest-package-installed
{%- endif %}
