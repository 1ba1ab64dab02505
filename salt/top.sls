# Roles come from pillar (stack:roles, derived from the topology keyed by
# minion id), never from grains a host could set for itself.
base:
  '*':
    - roles.common
    - roles.retire
{%- for role in ['database', 'cache', 'media', 'app', 'loadbalancer'] %}
  'stack:roles:{{ role }}':
    - match: pillar
    - roles.{{ role }}
{%- endfor %}
