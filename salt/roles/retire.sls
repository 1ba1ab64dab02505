{#- A role that left this host (moved elsewhere in the topology) stops here.
    Stateless roles are removed; data is never touched. -#}
{%- set roles = salt['pillar.get']('stack:roles', []) %}
{%- set not_held = salt['pillar.get']('stack:hosts_by_role', {}) | reject('in', roles) | list %}
{%- set dropped_sites = ['media', 'loadbalancer'] | select('in', not_held) | list %}
{%- if dropped_sites %}

include:
{%-   for role in dropped_sites %}
  - nginx.{{ role }}_clean
{%-   endfor %}
{%- endif %}

{#- Also keeps the orchestrate step from returning nothing on a host that holds every role. #}
roles-not-held:
  test.succeed_without_changes:
    - name: "not held here: {{ not_held | join(', ') or 'none' }}; PostgreSQL data is never removed by a state"
{%- if 'cache' in not_held %}
{%-   import_yaml 'memcached/defaults.yaml' as memcached_defaults %}

memcached-retired:
  pkg.removed:
    - name: {{ memcached_defaults.memcached.package }}
{%- endif %}
{%- if 'app' in not_held %}
{%-   import_yaml 'uwsgi/defaults.yaml' as uwsgi_defaults %}

{#- The emperor and its vassals stop; the apps' code stays where it was. #}
uwsgi-retired:
  pkg.removed:
    - pkgs: {{ uwsgi_defaults.uwsgi.pkgs | json }}
{%- endif %}
