{#- A role that left this host (moved elsewhere in the topology) stops here.
    Stateless roles are removed; data is never touched. -#}
{%- set roles = salt['pillar.get']('stack:roles', []) %}
{%- set site_roles = ['media', 'loadbalancer'] | reject('in', roles) | list %}
{%- if site_roles %}

include:
{%-   for role in site_roles %}
  - nginx.{{ role }}_clean
{%-   endfor %}
{%- endif %}
{%- if 'cache' not in roles %}

memcached-retired:
  pkg.removed:
    - name: memcached
{%- endif %}
{%- if 'database' not in roles %}

{#- Only a notice: a data directory is deleted by a person, never by a state. #}
postgres-data-kept:
  test.succeed_without_changes:
    - name: database role not held; any PostgreSQL data on this host is left as it is
{%- endif %}
