{#- Only the minions the site's topology names get the stack's pillar; any
    other minion of the master is left alone. Targets are written for the
    environment this top file is read in (a dedicated `stack`, or base). -#}
{%- import_yaml 'topology.sls' as site_topology %}
{%- set minions = ((site_topology or {}).get('topology') or {}).get('hosts') or {} %}
{%- if minions %}
{{ saltenv }}:
  {{ minions | join(',') | json }}:
    - match: list
    - stack
    # Optional site settings merged over the stack's (the lab writes one).
    - overrides
    - ignore_missing: True
{%- endif %}
