{#- The database role left this host (or Patroni no longer runs it): the
    member stops (Patroni stops its PostgreSQL) and no longer starts at
    boot. Then what holds the cluster's passwords goes: Patroni's file
    (replication, rewind and REST API passwords), the .pgpass Patroni writes
    for replication, and patroni-cluster, which only reads that file. The
    data directory, the wanted dynamic settings and the packages stay. Needs
    no pillar; a no-op on a host that never ran Patroni. -#}
{%- from 'patroni/map.jinja' import patroni with context %}

patroni-service-stopped:
  service.dead:
    - name: {{ patroni.service }}
    - enable: False

patroni-secrets-absent:
  file.absent:
    - names:
      - {{ patroni.config_file }}
      - {{ patroni.config.postgresql.pgpass }}
      - {{ patroni.cluster_command }}
    - require:
      - service: patroni-service-stopped
