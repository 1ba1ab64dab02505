{#- Patroni runs the postgres formula's cluster (pillar postgres, with
    postgres:patroni true) as one member of a replicated cluster, from
    Debian's packaging: patroni@<version>-<cluster>, the cluster created by
    pg_createcluster (leader) or cloned by pg_clonecluster (replicas).

    Salt never fights Patroni: it writes Patroni's own configuration and
    nothing Patroni rewrites (postgresql.conf, pg_hba.conf, the data
    directory); a changed configuration reaches Patroni by a reload, never a
    restart; the cluster-wide settings go through Patroni's REST API. So an
    unchanged pillar changes nothing, whichever member leads.

    Apply after postgres.server and before postgres.databases. -#}
{%- from 'patroni/map.jinja' import patroni with context %}
{%- for key in ['name', 'address', 'etcd_hosts'] %}
{%-   if not patroni[key] %}{{ raise('pillar patroni:' ~ key ~ ' is required') }}{% endif %}
{%- endfor %}
{%- for key, value in patroni.passwords | dictsort %}
{%-   if not value %}{{ raise('pillar patroni:passwords:' ~ key ~ ' is required') }}{% endif %}
{%- endfor %}

include:
  - postgres.server

patroni-package-installed:
  pkg.installed:
    - pkgs: {{ patroni.packages | json }}
    - require:
      - sls: postgres.server

# Passwords inside: readable by Patroni (the postgres user) and root only.
patroni-config:
  file.serialize:
    - name: {{ patroni.config_file }}
    - dataset: {{ patroni.config | json }}
    - serializer: yaml
    - user: postgres
    - group: postgres
    - mode: '0640'
    - show_changes: False
    - require:
      - pkg: patroni-package-installed

patroni-service-running:
  service.running:
    - name: {{ patroni.service }}
    - enable: True
    # Patroni re-reads its file on SIGHUP and reloads PostgreSQL itself.
    - reload: True
    - watch:
      - file: patroni-config

{#- dynamic_config.py (below) and clone_member (Patroni's way to make a
    replica: Debian's pg_clonecluster_patroni with a fast checkpoint). #}
{%- for tool in ['dynamic_config.py', 'clone_member'] %}

patroni-tool-{{ tool }}:
  file.managed:
    - name: {{ patroni.tools }}/{{ tool }}
    - source: salt://patroni/files/{{ tool }}
    - makedirs: True
    - user: root
    - group: root
    - mode: '0755'
    - require_in:
      - service: patroni-service-running
{%- endfor %}

patroni-dynamic-config-wanted:
  file.serialize:
    - name: {{ patroni.dynamic_file }}
    - dataset: {{ patroni.dynamic | json }}
    - serializer: yaml
    - user: root
    - group: postgres
    - mode: '0640'
    - require:
      - pkg: patroni-package-installed

{#- The DCS copy is written at bootstrap from the same keys; afterwards a
    pillar change is sent to Patroni (PATCH /config: the keys given only). #}
{%- set args = patroni.config_file ~ ' ' ~ patroni.dynamic_file ~ ' --wait ' ~ patroni.api_wait_seconds %}
patroni-dynamic-config:
  cmd.run:
    - name: {{ patroni.tools }}/dynamic_config.py apply {{ args }}
    - unless: {{ patroni.tools }}/dynamic_config.py check {{ args }}
    - require:
      - service: patroni-service-running
      - file: patroni-dynamic-config-wanted
