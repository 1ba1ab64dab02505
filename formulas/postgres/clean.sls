{#- The database role left this host: its cluster stops and no longer starts
    at boot. The data directory, the configuration and the packages stay, so
    the role can come back (the postgres state turns it on again) or the data
    be copied away: `pg_ctlcluster <version> <cluster> start` starts it by hand.
    Needs no pillar: without `postgres` the cluster is the release's default
    (map.jinja). A no-op on a host that never had the role. -#}
{%- from 'postgres/map.jinja' import postgres with context %}

{#- Debian's postgresql-generator starts the clusters whose start.conf says
    auto; manual leaves it to pg_ctlcluster. No file, no cluster: nothing. #}
postgres-cluster-start-manual:
  file.replace:
    - name: {{ postgres.conf_dir }}/start.conf
    - pattern: '^[ \t]*auto[ \t]*$'
    - repl: manual
    - ignore_if_missing: True

postgres-systemd-generator-rerun-after-clean:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: postgres-cluster-start-manual

postgres-cluster-stopped:
  service.dead:
    - name: {{ postgres.service }}
    - require:
      - cmd: postgres-systemd-generator-rerun-after-clean

{#- Debian's umbrella unit that starts the clusters at boot. #}
postgres-umbrella-service-disabled:
  service.dead:
    - name: postgresql
    - enable: False
    - require:
      - service: postgres-cluster-stopped
