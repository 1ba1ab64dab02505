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
{%- from 'postgres/map.jinja' import postgres with context %}
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

{#- Taking over a cluster the plain postgres formula ran (the single
    database that gains replicas): its data directory becomes this member's.
    As Patroni's guide to converting a standalone server says: while
    Debian's unit still runs the cluster, the users Patroni makes at a
    bootstrap are created; then the cluster is handed to Patroni (start.conf
    manual, as pg_createcluster_patroni makes it) and stopped, so Patroni
    starts it with its own settings (wal_log_hints, which pg_rewind needs,
    takes a start). Each step is a no-op on a member Patroni already runs. #}
{%- set psql = 'runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -p ' ~ postgres.port %}
# Were a cluster already in the DCS (another member bootstrapped first),
# Patroni would refuse this data directory: stop before the hand-over,
# while Debian's unit still serves it.
patroni-takeover-only-into-an-empty-dcs:
  cmd.run:
    - name: |
        echo "the DCS already has a cluster with a leader, so this host's data would be refused;" \
             "make {{ patroni.name }} the first database host (patroni:bootstrap_member) and" \
             "remove the other cluster, or stop this host's database first" >&2
        exit 1
    - onlyif: {{ ('systemctl is-active --quiet ' ~ patroni.postgres_service ~ ' && ' ~ patroni.has_leader) | json }}
    - require:
      - file: patroni-config

patroni-takeover-users:
  cmd.run:
    - name: {{ psql }} -d postgres
    # On standard input: the passwords stay out of the process list.
    - stdin: |
{%- for kind, options in [('replication', 'LOGIN REPLICATION'), ('rewind', 'LOGIN')] %}
{%-   set user = patroni.users[kind] %}
        SELECT format('CREATE ROLE %I', '{{ user }}')
          WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{{ user }}') \gexec
        ALTER ROLE "{{ user }}" WITH {{ options }} PASSWORD '{{ patroni.passwords[kind] | replace("'", "''") }}';
{%- endfor %}
        -- What pg_rewind reads on the leader (as Patroni grants at bootstrap).
{%- for function in ['pg_ls_dir(text, boolean, boolean)', 'pg_stat_file(text, boolean)',
                     'pg_read_binary_file(text)', 'pg_read_binary_file(text, bigint, bigint, boolean)'] %}
        GRANT EXECUTE ON FUNCTION pg_catalog.{{ function }} TO "{{ patroni.users.rewind }}";
{%- endfor %}
    - onlyif: systemctl is-active --quiet {{ patroni.postgres_service }}
    - require:
      - cmd: patroni-takeover-only-into-an-empty-dcs

patroni-takeover-start-manual:
  file.replace:
    - name: {{ postgres.conf_dir }}/start.conf
    - pattern: '^[ \t]*auto[ \t]*$'
    - repl: manual
    - ignore_if_missing: True
    - require:
      - cmd: patroni-takeover-users

patroni-takeover-systemd-generator-rerun:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: patroni-takeover-start-manual

patroni-takeover-plain-service-stopped:
  service.dead:
    - name: {{ patroni.postgres_service }}
    - require:
      - cmd: patroni-takeover-systemd-generator-rerun

{%- if patroni.bootstrap_member and patroni.bootstrap_member != patroni.name %}

{#- Only the bootstrap member may start a cluster: were this one (with no
    data yet) first to reach the DCS, it would bootstrap an empty cluster
    and the bootstrap member's data (a single database taken over) would be
    refused for belonging to another. So it starts once a leader is there,
    and then clones it. #}
patroni-member-waits-for-a-leader:
  cmd.run:
    - name: |
        for i in $(seq {{ patroni.api_wait_seconds }}); do
          {{ patroni.has_leader }} && exit 0
          sleep 1
        done
        echo "no leader in the cluster after {{ patroni.api_wait_seconds }} s: {{ patroni.bootstrap_member }}" \
             "starts it (the first database host); apply it first" >&2
        exit 1
    # A member that has data started before; a leader may be there already.
    - unless: {{ ('test -s ' ~ patroni.config.postgresql.data_dir ~ '/PG_VERSION || ' ~ patroni.has_leader) | json }}
    - require:
      - file: patroni-config
    - require_in:
      - service: patroni-service-running
{%- endif %}

patroni-service-running:
  service.running:
    - name: {{ patroni.service }}
    - enable: True
    # Patroni re-reads its file on SIGHUP and reloads PostgreSQL itself.
    - reload: True
    - require:
      - service: patroni-takeover-plain-service-stopped
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

# patronictl for this host's cluster: patroni-cluster list, switchover...
patroni-cluster-command:
  file.managed:
    - name: {{ patroni.cluster_command }}
    - contents: |
        #!/bin/sh
        # Managed by Salt (patroni formula): patronictl for {{ patroni.cluster_id }}.
        exec patronictl -c {{ patroni.config_file }} "$@"
    - user: root
    - group: root
    - mode: '0755'
    - require:
      - pkg: patroni-package-installed

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
