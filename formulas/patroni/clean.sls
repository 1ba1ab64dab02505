{#- The database role left this host (or Patroni no longer runs it): the
    member stops (Patroni stops its PostgreSQL) and no longer starts at
    boot. Its data directory, its configuration and the packages stay. Needs
    no pillar; a no-op on a host that never ran Patroni. -#}
{%- from 'patroni/map.jinja' import patroni with context %}

patroni-service-stopped:
  service.dead:
    - name: {{ patroni.service }}
    - enable: False
