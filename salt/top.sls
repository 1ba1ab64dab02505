# Roles come from pillar (stack:roles, derived from the topology keyed by
# minion id), never from grains a host could set for itself.
base:
  '*':
    - roles.common
    - roles.retire
{%- for role in salt['pillar.get']('stack:hosts_by_role', {}) %}
  'stack:roles:{{ role }}':
    - match: pillar
    - roles.{{ role }}
{%- endfor %}
