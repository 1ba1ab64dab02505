{%- from 'postgres/map.jinja' import postgres with context %}
{%- set psql = 'runuser -u postgres -- psql -XAtq -p ' ~ postgres.port %}

{#- Read by pg_createcluster (the package's own first cluster, Salt's, and
    Patroni's), so written before the packages. Under Patroni the package
    makes no cluster: the leader's comes from Patroni's bootstrap, the
    replicas' are cloned from it. #}
postgres-createcluster-settings:
  file.managed:
    - name: /etc/postgresql-common/createcluster.d/50-salt.conf
    - contents: |
        # Managed by Salt (postgres formula); local edits are overwritten.
        initdb_options = '--locale={{ postgres.initdb.locale }} --encoding={{ postgres.initdb.encoding }}'
{%- if postgres.patroni %}
        create_main_cluster = off
{%- endif %}
    - makedirs: True
    - user: root
    - group: root
    - mode: '0644'
    - require_in:
      - pkg: postgres-packages-installed

postgres-packages-installed:
  pkg.installed:
    - pkgs: {{ postgres.packages | json }}
    # postgres_user/postgres_database need psql on the PATH
    - reload_modules: True
{%- if postgres.patroni %}

# Patroni writes every setting (postgresql.conf, pg_hba.conf); the plain
# mode's file goes when Patroni takes a cluster over.
postgres-plain-settings-absent:
  file.absent:
    - name: {{ postgres.conf_dir }}/conf.d/50-salt.conf
{%- else %}

# Debian's postinst creates the cluster; recreate it only when it is gone
# (pg_dropcluster, create_main_cluster = false). Never touches existing data.
postgres-cluster-created:
  cmd.run:
    - name: pg_createcluster {{ postgres.version }} {{ postgres.cluster }}
    - unless: pg_lsclusters --no-header {{ postgres.version }} {{ postgres.cluster }}
    - require:
      - pkg: postgres-packages-installed

postgres-cluster-starts-at-boot:
  file.replace:
    - name: {{ postgres.conf_dir }}/start.conf
    - pattern: '^[ \t]*(manual|disabled)[ \t]*$'
    - repl: auto
    - require:
      - cmd: postgres-cluster-created

# postgresql-generator turns start.conf into postgresql@ unit dependencies
postgres-systemd-generator-rerun:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - cmd: postgres-cluster-created
      - file: postgres-cluster-starts-at-boot

postgres-settings:
  file.managed:
    - name: {{ postgres.conf_dir }}/conf.d/50-salt.conf
    - source: salt://postgres/files/salt.conf.jinja
    - template: jinja
    - context:
        conf: {{ postgres.conf | json }}
        share: {{ postgres.memory_share_mb }}
    - user: postgres
    - group: postgres
    - mode: '0644'
    - require:
      - cmd: postgres-cluster-created

postgres-hba:
  file.managed:
    - name: {{ postgres.conf_dir }}/pg_hba.conf
    - source: salt://postgres/files/pg_hba.conf.jinja
    - template: jinja
    - context:
        hba: {{ postgres.hba | json }}
    - user: postgres
    - group: postgres
    - mode: '0640'
    - require:
      - cmd: postgres-cluster-created

# postgresql.service is Debian's umbrella unit that starts the clusters at boot
postgres-umbrella-service-enabled:
  service.running:
    - name: postgresql
    - enable: True
    - require:
      - cmd: postgres-systemd-generator-rerun

postgres-cluster-running:
  service.running:
    - name: {{ postgres.service }}
    - reload: True
    - require:
      - service: postgres-umbrella-service-enabled
    - watch:
      - file: postgres-settings
      - file: postgres-hba

# A reload applies everything except postmaster-level settings (port,
# listen_addresses, shared_buffers, max_connections, ...); the server itself
# reports those as pending_restart. Also restarts when the server does not
# answer on the configured port (port changed), and after an interrupted run.
postgres-cluster-restarted-for-pending-settings:
  cmd.run:
    - name: systemctl restart {{ postgres.service }}
    - unless: {{ psql }} -c 'SELECT count(*) FROM pg_settings WHERE pending_restart' | grep -qx 0
    - require:
      - service: postgres-cluster-running
{%- endif %}
