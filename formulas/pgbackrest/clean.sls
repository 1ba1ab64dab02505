{#- pgBackRest's configuration leaves a host that is neither a database
    host with a repository nor the repository: the TLS server stops, the
    configuration, TLS key and restore command go. The package, its logs and the repository's
    data (backups and WAL under repo_path) stay. Needs no pillar; a no-op on
    a host that never had it. -#}
{%- from 'pgbackrest/map.jinja' import pgbackrest with context %}

pgbackrest-server-stopped:
  service.dead:
    - name: {{ pgbackrest.service }}
    - enable: False

pgbackrest-tls-absent:
  file.absent:
    - name: {{ pgbackrest.tls_dir }}

pgbackrest-config-absent:
  file.absent:
    - name: {{ pgbackrest.config_file }}
    - onlyif: grep -q '^# Managed by Salt (pgbackrest formula)' {{ pgbackrest.config_file }}

{%- for command in [pgbackrest.restore_command, pgbackrest.status_command] %}

pgbackrest-command-{{ loop.index }}-absent:
  file.absent:
    - name: {{ command }}
{%- endfor %}
